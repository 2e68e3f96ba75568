"""docs/study/summarize.py, which builds docs/results.md's tables: values checked against hand computation.

Runs are written as a compare output would be: ``results.json`` with ``runs`` (each with its ``run_dir``) and
``table``, and per run a ``predictions.npz`` whose test and validation items are chosen so that each gain is known
exactly: a run right on every labelled item has Avg 1, one wrong on every item Avg 0.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simlabel_ext.report.tables import aggregate


@pytest.fixture(scope="module")
def summarize(load_study_script):
    return load_study_script("summarize")


#: 6 items x 2 annotators: items 0-1 train (annotator 0 has 2 training labels, annotator 1 none), 2-3 validation,
#: 4-5 test; every validation and test entry is labelled 0
SPLIT = np.array([0, 0, 1, 1, 2, 2], dtype=np.int8)
LABELS = np.array([[0, -1], [0, -1], [0, 0], [0, 0], [0, 0], [0, 0]], dtype=np.int16)


def predictions(test_right: bool, val_right: bool) -> dict[str, np.ndarray]:
    prediction = np.ones((6, 2), dtype=np.int16)
    prediction[SPLIT == 2] = 0 if test_right else 1
    prediction[SPLIT == 1] = 0 if val_right else 1
    return {"classes": np.array(["a", "b"]), "split": SPLIT, "labels": LABELS, "hidden": np.full((6, 2), -1, np.int16),
            "imputed": np.full((6, 2), -1, np.int16), "prediction": prediction}


def run(root: Path, model, mode, seed, avg, val, rate=0.0, best_epoch=5, arrays=None) -> dict:
    run_dir = root / "runs" / model / mode / f"mr{rate}" / f"seed{seed}"
    run_dir.mkdir(parents=True)
    if arrays is not None:
        np.savez(run_dir / "predictions.npz", **arrays)
    return {"model": model, "mode": mode, "seed": seed, "missing_rate": rate, "run_dir": str(run_dir),
            "annotators": [{"id": "A1", "accuracy": avg, "test_count": 2}, {"id": "A2", "accuracy": avg,
                                                                           "test_count": 2}],
            "avg_accuracy": avg, "micro_accuracy": avg, "imputations": 0, "imputation_accuracy": None,
            "best_val_avg_accuracy": val, "best_epoch": best_epoch, "epoch_limit": 10}


def write(directory: Path, runs) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    table = aggregate(runs)
    (directory / "results.json").write_text(json.dumps({"runs": runs, "table": table}), encoding="utf-8")
    return directory


def test_main_table_reports_the_compare_rows(tmp_path, summarize):
    d = tmp_path / "music"
    runs = [run(d, "heads", "skip", 0, 0.40, 0.3), run(d, "heads", "skip", 1, 0.50, 0.3),
            run(d, "heads", "simlabel", 0, 0.46, 0.3), run(d, "heads", "simlabel", 1, 0.54, 0.3, best_epoch=10)]
    lines = summarize.main_table(write(d, runs)).splitlines()
    # Skip 45.0 ± 7.1; SimLabel 50.0 ± 5.7, gains +6 and +4: mean 5.0, SE 1.0; no predictions: no interval
    assert lines[4] == "| 0 | heads | 45.0 ± 7.1 | 50.0 ± 5.7 | +5.0 ± 1.0 [–, –] – | – | – |"
    assert lines[-1] == "Not converged: heads simlabel mr 0 seed 1 (epoch 10 of 10)."


def test_aim_picks_the_best_backbone_on_validation_and_pairs_it_on_test(tmp_path, summarize):
    d = tmp_path / "sentiment"
    wrong, right = predictions(False, False), predictions(True, True)
    runs = []
    for seed in (0, 1):
        runs += [run(d, "padl", "skip", seed, 0.0, 0.6, arrays=wrong),        # the best Skip backbone (val 0.6)
                 run(d, "heads", "skip", seed, 0.0, 0.2, arrays=wrong),
                 run(d, "heads", "simlabel", seed, 1.0, 0.7, arrays=right),   # the best with SimLabel (val 0.7)
                 run(d, "padl", "simlabel", seed, 0.0, 0.5, arrays=wrong)]
    lines = summarize.aim(write(d, runs)).splitlines()
    # heads SimLabel right on every test entry, padl Skip wrong on every one: +100 points, interval [100, 100]
    assert lines[-1] == ("| 0 | padl | 0.0 ± 0.0 | heads simlabel | 100.0 ± 0.0 | +100.0 ± 0.0 [+100.0, +100.0] "
                         "**beats** |")


def test_sharing_pairs_each_variant_with_skip_on_validation_items(tmp_path, summarize):
    parent = tmp_path / "sharing"
    for seed in (0, 1):
        for variant, arrays in (("skip", predictions(True, True)), ("base", predictions(True, True)),
                                ("shrink", predictions(True, False))):
            d = parent / "music" / "padl" / f"s{seed}" / variant
            d.mkdir(parents=True)
            np.savez(d / "predictions.npz", **arrays)
            (d / "metrics.json").write_text("{}")
    lines = summarize.sharing(parent).splitlines()
    assert lines[2] == "| variant | padl |"
    # base equals Skip; shrink is right on test but wrong on validation: the table uses validation (-100)
    assert lines[4:] == ["| base | +0.0 ± 0.0 [+0.0, +0.0] inconclusive |",
                         "| shrink | -100.0 ± 0.0 [-100.0, -100.0] **worse** |"]


def test_dense_pairs_the_lever_with_the_grid_and_puts_it_in_the_aim(tmp_path, summarize):
    grid, lever = tmp_path / "music", tmp_path / "dense-music"
    wrong, right = predictions(False, False), predictions(True, True)
    runs = []
    for seed in (0, 1):
        runs += [run(grid, "heads", "skip", seed, 0.0, 0.2, arrays=wrong),
                 run(grid, "heads", "simlabel", seed, 0.0, 0.5, arrays=wrong),
                 run(grid, "madl", "skip", seed, 0.0, 0.6, arrays=wrong),       # the best Skip backbone (val 0.6)
                 run(grid, "madl", "simlabel", seed, 0.0, 0.55, arrays=wrong)]
        d = lever / "runs" / "heads" / "mr0" / f"s{seed}"                       # the lever: val 0.7, right on test
        d.mkdir(parents=True)
        np.savez(d / "predictions.npz", **right)
        (d / "metrics.json").write_text(json.dumps({"model": "heads", "seed": seed, "missing_rate": 0.0,
                                                    "avg_accuracy": 1.0, "best_val_avg_accuracy": 0.7}))
    lines = summarize.dense(write(grid, runs), lever).splitlines()
    # heads with the lever right on every test entry, its Skip and SimLabel runs wrong on every one: +100 points
    assert lines[4] == ("| 0 | heads | 100.0 ± 0.0 | +100.0 ± 0.0 [+100.0, +100.0] **beats** | "
                        "+100.0 ± 0.0 [+100.0, +100.0] **beats** |")
    # the aim with the lever in the choice: heads + the lever (val 0.7) against madl Skip (val 0.6)
    assert lines[-1] == ("| 0 | madl | 0.0 ± 0.0 | heads dense | 100.0 ± 0.0 | +100.0 ± 0.0 [+100.0, +100.0] "
                         "**beats** |")


def test_buckets_by_training_labels(tmp_path, summarize):
    d = tmp_path / "music"
    arrays = predictions(True, True)   # annotator A1 has 2 training labels, A2 none: both in bucket 0-9
    runs = []
    for mode, acc in (("skip", 0.25), ("simlabel", 0.5), ("simlabel+confidence", 0.75)):
        m = run(d, "heads", mode, 0, acc, 0.5, arrays=arrays)
        m["annotators"][1]["accuracy"] = None        # A2: no test labels in this run
        runs.append(m)
    lines = summarize.buckets(write(d, runs)).splitlines()
    assert lines[2] == "| model | 0–9 training labels | 10–49 training labels | ≥ 50 training labels |"
    assert lines[-1] == "| heads | 25.0 → 50.0 → 75.0 (1) | – | – |"


def test_budget_table_and_summary(tmp_path, summarize):
    parent = tmp_path / "budget"
    for lr, (val, epoch) in {"1e-3": (0.6, 5), "1e-4": (0.5, 10)}.items():
        d = parent / f"music-lr{lr}"
        write(d, [run(d, "heads", "skip", 0, 0.5, val, best_epoch=epoch)])
    text = summarize.budget(parent)
    assert "| music | heads | skip | 60.0 (epoch 5 of 10) | 50.0 (epoch 10 of 10) |" in text
    assert text.endswith("lr 1e-3: mean validation Avg 60.0, converged 1 of 1; lr 1e-4: mean validation Avg 50.0, "
                         "converged 0 of 1.")


def test_ablation_rows_are_validation_means(tmp_path, summarize):
    parent = tmp_path / "ablation"
    write(parent / "base", [run(parent / "base", "heads", "skip", 0, 0.9, 0.30),
                            run(parent / "base", "heads", "simlabel", 0, 0.9, 0.40),
                            run(parent / "base", "heads", "simlabel+confidence", 0, 0.9, 0.50)])
    write(parent / "n0-0", [run(parent / "n0-0", "heads", "simlabel+confidence", 0, 0.9, 0.20),
                            run(parent / "n0-0", "heads", "simlabel+confidence", 1, 0.9, 0.40)])
    lines = summarize.ablation([parent / "base", parent / "n0-0"]).splitlines()
    assert lines[0] == "| variant | heads mr 0 | mean |"
    assert lines[2:] == ["| base | 50.0 ± 0.0 | 50.0 |", "| base (skip) | 30.0 ± 0.0 | 30.0 |",
                         "| base (simlabel) | 40.0 ± 0.0 | 40.0 |", "| n0-0 | 30.0 ± 14.1 | 30.0 |"]


def test_missing_results_is_a_clear_error(tmp_path, summarize):
    with pytest.raises(SystemExit, match="results.json does not exist"):
        summarize.main(["main", str(tmp_path / "nowhere")])


def test_groups_splits_the_similarity_and_kappa_by_annotator_group(tmp_path, summarize):
    d = tmp_path / "grouped"
    heat = run(d, "heads", "simlabel+confidence", 0, 0.5, 0.5)
    other = run(d, "heads", "simlabel", 0, 0.5, 0.5)             # not the heat map's run: its arrays must not count
    write(d, [heat, other])
    results = json.loads((d / "results.json").read_text(encoding="utf-8"))
    results["dataset_options"] = {"groups": "2", "tendency": "1"}
    (d / "results.json").write_text(json.dumps(results), encoding="utf-8")
    # 4 annotators, groups 0, 1, 0, 1: of the 12 ordered pairs, (0, 2), (2, 0), (1, 3), (3, 1) lie inside a group
    nan = np.nan
    similarity = np.array([[0, .25, .5, 0], [.25, 0, 0, 0], [.5, 0, 0, 0], [0, 0, 0, 0]])
    before = np.array([[1, .2, .5, nan], [.2, 1, nan, nan], [.5, nan, 1, -.4], [nan, nan, -.4, 1]])
    after = np.where(np.add.outer(range(4), range(4)) % 2 == 0, .9, .3)
    np.fill_diagonal(after, 1.0)                                   # the diagonal is no pair
    np.savez(Path(heat["run_dir"]) / "similarity.npz", annotators=np.array(["A1", "A2", "A3", "A4"]),
             similarity_initial=similarity, kappa_initial=before, kappa_final=after)
    np.savez(Path(other["run_dir"]) / "similarity.npz", annotators=np.array(["A1", "A2", "A3", "A4"]),
             similarity_initial=np.ones((4, 4)), kappa_initial=np.ones((4, 4)), kappa_final=np.ones((4, 4)))
    lines = summarize.groups(d).splitlines()
    # inside: 4 of 12 pairs (33.3 %); positive S: 4 entries, 2 inside (50 %); S mass: 1.0 of 1.5 inside (66.7 %);
    # kappa before: inside (0.5 + 0.5) / 2, between (0.2 + 0.2 - 0.4 - 0.4) / 4; after: 0.9 inside, 0.3 between
    assert lines[0].startswith("**grouped** (tendency 1, 2 groups)")
    assert lines[-1] == "| 33.3 | 50.0 | 66.7 | +0.50 | -0.10 | +0.90 | +0.30 |"


def test_groups_names_the_grid_without_the_heat_map_run(tmp_path, summarize):
    d = tmp_path / "grouped"
    write(d, [run(d, "madl", "skip", 0, 0.5, 0.5)])
    results = json.loads((d / "results.json").read_text(encoding="utf-8"))
    results["dataset_options"] = {"groups": "2"}
    (d / "results.json").write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(SystemExit, match="has no heads simlabel\\+confidence run of seed 0"):
        summarize.groups(d)
