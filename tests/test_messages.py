"""Honest messages and behaviour at the edges (issue 14, points 6 and 7): each asserts the one-line message or the
behaviour a careless user gets.

- a byte that is not UTF-8 is reported with its file, line and column (labels, features, music files, configs);
- a feature beyond float32 is reported as such (not as "not finite"); a tab-separated .csv of features reads;
- missing rate 1.0 is refused alike by train and compare; kappa names its --format flag;
- Ctrl-C on `simlabel train` is one line, without a traceback; TypeErrors are one line too;
- crowd-csv's truth reaches metrics.json and the report; imputed_labels.csv has LF line endings;
- `pytest --benchmark-only` deselects the other tests instead of listing each as skipped;
- the hookspecs docstring example works as written;
- a similarity engine that would not fit in memory is refused with how much it needs.
"""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from simlabel_ext.cli import main
from simlabel_ext.data import read_long
from simlabel_ext.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model-option", "hidden=4", "--model-option", "depth=1", "--epochs", "2", "--batch-size", "64",
        "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """One intra-op thread (the subprocesses run with OMP_NUM_THREADS=1 too)."""


def one_line(capsys, command: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"simlabel {command}: error: "), lines[0]
    return lines[0]


def crowd(folder: Path, tasks: int = 40) -> dict[str, Path]:
    """A crowd-csv data set with truth: workers w0..w3 right 80 % of the time."""
    rng = np.random.default_rng(0)
    truth = rng.integers(3, size=tasks)
    rows = [(f"t{t}", f"w{w}", "abc"[truth[t] if rng.random() < 0.8 else rng.integers(3)])
            for t in range(tasks) for w in range(4) if w == 0 or rng.random() < 0.6]
    paths = {"labels": folder / "labels.csv", "features": folder / "features.csv", "truth": folder / "truth.csv"}
    with open(paths["labels"], "w", newline="") as fh:
        csv.writer(fh).writerows([("task", "worker", "label"), *rows])
    x = np.eye(3)[truth] * 2 + rng.normal(size=(tasks, 3))
    with open(paths["features"], "w", newline="") as fh:
        csv.writer(fh).writerows([("task", "f0", "f1", "f2"), *[(f"t{t}", *map(float, x[t])) for t in range(tasks)]])
    with open(paths["truth"], "w", newline="") as fh:
        csv.writer(fh).writerows([("task", "label"), *[(f"t{t}", "abc"[truth[t]]) for t in range(tasks)]])
    return paths


# ---------------------------------------------------------------------------------------------- UTF-8
def test_a_byte_that_is_not_utf8_names_the_file_line_and_column(tmp_path, capsys):
    bad = tmp_path / "answers.csv"
    bad.write_bytes(b"task,worker,label\nt1,w1,a\nt2,w\xff1,b\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}, line 3: byte 0xff at column 5 is not UTF-8 text"):
        read_long(bad)
    assert main(["kappa", str(bad)]) == 2
    assert "answers.csv, line 3: byte 0xff at column 5 is not UTF-8 text; save the file as UTF-8" in one_line(
        capsys, "kappa")
    early = tmp_path / "header.csv"
    early.write_bytes(b"task,wo\xe9rker,label\n")
    with pytest.raises(ValueError, match=r"header\.csv, line 1: byte 0xe9 at column 8"):
        read_long(early)
    config = tmp_path / "run.toml"
    config.write_bytes(b'lr = 0.1\nmodel = "h\xffeads"\n')
    assert main(["train", "--config", str(config)]) == 2
    assert "run.toml, line 2: byte 0xff at column 11 is not UTF-8 text" in one_line(capsys, "train")


def test_features_and_music_files_report_bad_bytes_and_values_beyond_float32(tmp_path):
    from simlabel_plugins.datasets import crowd_csv, music

    registry = Registry()
    for module in (crowd_csv, music):
        registry.register(module)
    paths = crowd(tmp_path)
    text = paths["features"].read_text().splitlines()
    text[4] = text[4].split(",")[0] + ",1.0,1e300,2.0"
    paths["features"].write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"features\.csv, line 5: task 't3', column 'f1': value 1e\+300 does not fit "
                                         r"in float32"):
        registry.load_dataset("crowd-csv", labels=str(paths["labels"]), features=str(paths["features"]))
    paths["features"].write_bytes(paths["features"].read_bytes().replace(b"t7,", b"t\xff7,"))
    with pytest.raises(ValueError, match=r"features\.csv, line 9: byte 0xff at column 2 is not UTF-8 text"):
        registry.load_dataset("crowd-csv", labels=str(paths["labels"]), features=str(paths["features"]))

    header = "id,annotator," + ",".join(f"feature{j}" for j in range(3)) + ",class\n"
    (tmp_path / "music_genre_mturk.csv").write_text(header + "s1,a1,1,2,3,rock\ns2,a1,1,1e300,3,pop\n")
    (tmp_path / "music_genre_gold.csv").write_text("id,feature0,feature1,feature2,class\ns1,1,2,3,rock\n")
    with pytest.raises(ValueError, match=r"music_genre_mturk\.csv, line 3: song 's2', feature1: value 1e\+300 does "
                                         r"not fit in float32"):
        registry.load_dataset("music", data_dir=str(tmp_path))
    (tmp_path / "music_genre_mturk.csv").write_bytes((header + "s1,a\xff1,1,2,3,rock\n").encode("latin-1"))
    with pytest.raises(ValueError, match=r"music_genre_mturk\.csv, line 2: byte 0xff at column 5 is not UTF-8"):
        registry.load_dataset("music", data_dir=str(tmp_path))


def test_a_tab_separated_csv_of_features_reads_like_one_of_labels(tmp_path):
    from simlabel_plugins.datasets import crowd_csv

    registry = Registry()
    registry.register(crowd_csv)
    paths = crowd(tmp_path)
    comma = registry.load_dataset("crowd-csv", labels=str(paths["labels"]), features=str(paths["features"]))
    tabbed = tmp_path / "tabbed.csv"
    tabbed.write_text(paths["features"].read_text().replace(",", "\t"))
    labels = tmp_path / "labels_tab.csv"
    labels.write_text(paths["labels"].read_text().replace(",", "\t"))
    tab = registry.load_dataset("crowd-csv", labels=str(labels), features=str(tabbed))
    assert torch.equal(tab.inputs, comma.inputs) and tab.annotations == comma.annotations


# ---------------------------------------------------------------------------------------------- flags
def test_missing_rates_outside_0_1_are_refused_alike_by_train_and_compare(capsys):
    assert main(["train", "--missing-rate", "1.0", *TINY]) == 2
    assert "'missing_rate' must lie in [0, 1): removing every training label leaves nothing to train on" in one_line(
        capsys, "train")
    assert main(["compare", "--missing-rates", "0,1", *TINY]) == 2
    assert "must lie in [0, 1): removing every training label leaves nothing to train on" in one_line(capsys,
                                                                                                     "compare")
    negative = "must lie in [0, 1): it is the fraction of the training labels removed; got -0.1"
    assert main(["train", "--missing-rate", "-0.1", *TINY]) == 2
    assert one_line(capsys, "train").endswith(f"'missing_rate' {negative}")
    assert main(["compare", "--missing-rates", "0,-0.1", *TINY]) == 2
    assert one_line(capsys, "compare").endswith(f"--missing-rates {negative}")


def test_labels_of_a_single_class_are_refused_with_the_class_and_how_to_declare_the_others(tmp_path, capsys):
    from simlabel_ext import SimLabel

    paths = crowd(tmp_path, tasks=12)
    rows = list(csv.reader(open(paths["labels"], newline="")))
    with open(paths["labels"], "w", newline="") as fh:
        csv.writer(fh).writerows([rows[0], *[(task, worker, "b") for task, worker, _ in rows[1:]]])
    data = ["--dataset", "crowd-csv", "--labels", str(paths["labels"]), "--features", str(paths["features"])]
    assert main(["train", *data, *TINY, "--out", str(tmp_path / "run")]) == 2
    assert one_line(capsys, "train").endswith("the labels hold a single class, 'b': annotator models need at least 2; "
                                              "declare every class (crowd-csv's classes option, SimLabel.fit's "
                                              "classes=) if some never occur")
    assert main(["train", *data, "--dataset-option", "classes=a,b,c", *TINY, "--out", str(tmp_path / "ok")]) == 0
    answers = [(t, "w0", "b") for t in range(12)]  # row k of X is task k
    import pandas as pd

    with pytest.raises(ValueError, match="a single class, 'b'"):
        SimLabel(epochs=1, progress=False).fit(np.eye(12), pd.DataFrame(answers, columns=["task", "worker", "label"]))


def test_kappa_on_a_file_without_suffix_names_its_format_flag(tmp_path, capsys):
    answers = tmp_path / "answers"
    answers.write_text("task,worker,label\nt1,w1,a\nt1,w2,a\nt2,w1,b\nt2,w2,b\n")
    assert main(["kappa", str(answers)]) == 2
    line = one_line(capsys, "kappa")
    assert "cannot tell the format" in line and "--format csv|parquet on the command line" in line
    assert main(["kappa", str(answers), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "w1,1.0,1.0"


def test_ctrl_c_on_simlabel_train_is_one_line_without_a_traceback(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "simlabel_ext", "train", "--model-option", "hidden=4", "--epochs",
                             "500", "--batch-size", "8", "--no-progress", "--device", "cpu", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 120
    while not list(out.glob("checkpoints/epoch-*.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "simlabel train: interrupted; rerun it with --resume to continue"
    assert not (out / ".lock").exists()


def test_a_type_error_is_one_line_and_simlabel_debug_shows_it(monkeypatch, capsys):
    from simlabel_ext.cli import plugins

    def broken(args):
        raise TypeError("labels must be an integer tensor (-1 = missing), got torch.float32")

    monkeypatch.setattr(plugins, "run", broken)
    assert main(["plugins"]) == 2
    assert one_line(capsys, "plugins") == ("simlabel plugins: error: labels must be an integer tensor (-1 = missing), "
                                           "got torch.float32")
    monkeypatch.setenv("SIMLABEL_DEBUG", "1")
    with pytest.raises(TypeError, match="integer tensor"):
        main(["plugins"])


# ---------------------------------------------------------------------------------------------- outputs
def test_truth_reaches_metrics_and_the_report_and_imputed_labels_have_lf_endings(tmp_path, capsys):
    paths = crowd(tmp_path)
    out = tmp_path / "cmp"
    data = ["--dataset", "crowd-csv", "--labels", str(paths["labels"]), "--features", str(paths["features"]),
            "--truth", str(paths["truth"])]
    assert main(["compare", *data, "--seeds", "0", "--modes", "simlabel+confidence", "--threshold", "0.05",
                 "--lr", "0.01", *TINY, "--no-plots", "--out", str(out)]) == 0
    capsys.readouterr()
    run = out / "runs" / "heads" / "simlabel-confidence" / "mr0.0" / "seed0"
    metrics = json.loads((run / "metrics.json").read_text())
    with open(paths["labels"], newline="") as fh:
        labels = list(csv.DictReader(fh))
    with open(paths["truth"], newline="") as fh:
        truth = {r["task"]: r["label"] for r in csv.DictReader(fh)}
    for row in metrics["annotators"]:  # each annotator's own labels against the truth, counted from the files
        own = [r for r in labels if r["worker"] == row["id"]]
        assert row["truth_count"] == len(own)
        assert row["truth_accuracy"] == sum(r["label"] == truth[r["task"]] for r in own) / len(own)
    mean = np.mean([row["truth_accuracy"] for row in metrics["annotators"]])
    table = (out / "results.md").read_text()
    cells = [f"{100 * row['truth_accuracy']:.1f}" for row in metrics["annotators"]]
    truth_row = f"| (labels) | vs truth | {' | '.join(cells)} | **{100 * mean:.1f}** |"
    lines = table.splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith(truth_row)]
    assert len(at) == 1
    at = at[0]  # the last row of its table, and the convergence line after the table
    assert lines[at - 1].startswith("| heads | simlabel+confidence |")
    assert [i for i, line in enumerate(lines) if line.startswith("**Not converged**")][0] > at  # 2 epochs of 2
    raw = (run / "imputed_labels.csv").read_bytes()
    assert raw.count(b"\n") > 1 and b"\r" not in raw


def test_benchmark_only_deselects_the_tests_instead_of_skipping_each():
    proc = subprocess.run([sys.executable, "-m", "pytest", "--benchmark-only", "-p", "no:cacheprovider", "-q",
                           "tests/test_extension.py", "tests/test_data.py", "benchmarks/bench_trainer.py",
                           "--collect-only"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode in (0, 5), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SKIPPED" not in proc.stdout
    assert re.search(r"\d+ deselected", proc.stdout), proc.stdout[-2000:]
    assert "test_data.py" not in proc.stdout and "bench_trainer.py::test_epoch_time" in proc.stdout


def test_the_hookspecs_docstring_example_works_as_written():
    import textwrap

    from simlabel_ext.models import InputSpec
    from simlabel_ext.registry import hookspecs

    doc = hookspecs.__doc__
    start = doc.index("    # my_package/simlabel_plugin.py")
    code = textwrap.dedent(doc[start:doc.index("After ``pip install``")])
    namespace: dict = {}
    exec(compile(code, "hookspecs.py docstring", "exec"), namespace)  # noqa: S102 - the documented example
    registry = Registry()
    registry.register(type("Plugin", (), {"simlabel_models": staticmethod(namespace["simlabel_models"])}))
    model = registry.build_model("my-net", InputSpec("features", (5,)), 3, 4, hidden=8)
    assert model(torch.randn(2, 5)).logits.shape == (2, 3, 4)


# ---------------------------------------------------------------------------------------------- memory
def test_an_engine_that_would_not_fit_in_memory_is_refused_with_what_it_needs(tmp_path, monkeypatch, capsys):
    from simlabel_ext.similarity import SimilarityEngine
    from simlabel_ext.similarity.engine import required_bytes

    labels = torch.randint(-1, 10, (30, 400))
    for backend in ("cpp", "torch"):  # the estimate is what the engine holds (the C++ object adds its own fields)
        engine = SimilarityEngine(labels, 10, backend=backend)
        engine.similarity()
        assert engine.memory_bytes() <= required_bytes(30, 400, 10, backend) + 1024
    assert required_bytes(30, 400, 10, "cpp") >= SimilarityEngine(labels, 10, backend="cpp").memory_bytes()
    monkeypatch.setenv("SIMLABEL_MEMORY_LIMIT", "8M")
    need = required_bytes(30, 400, 10, "cpp") / 2**20
    with pytest.raises(MemoryError, match=rf"400 annotators x 10 classes need {need:.0f} MiB .* only 8 MiB is "
                                          r"available"):
        SimilarityEngine(labels, 10, backend="cpp")
    answers = tmp_path / "answers.csv"
    rows = [(f"t{i}", f"w{a}", str(int(labels[i, a]))) for i in range(30) for a in range(400) if labels[i, a] >= 0]
    with open(answers, "w", newline="") as fh:
        csv.writer(fh).writerows([("task", "worker", "label"), *rows])
    assert main(["kappa", str(answers)]) == 2
    line = one_line(capsys, "kappa")
    assert f"need {need:.0f} MiB" in line and "only 8 MiB is available" in line
