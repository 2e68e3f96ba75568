"""``simlabel compare``, ``simlabel impute``, ``kappa --plot`` and the ``--help`` texts, end to end on tiny data.

Oracles: the report's table recomputed here from the runs' own ``metrics.json`` files (mean, ``statistics.stdev``,
per-seed paired gains); the labels file written by the test (``impute --with-observed``); the files' mtimes
(reused runs are not retrained); a one-process grid against the same grid in worker processes; TrainConfig's
defaults (help texts).
"""
from __future__ import annotations

import csv
import io
import json
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from simlabel_ext.cli import main
from simlabel_ext.report.paired import avg_accuracy, paired_gain, split_outcome
from simlabel_ext.rundir import RunDirectory
from simlabel_ext.train import TrainConfig, load_config, option_fields

pytest.importorskip("matplotlib")
import matplotlib.image  # noqa: E402

DATA = ["--preset", "custom", "--annotators", "4", "--classes", "3"]
TRAIN = ["--no-progress", "--lr", "1e-2", "--device", "cpu"]
TINY = [*DATA, "--items", "120", "--epochs", "2", *TRAIN, "--threads", "1"]
MODES = ["skip", "simlabel", "simlabel+confidence"]
PNGS = ["similarity_heatmap.png", "accuracy_by_annotator.png", "avg_vs_missing_rate.png", "gain_vs_skip.png",
        "imputations.png"]


def status(argv) -> int:
    """``main(argv)``'s exit status, also when argparse exits (SystemExit) instead of returning."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"simlabel {command}: error: "), err[0]
    return err[0]


def strip_seconds(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "train_seconds"}


def write_crowd(tmp_path: Path, tasks: int = 60, workers: int = 4, drop_feature: str | None = None, seed: int = 0):
    """A small crowd-csv data set: labels (task, worker, label), features (task, f0..f2), truth. Workers are
    right 85 % of the time, so they agree and their kappa (and the similarity) is positive."""
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c"]
    truth = rng.integers(3, size=tasks)
    labels = []
    for t in range(tasks):
        for w in range(workers):
            if rng.random() < 0.6 or w == 0:
                y = truth[t] if rng.random() < 0.85 else rng.integers(3)
                labels.append((f"t{t}", f"w{w}", classes[y]))
    paths = {"labels": tmp_path / "labels.csv", "features": tmp_path / "features.csv", "truth": tmp_path / "truth.csv"}
    with open(paths["labels"], "w", newline="") as fh:
        csv.writer(fh).writerows([("task", "worker", "label"), *labels])
    with open(paths["features"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["task", "f0", "f1", "f2"])
        for t in range(tasks):
            if f"t{t}" != drop_feature:
                x = np.eye(3)[truth[t]] * 2 + rng.normal(size=3)
                writer.writerow([f"t{t}", *map(float, x)])
    with open(paths["truth"], "w", newline="") as fh:
        csv.writer(fh).writerows([("task", "label"), *[(f"t{t}", classes[truth[t]]) for t in range(tasks)]])
    return paths, labels


# ------------------------------------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "heads,nope"], r"unknown model 'nope'"),
        (["--dataset", "nope"], r"unknown dataset 'nope'"),
        (["--modes", "skip,bogus"], r"unknown mode 'bogus'"),
        (["--seeds", "0,x"], r"--seeds .*'0,x'"),
        (["--seeds", "0,0"], r"--seeds repeats"),
        (["--seeds", "-1"], r"--seeds must be >= 0"),
        (["--missing-rates", "0,1"], r"--missing-rates must lie in \[0, 1\)"),
        (["--jobs", "0"], r"--jobs must be >= 1"),
        (["--bogus-flag", "3"], r"unrecognised argument '--bogus-flag'.*'synthetic'"),
        (["--preset", "nope"], r"'preset' must be one of amer2-like, amer-like, custom; got 'nope'"),
        (["--model-option", "hidden"], r"KEY=VALUE"),
    ],
)
def test_compare_bad_arguments_exit_2_before_training(tmp_path, capsys, args, message):
    out = tmp_path / "cmp"
    assert main(["compare", "--out", str(out), "--epochs", "1", *args]) == 2
    line = one_error_line(capsys, "compare")
    assert re.search(message, line), line
    assert not (out / "runs").exists()


def test_compare_missing_crowd_csv_labels_file(tmp_path, capsys):
    paths, _ = write_crowd(tmp_path)
    missing = tmp_path / "no-such-labels.csv"
    out = tmp_path / "cmp"
    args = ["compare", "--dataset", "crowd-csv", "--labels", str(missing), "--features", str(paths["features"]),
            "--out", str(out), "--epochs", "1"]
    assert main(args) == 2
    line = one_error_line(capsys, "compare")
    assert str(missing) in line and "No such file" in line
    assert not (out / "runs").exists()


def test_compare_features_not_covering_every_task(tmp_path, capsys):
    paths, labels = write_crowd(tmp_path, drop_feature="t7")
    assert any(t == "t7" for t, _, _ in labels)
    out = tmp_path / "cmp"
    args = ["compare", "--dataset", "crowd-csv", "--labels", str(paths["labels"]), "--features",
            str(paths["features"]), "--out", str(out), "--epochs", "1"]
    assert main(args) == 2
    line = one_error_line(capsys, "compare")
    assert "'t7'" in line and "no features" in line and str(paths["features"]) in line
    assert not (out / "runs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--jobs", "x"], r"--jobs.*'x'"),  # argparse's own type check
        (["--mode", "skip"], r"--mode"),  # an abbreviation matching --models, --modes, --model-option
    ],
)
def test_compare_argparse_errors_are_one_line_too(tmp_path, capsys, args, message):
    """The CLI promises status 2 and ONE line on stderr for every user error, argparse's included."""
    out = tmp_path / "cmp"
    assert status(["compare", "--out", str(out), *args]) == 2
    line = one_error_line(capsys, "compare")
    assert re.search(message, line), line
    assert not (out / "runs").exists()


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One tiny compare (2 seeds x 3 modes x 2 missing rates = 12 runs) shared by the tests below."""
    out = tmp_path_factory.mktemp("compare") / "cmp"
    argv = ["compare", *TINY, "--seeds", "0,1", "--modes", ",".join(MODES), "--missing-rates", "0,0.3",
            "--out", str(out)]
    capture = pytest.MonkeyPatch()
    stdout, stderr = io.StringIO(), io.StringIO()
    capture.setattr(sys, "stdout", stdout)
    capture.setattr(sys, "stderr", stderr)
    try:
        code = main(argv)
    finally:
        capture.undo()
    return {"out": out, "argv": argv, "code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def run_dirs(out: Path) -> list[Path]:
    return sorted(p.parent for p in (out / "runs").rglob("metrics.json"))


def _naive_consensus_avg(arrays) -> float:
    """Avg on the test split of each item's most frequent predicted label (ties to the lower class) given to every
    annotator, by plain loops."""
    hits, counts = {}, {}
    for i in range(len(arrays["split"])):
        if arrays["split"][i] != 2:
            continue
        predicted = [int(p) for p in arrays["prediction"][i]]
        consensus = max(sorted(set(predicted)), key=predicted.count)  # max keeps the first of equals: the lowest
        for a, label in enumerate(arrays["labels"][i]):
            if label >= 0:
                hits[a] = hits.get(a, 0) + (label == consensus)
                counts[a] = counts.get(a, 0) + 1
    return statistics.mean(hits[a] / counts[a] for a in counts)


def test_compare_end_to_end(compared):
    out = compared["out"]
    assert compared["code"] == 0, compared["stderr"]
    data = json.loads((out / "results.json").read_text())
    assert data["dataset"] == "synthetic" and data["seeds"] == [0, 1] and data["missing_rates"] == [0.0, 0.3]
    assert data["modes"] == MODES and data["models"] == ["heads"]
    assert data["dataset_options"] == {"preset": "custom", "items": "120", "annotators": "4", "classes": "3"}
    assert data["config"]["epochs"] == 2 and data["config"]["lr"] == 0.01
    runs = data["runs"]
    assert len(runs) == 12
    cells = {(r["missing_rate"], r["mode"], r["seed"]) for r in runs}
    assert cells == {(rate, mode, seed) for rate in (0.0, 0.3) for mode in MODES for seed in (0, 1)}
    assert len(run_dirs(out)) == 12
    for r in runs:
        on_disk = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        assert {k: v for k, v in r.items() if k not in ("run_dir", "imputation_baselines")} == on_disk
        assert ("imputation_baselines" in r) == (r["mode"] == "simlabel+confidence")
        # predictions.npz scores the test split exactly as the run did
        test = split_outcome(RunDirectory(r["run_dir"]).predictions())
        assert avg_accuracy(test, np.ones((1, len(test.correct))))[0] == pytest.approx(r["avg_accuracy"], abs=1e-12)
        config = load_config(Path(r["run_dir"]) / "config.toml")
        assert (config.simlabel.mode, config.seed, config.missing_rate, config.epochs) == (r["mode"], r["seed"],
                                                                                    r["missing_rate"], 2)
        assert len(on_disk["annotators"]) == 4
    # the table recomputed from the runs
    table = data["table"]
    assert [(t["missing_rate"], t["mode"]) for t in table] == [(rate, m) for rate in (0.0, 0.3) for m in MODES]
    by = {(r["missing_rate"], r["mode"], r["seed"]): r for r in runs}
    for t in table:
        members = [by[t["missing_rate"], t["mode"], s] for s in (0, 1)]
        avg = [m["avg_accuracy"] for m in members]
        assert t["seeds"] == [0, 1]
        assert t["avg_mean"] == pytest.approx(statistics.mean(avg), abs=1e-12)
        assert t["avg_std"] == pytest.approx(statistics.stdev(avg), abs=1e-12)
        micro = [m["micro_accuracy"] for m in members]
        assert t["micro_std"] == pytest.approx(statistics.stdev(micro), abs=1e-12)
        gains = [m["avg_accuracy"] - by[t["missing_rate"], "skip", m["seed"]]["avg_accuracy"] for m in members]
        assert t["gain_mean"] == pytest.approx(statistics.mean(gains), abs=1e-12)
        assert t["gain_std"] == pytest.approx(statistics.stdev(gains), abs=1e-12)
        assert t["imputations_mean"] == statistics.mean(m["imputations"] for m in members)
        if t["mode"] != "skip":  # the criterion, recomputed from the runs' predictions
            outcome = {(m["seed"], m["mode"]): split_outcome(RunDirectory(m["run_dir"]).predictions())
                       for m in runs if m["missing_rate"] == t["missing_rate"]}
            g = paired_gain([(s, outcome[s, t["mode"]], outcome[s, "skip"]) for s in (0, 1)])
            assert (t["gain_low"], t["gain_high"], t["verdict"]) == (g.low, g.high, g.verdict)
            assert t["gain_se"] == pytest.approx(statistics.stdev(gains) / 2 ** 0.5, abs=1e-12)
        for k, ann in enumerate(["A1", "A2", "A3", "A4"]):
            assert t["per_annotator"][ann]["test_count"] == sum(m["annotators"][k]["test_count"] for m in members)
        broadcast = [_naive_consensus_avg(RunDirectory(m["run_dir"]).predictions()) for m in members]
        assert t["consensus_mean"] == pytest.approx(statistics.mean(broadcast), abs=1e-12)
        own_gains = [m["avg_accuracy"] - b for m, b in zip(members, broadcast)]
        assert t["over_consensus_mean"] == pytest.approx(statistics.mean(own_gains), abs=1e-12)
        assert t["over_consensus_low"] <= t["over_consensus_high"]
    md = (out / "results.md").read_text()
    assert md.count("### ") == 2
    assert "### natural missingness" in md and "### extra missing rate 0.3 of the training labels removed" in md
    for mode in MODES:
        assert md.count(f"| heads | {mode} |") == 4  # a rate's table and its consensus table, at two rates
    assert md.count("Own predictions against their consensus") == 2
    assert "simlabel compare " in md and "--missing-rates 0,0.3" in md  # the command that regenerates it
    # stdout is the Markdown report; stderr a summary and one line per run
    assert compared["stdout"].strip() == md.strip()
    err = compared["stderr"].splitlines()
    assert err[0].startswith("compare: dataset synthetic (120 items, 4 annotators, 3 classes)")
    assert "= 12 runs, 0 already finished" in err[0]
    assert sum(line.startswith("  heads ") for line in err) == 12 and "(reused)" not in compared["stderr"]
    for name in PNGS:
        image = matplotlib.image.imread(str(out / name))
        assert image.shape[0] > 0 and image.shape[1] > 0
    with open(out / "results.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 6


def test_compare_again_reuses_every_run(compared, capsys):
    out = compared["out"]
    dirs = run_dirs(out)
    before = {p: p.stat().st_mtime_ns for d in dirs for p in d.rglob("*") if p.is_file()}
    table = json.loads((out / "results.json").read_text())["table"]
    started = time.perf_counter()
    assert main(compared["argv"]) == 0
    seconds = time.perf_counter() - started
    captured = capsys.readouterr()
    after = {p: p.stat().st_mtime_ns for d in dirs for p in d.rglob("*") if p.is_file()}
    assert after == before  # no file of any run was written, none added
    run_lines = [line for line in captured.err.splitlines() if line.startswith("  heads ")]
    assert len(run_lines) == 12 and all(line.endswith("(reused)") for line in run_lines)
    assert "12 runs, 12 already finished" in captured.err
    assert json.loads((out / "results.json").read_text())["table"] == table
    assert captured.out.strip() == (out / "results.md").read_text().strip()
    assert seconds < 30


def test_compare_parallel_jobs_give_the_same_metrics(compared, tmp_path):
    """Two runs in two spawned worker processes equal the same runs trained in this process."""
    out = tmp_path / "cmp"
    argv = ["compare", *TINY, "--seeds", "1", "--modes", "skip,simlabel+confidence", "--missing-rates", "0.3",
            "--out", str(out), "--jobs", "2", "--no-plots"]
    assert main(argv) == 0
    dirs = run_dirs(out)
    assert len(dirs) == 2
    for d in dirs:
        mine = json.loads((d / "metrics.json").read_text())
        reference = compared["out"] / d.relative_to(out)
        theirs = json.loads((reference / "metrics.json").read_text())
        assert strip_seconds(mine) == strip_seconds(theirs)
        assert (d / "imputed_labels.csv").read_text() == (reference / "imputed_labels.csv").read_text()
    assert not any(out.glob("*.png"))


def test_dataset_option_missing_is_not_taken_for_missing_rates(tmp_path):
    """``--missing`` is an option of the synthetic dataset (preset custom); argparse must not read it as an
    abbreviation of compare's --missing-rates (or train's --missing-rate)."""
    out = tmp_path / "cmp"
    small = [*DATA, "--items", "40", "--missing", "0.5", "--epochs", "1", *TRAIN]
    assert main(["compare", *small, "--seeds", "0", "--modes", "skip", "--out", str(out), "--no-plots"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["missing_rates"] == [0.0]
    assert float(data["dataset_options"].get("missing", "nan")) == 0.5
    run = tmp_path / "train"
    assert main(["train", *small, "--mode", "skip", "--out", str(run)]) == 0
    config = load_config(run / "config.toml")
    assert config.missing_rate == 0.0
    assert float(config.dataset_options.get("missing", "nan")) == 0.5


def test_compare_again_with_a_run_that_has_no_test_labels(tmp_path, capsys):
    """20 items, 2 annotators labelling 2 items each: with seed 2 the test split holds no label, so the run's
    Avg is undefined (null in metrics.json). Repeating the command must reuse the run, not crash on the null."""
    out = tmp_path / "cmp"
    argv = ["compare", "--preset", "custom", "--items", "20", "--annotators", "2", "--classes", "3",
            "--dataset-option", "missing=0.9", "--epochs", "1", *TRAIN, "--threads", "1", "--seeds", "2",
            "--modes", "skip,simlabel", "--out", str(out), "--no-plots"]  # fmt: skip
    assert main(argv) == 0
    dirs = run_dirs(out)
    assert len(dirs) == 2
    assert all(json.loads((d / "metrics.json").read_text())["avg_accuracy"] is None for d in dirs)  # premise
    capsys.readouterr()
    assert status(argv) == 0
    err = capsys.readouterr().err
    assert sum(line.endswith("(reused)") for line in err.splitlines()) == 2, err
    table = json.loads((out / "results.json").read_text())["table"]
    assert [t["avg_mean"] for t in table] == [None, None]


# ------------------------------------------------------------------------------------------------ impute
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished simlabel+confidence run on a crowd-csv set with a low threshold, so that labels get imputed."""
    root = tmp_path_factory.mktemp("impute")
    paths, labels = write_crowd(root)
    run = root / "run"
    code = main(["train", "--dataset", "crowd-csv", "--labels", str(paths["labels"]), "--features",
                 str(paths["features"]), "--truth", str(paths["truth"]), "--mode", "simlabel+confidence",
                 "--threshold", "0.05", "--lr", "1e-2", "--epochs", "2", "--no-progress", "--device", "cpu",
                 "--out", str(run)])  # fmt: skip
    assert code == 0
    with open(run / "imputed_labels.csv", newline="") as fh:
        imputed = list(csv.reader(fh))
    return {"root": root, "run": run, "labels": labels, "imputed": imputed}


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_impute_writes_the_imputed_labels(trained, capsys):
    imputed = trained["imputed"]
    assert imputed[0] == ["task", "worker", "label", "confidence", "epoch", "step", "revisions"]
    assert len(imputed) > 1, "nothing was imputed"
    metrics = json.loads((trained["run"] / "metrics.json").read_text())
    assert metrics["imputations"] == len(imputed) - 1
    observed = {(t, w) for t, w, _ in trained["labels"]}
    for task, worker, label, confidence, *_ in imputed[1:]:
        assert (task, worker) not in observed  # an observed label is never imputed over
        assert label in ("a", "b", "c") and float(confidence) >= 0.05
    capsys.readouterr()
    assert main(["impute", str(trained["run"])]) == 0
    captured = capsys.readouterr()
    rows = list(csv.reader(captured.out.splitlines()))
    assert rows[0] == ["task", "worker", "label", "source", "confidence", "epoch", "step", "revisions"]
    assert rows[1:] == [r[:3] + ["imputed"] + r[3:] for r in imputed[1:]]
    assert captured.err.strip() == f"impute: {len(imputed) - 1} imputed labels"


def test_impute_with_observed_csv_and_parquet(trained, capsys):
    imputed = trained["imputed"][1:]
    capsys.readouterr()
    out = trained["root"] / "completed.csv"
    assert main(["impute", str(trained["run"]), "--with-observed", "--out", str(out)]) == 0
    rows = read_rows(out)
    assert rows[0] == ["task", "worker", "label", "source", "confidence", "epoch", "step", "revisions"]
    observed = [r for r in rows[1:] if r[3] == "observed"]
    assert sorted(tuple(r[:3]) for r in observed) == sorted(trained["labels"])  # exactly the labels file
    assert all(r[4:] == ["", "", "", ""] for r in observed)
    assert [r for r in rows[1:] if r[3] == "imputed"] == [r[:3] + ["imputed"] + r[3:] for r in imputed]
    assert len(rows) - 1 == len(observed) + len(imputed)
    assert len({(r[0], r[1]) for r in rows[1:]}) == len(rows) - 1  # every (task, worker) once
    err = capsys.readouterr().err.strip()
    assert err == f"impute: {len(imputed)} imputed and {len(observed)} observed labels -> {out}"

    pq = pytest.importorskip("pyarrow.parquet")
    parquet = trained["root"] / "completed.parquet"
    assert main(["impute", str(trained["run"]), "--with-observed", "--out", str(parquet)]) == 0
    table = pq.read_table(parquet)
    assert table.column_names == rows[0]
    back = [["" if v is None else v for v in r.values()] for r in table.to_pylist()]
    assert back == rows[1:]


def test_impute_with_observed_keeps_every_real_label_whatever_the_missing_rate_and_directory(tmp_path, monkeypatch,
                                                                                            capsys):
    """With labels removed for training (missing rate 0.5), the completed file still holds every real label of the
    input once, marked observed, and imputed labels only where no real label exists; the run directory records
    absolute input paths, so impute reads the same labels from another working directory (which holds a decoy
    labels.csv under the relative name the run was started with)."""
    paths, labels = write_crowd(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", "crowd-csv", "--labels", "labels.csv", "--features", "features.csv",
                 "--missing-rate", "0.5", "--mode", "simlabel+confidence", "--threshold", "0.05", "--lr", "1e-2",
                 "--epochs", "2", "--no-progress", "--device", "cpu", "--out", "run"]) == 0
    run = tmp_path / "run"
    options = load_config(run / "config.toml").dataset_options
    assert (options["labels"], options["features"]) == (str(paths["labels"]), str(paths["features"]))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["imputations_scored"] > 0, "some imputed labels must sit where a real label was removed"
    imputed = read_rows(run / "imputed_labels.csv")[1:]
    real = {(t, w) for t, w, _ in labels}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "labels.csv").write_text("task,worker,label\nt0,w0,a\n")
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["impute", str(run), "--with-observed", "--out", "completed.csv"]) == 0
    rows = read_rows(elsewhere / "completed.csv")[1:]
    assert sorted(tuple(r[:3]) for r in rows if r[3] == "observed") == sorted(labels)  # every real label
    kept = [r[:3] + ["imputed"] + r[3:] for r in imputed if (r[0], r[1]) not in real]
    assert [r for r in rows if r[3] == "imputed"] == kept  # imputed only where no real label exists
    assert len(kept) < len(imputed)
    assert len({(r[0], r[1]) for r in rows}) == len(rows) == len(labels) + len(kept)  # every entry once
    err = capsys.readouterr().err
    assert f"({len(imputed) - len(kept)} imputed at entries whose real label was removed for training" in err


def test_impute_refuses_an_unfinished_run(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["impute", str(empty)]) == 2
    line = one_error_line(capsys, "impute")
    assert "not a finished run" in line and "metrics.json" in line and str(empty) in line
    assert main(["impute", str(tmp_path / "nowhere")]) == 2
    assert "not a finished run" in one_error_line(capsys, "impute")


def test_impute_refuses_a_run_without_metrics(trained, tmp_path, capsys):
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("config.toml", "imputed_labels.csv", "history.json"):
        (partial / name).write_bytes((trained["run"] / name).read_bytes())
    assert main(["impute", str(partial)]) == 2
    assert "metrics.json is missing" in one_error_line(capsys, "impute")


# ------------------------------------------------------------------------------------------------ kappa --plot
def test_kappa_plot_writes_a_png(tmp_path, capsys):
    paths, _ = write_crowd(tmp_path, tasks=30)
    png = tmp_path / "kappa.png"
    assert main(["kappa", str(paths["labels"]), "--out", str(tmp_path / "k.csv"), "--plot", str(png)]) == 0
    image = matplotlib.image.imread(str(png))
    assert image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > 0
    assert float(np.asarray(image[..., :3]).std()) > 0
    assert (tmp_path / "k.csv").is_file()
    capsys.readouterr()


# ------------------------------------------------------------------------------------------------ --help
def help_entries(capsys, command: str) -> dict[str, str]:
    """``--flag`` -> its help entry (whitespace collapsed) of ``simlabel COMMAND --help``."""
    assert status([command, "--help"]) == 0
    text = capsys.readouterr().out
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"^  (-\w|--[\w-]+)", line)
        if match:
            current = line
            entries[current] = ""
        elif current is not None and line.startswith("    "):
            entries[current] += " " + line
        else:
            current = None
    out = {}
    for head, rest in entries.items():
        entry = " ".join((head + rest).split())
        for name in re.findall(r"--[\w-]+", head):
            out.setdefault(name, entry)
    return out


def config_flags(skip=()) -> dict[str, object]:
    defaults = TrainConfig().to_dict()
    return {"--" + f.name.replace("_", "-"): defaults[f.name] for f in option_fields()
            if f.name not in ("dataset_options", "model_options") and f.name not in skip}


#: Options without a default worth stating (a switch that is off, a file that is not read, repeatable KEY=VALUE).
NO_DEFAULT = {"--help", "--config", "--resume", "--no-plots", "--dataset-option", "--model-option"}


@pytest.mark.parametrize("command", ["train", "compare"])
def test_help_of_train_and_compare_states_every_default(capsys, command):
    entries = help_entries(capsys, command)
    skip = ("model", "mode", "seed", "missing_rate") if command == "compare" else ()
    flags = config_flags(skip)
    for flag, default in flags.items():
        assert flag in entries, flag
        assert f"(default: {default})" in entries[flag], entries[flag]
    for flag, entry in entries.items():
        if flag not in NO_DEFAULT and not flag.startswith("--no-"):
            assert "default" in entry, entry
    if command == "compare":
        assert set(skip) and not {"--model", "--mode", "--seed", "--missing-rate"} & set(entries)
        for flag, default in {"--out": "runs/compare", "--models": "heads", "--modes": ",".join(MODES),
                              "--seeds": "0,1,2", "--missing-rates": "0", "--jobs": "1"}.items():
            assert f"(default: {default})" in entries[flag], entries[flag]


@pytest.mark.parametrize(
    "command, expected",
    [
        ("impute", {"--out": "-", "--with-observed": "False"}),
        ("kappa", {"--out": "-", "--format": "None", "--task-col": "task", "--worker-col": "worker", "--label-col": "label",
                   "--classes": "None", "--overlap-out": "None", "--similarity-out": "None", "--n0": "10.0",
                   "--min-overlap": "0", "--plot": "None", "--backend": "auto"}),
    ],
)  # fmt: skip
def test_help_of_impute_and_kappa_states_every_default(capsys, command, expected):
    entries = help_entries(capsys, command)
    assert set(entries) == {"--help", *expected}
    for flag, default in expected.items():
        assert f"(default: {default})" in entries[flag], entries[flag]
