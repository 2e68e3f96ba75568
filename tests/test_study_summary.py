"""docs/study/summarize.py, which builds docs/results.md's tables: values checked against hand computation.

Two seeds, Skip Avg 0.40 / 0.50 and SimLabel + Confidence 0.46 / 0.54: paired gains 0.06 / 0.04 (mean 5.0,
std 1.4 points), Avg stds 7.1 and 5.7 points, so the gain beats the paired std and not the unpaired one.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "study" / "summarize.py"


@pytest.fixture(scope="module")
def summarize():
    spec = importlib.util.spec_from_file_location("summarize", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(mode, seed, avg, val):
    return {"model": "heads", "mode": mode, "seed": seed, "missing_rate": 0.0,
            "annotators": [{"id": "A1", "accuracy": avg, "test_count": 3}], "avg_accuracy": avg,
            "micro_accuracy": avg, "imputations": 10 if mode != "skip" else 0, "imputation_accuracy": None,
            "best_val_avg_accuracy": val}


def write(directory: Path, runs) -> Path:
    directory.mkdir(parents=True)
    (directory / "results.json").write_text(json.dumps({"runs": runs}), encoding="utf-8")
    return directory


def test_main_table_gains_and_verdicts(tmp_path, summarize):
    conf = "simlabel+confidence"
    d = write(tmp_path / "music", [run("skip", 0, 0.40, 0.3), run("skip", 1, 0.50, 0.3),
                                   run(conf, 0, 0.46, 0.3), run(conf, 1, 0.54, 0.3)])
    row = summarize.main_table(d.name, summarize._runs(d)).splitlines()[-1]
    assert row == ("| heads | 0 | 45.0 ± 7.1 | – | – | 50.0 ± 5.7 | +5.0 ± 1.4 | 10 | – | +Conf yes "
                   "| +Conf NO |")


def test_ablation_rows_are_validation_means(tmp_path, summarize):
    parent = tmp_path / "ablation"
    write(parent / "base", [run("skip", 0, 0.9, 0.30), run("simlabel", 0, 0.9, 0.40),
                                run("simlabel+confidence", 0, 0.9, 0.50)])
    write(parent / "n0-0", [run("simlabel+confidence", 0, 0.9, 0.20), run("simlabel+confidence", 1, 0.9, 0.40)])
    lines = summarize.ablation([parent / "base", parent / "n0-0"]).splitlines()
    assert lines[0] == "| variant | heads mr 0 | mean |"
    assert lines[2:] == ["| base | 50.0 ± 0.0 | 50.0 |", "| base (skip) | 30.0 ± 0.0 | 30.0 |",
                         "| base (simlabel) | 40.0 ± 0.0 | 40.0 |", "| n0-0 | 30.0 ± 14.1 | 30.0 |"]


def test_missing_results_is_a_clear_error(tmp_path, summarize):
    with pytest.raises(SystemExit, match="results.json does not exist"):
        summarize.main(["main", str(tmp_path / "nowhere")])


def test_by_annotator_buckets_by_test_labels_per_seed(tmp_path, summarize):
    def two(mode, seed, sparse_acc, heavy_acc):
        m = run(mode, seed, 0.0, 0.0)
        m["annotators"] = [{"id": "sparse", "accuracy": sparse_acc, "test_count": 1 + seed},
                           {"id": "heavy", "accuracy": heavy_acc, "test_count": 12}]
        return m
    d = write(tmp_path / "music", [two("skip", 0, 0.0, 0.5), two("skip", 1, 0.5, 0.7),
                                   two("simlabel+confidence", 0, 1.0, 0.5), two("simlabel+confidence", 1, 0.5, 0.5)])
    # sparse: 1.5 test labels per seed, Skip mean 25 %, +Conf 75 %; heavy: 12 per seed, 60 % → 50 %
    assert summarize.by_annotator(d).splitlines()[-1] == "| heads | 25.0 → 75.0 (1) | – | 60.0 → 50.0 (1) |"


def test_auto_takes_each_seeds_best_validation_candidate(tmp_path, summarize):
    sl = "simlabel"
    # seed 0: validation 0.30 (Skip) < 0.35 (λ 1) < 0.40 (λ 3) → λ 3, test 0.46;
    # seed 1: Skip's 0.50 beats both (0.45, 0.45) → λ 0, i.e. Skip's own test Avg 0.50 (gain 0)
    base = write(tmp_path / "music", [run("skip", 0, 0.40, 0.30), run("skip", 1, 0.50, 0.50),
                                      run(sl, 0, 0.46, 0.40), run(sl, 1, 0.60, 0.45)])
    lam1 = write(tmp_path / "lam1", [run(sl, 0, 0.70, 0.35), run(sl, 1, 0.70, 0.45)])
    runs, note = summarize.auto_runs(base, {3.0: base, 1.0: lam1})
    chosen = sorted((m["seed"], m["avg_accuracy"]) for m in runs if m["mode"] == sl)
    assert chosen == [(0, 0.46), (1, 0.50)]
    assert note == {("heads", 0.0): "0: 1×, 3: 1×"}
    row = summarize.main_table("music", runs, note).splitlines()[-1]
    assert row.startswith("| heads | 0 | 45.0 ± 7.1 | 48.0 ± 2.8 | +3.0 ± 4.2 |")
    assert row.endswith("| 0: 1×, 3: 1× |")


def test_sampling_se_of_avg_by_hand(summarize):
    # micro accuracy 0.5, annotators with 1 and 4 test labels (and one with none, left out):
    # SE = sqrt(0.25 / 1 + 0.25 / 4) / 2 = sqrt(0.3125) / 2 = 0.2795
    m = run("skip", 0, 0.5, 0.5)
    m["annotators"] = [{"id": "a", "accuracy": 1.0, "test_count": 1}, {"id": "b", "accuracy": 0.25, "test_count": 4},
                       {"id": "c", "accuracy": None, "test_count": 0}]
    assert summarize.sampling_se(m) == pytest.approx(0.3125 ** 0.5 / 2, abs=1e-12)
