"""README stays true: its plugin example is the tested fixture verbatim, and every command it shows parses with
the real command-line parser (each subcommand is exercised for real by its own tests, and `.ci/run` runs the
install and test commands)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from simlabel_ext.cli import build_parser
from simlabel_ext.cli.train import _dataset_flags

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FIXTURE = ROOT / "tests" / "fixtures" / "third_party_plugin"


def block_after(marker: str, language: str) -> str:
    """The body of the first ```language block after ``marker``."""
    start = README.index(marker)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(README, start)
    assert match, f"no {language} block after {marker!r}"
    return match.group(1)


def test_readme_plugin_example_is_the_tested_fixture_verbatim():
    assert block_after("`pyproject.toml`:", "toml") == (FIXTURE / "pyproject.toml").read_text(encoding="utf-8")
    source = (FIXTURE / "simlabel_toy_plugin" / "__init__.py").read_text(encoding="utf-8")
    assert block_after("`simlabel_toy_plugin/__init__.py`:", "python") == source


def readme_commands() -> list[list[str]]:
    """Every ``simlabel ...`` / ``torchrun ... -m simlabel_ext ...`` command of README's bash blocks, as argv."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["simlabel"]:
                commands.append(words[1:])
            elif words[:1] == ["torchrun"] and "simlabel_ext" in words:
                commands.append(words[words.index("simlabel_ext") + 1:])
    return commands


def test_readme_shows_every_subcommand():
    shown = {argv[0] for argv in readme_commands()}
    assert {"compare", "train", "impute", "kappa"} <= shown


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda argv: " ".join(argv)[:60])
def test_readme_command_parses(argv):
    args, extra = build_parser().parse_known_args(argv)
    if extra:
        assert getattr(args, "accepts_extra", False), f"unknown arguments {extra}"
        dataset = args.dataset or "synthetic"
        assert _dataset_flags(dataset, extra)  # raises on a flag the dataset plugin does not take


SHARED = ROOT.parent / "shared"


@pytest.mark.skipif(not (SHARED / "data" / "music_genre").is_dir(),
                    reason=f"music_genre data not found at {SHARED / 'data' / 'music_genre'}")
def test_readme_python_example_fits_music_predicts_saves_and_loads(tmp_path, monkeypatch, one_thread):
    """README's "Use it from Python" example, run as written (from a scratch folder, the data read in place): its
    predictions for the 300 test songs are distributions [300, 44, 10], the saved model loads to bit-identical
    predictions, and README's `simlabel predict` command writes the same predictions."""
    import numpy as np
    import pandas as pd

    from simlabel_ext import SimLabel
    from simlabel_ext.cli import main

    code = block_after("## Use it from Python", "python").replace("../shared/", f"{SHARED}/")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    proba, test = namespace["proba"], namespace["test"]
    assert proba.shape == (300, 44, 10) and proba.dtype == np.float32 and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-5)
    assert np.array_equal(SimLabel.load(tmp_path / "music-heads.pt").predict_proba(test), proba)

    shown = block_after("The same predictions from the command line", "bash")
    (argv,) = [shlex.split(line.replace("../shared/", f"{SHARED}/")) for line in shown.splitlines()
               if line.startswith("simlabel predict")]
    assert main(argv[1:]) == 0
    written = pd.read_csv(tmp_path / "preds.csv")
    expected = namespace["model"].predict(test)
    assert len(written) == 300 * 44
    for column in ("task", "worker", "label"):
        assert written[column].tolist() == expected[column].tolist(), column
    assert np.array_equal(written["probability"].to_numpy(np.float32), expected["probability"].to_numpy())
