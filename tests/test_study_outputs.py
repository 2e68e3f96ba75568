"""docs/study/outputs.sh: the study's finished runs packed with the repository and unpacked for the next sitting."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "study" / "outputs.sh"
KEPT = ["config.toml", "metrics.json", "history.json", "predictions.npz", "true_class.json"]
LEFT_OUT = ["model.pt", "train.log", "checkpoints/epoch-3.pt", ".lock"]

pytestmark = pytest.mark.skipif(shutil.which("xz") is None or shutil.which("tar") is None,
                                reason="tar with xz is needed to pack the study outputs")


def _run(tmp_path: Path, *args: str) -> None:
    subprocess.run(["bash", str(SCRIPT), *args], check=True, env={"PATH": "/usr/bin:/bin",
                   "OUTPUTS": str(tmp_path / "kept")}, capture_output=True)


def _make_run(d: Path, finished: bool = True) -> None:
    for name in KEPT[:1] + KEPT[2:] + ["similarity.npz"] + LEFT_OUT:
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(f"{d.name}/{name}")
    if finished:
        (d / "metrics.json").write_text("{}")


def test_pack_keeps_what_reuse_and_the_report_need_and_unpack_restores_it(tmp_path):
    study = tmp_path / "study"
    runs = study / "music" / "runs" / "heads"
    natural, removed = runs / "skip" / "mr0.0" / "seed0", runs / "skip" / "mr0.2" / "seed0"
    other_seed, unfinished = runs / "simlabel" / "mr0.0" / "seed1", runs / "simlabel" / "mr0.0" / "seed2"
    for d in (natural, removed, other_seed):
        _make_run(d)
    _make_run(unfinished, finished=False)
    _run(tmp_path, "pack", str(study))
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["music.tar.xz"]

    again = tmp_path / "again"
    (again / "music" / "runs" / "heads" / "skip" / "mr0.2" / "seed0").mkdir(parents=True)
    mine = again / "music" / "runs" / "heads" / "skip" / "mr0.2" / "seed0" / "history.json"
    mine.write_text("already here")
    _run(tmp_path, "unpack", str(again))
    got = again / "music"
    for d in (natural, removed, other_seed):
        rel = d.relative_to(study / "music")
        for name in KEPT:
            assert (got / rel / name).is_file(), (rel, name)
        for name in LEFT_OUT:
            assert not (got / rel / name).exists(), (rel, name)
    # the heat map's similarity.npz: only the seed-0 runs at the natural missing rate
    assert (got / natural.relative_to(study / "music") / "similarity.npz").read_text() == "seed0/similarity.npz"
    assert not (got / removed.relative_to(study / "music") / "similarity.npz").exists()
    assert not (got / other_seed.relative_to(study / "music") / "similarity.npz").exists()
    # an unfinished run is not kept: main.sh retrains it
    assert not (got / unfinished.relative_to(study / "music")).exists()
    # files already in the study are kept
    assert mine.read_text() == "already here"


def test_pack_takes_named_grids_and_sharing_runs_without_a_runs_folder(tmp_path):
    """sharing.sh's <data set>/<model>/s<seed>/<variant> runs pack like a compare output's; only the named grids
    are packed, and a grid without a finished run writes no archive."""
    study = tmp_path / "study"
    lever = study / "sharing" / "music" / "madl" / "s0" / "kl-shared"
    _make_run(lever)
    _make_run(study / "music" / "runs" / "heads" / "skip" / "mr0.0" / "seed0")
    _make_run(study / "empty" / "runs" / "heads" / "skip" / "mr0.0" / "seed0", finished=False)
    _run(tmp_path, "pack", str(study), "sharing", "empty")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["sharing.tar.xz"]
    _run(tmp_path, "unpack", str(tmp_path / "again"))
    got = tmp_path / "again" / "sharing" / "music" / "madl" / "s0" / "kl-shared"
    assert sorted(p.name for p in got.iterdir()) == sorted(KEPT)
    assert (got / "history.json").read_text() == "kl-shared/history.json"


def test_a_bad_command_is_refused(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), "copy", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "usage: outputs.sh pack|unpack STUDY" in result.stderr
