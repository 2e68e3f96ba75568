"""The comparison report: aggregated tables, the CSV, the annotator ordering, the figures and the report folder.

Oracles: mean / sample std / paired gains computed by hand from metrics dicts written here (the numbers are
chosen so that the hand values are short decimals); the rendered cells written out by hand; a block-structured
similarity matrix whose blocks are known; figures read back with ``matplotlib.image.imread``.
"""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib.image  # noqa: E402

from simlabel_ext.report import (  # noqa: E402
    FIGURES,
    aggregate,
    markdown_tables,
    write_csv,
    write_report,
)
from simlabel_ext.report.plots import (  # noqa: E402
    cluster_order,
    plot_accuracy_by_annotator,
    plot_avg_vs_missing_rate,
    plot_imputations,
    plot_similarity_heatmaps,
)
from simlabel_ext.report.tables import MAX_ANNOTATOR_COLUMNS  # noqa: E402


def metrics(mode, seed, rate, avg, micro, accs, counts, imputations=0, imp_acc=None, model="heads"):
    """A ``metrics.json`` dict with the keys the trainer writes (train/trainer.py ``_metrics``)."""
    return {
        "dataset": "synthetic", "model": model, "mode": mode, "seed": seed, "missing_rate": rate,
        "annotators": [{"id": f"A{k + 1}", "accuracy": acc, "test_count": n}
                       for k, (acc, n) in enumerate(zip(accs, counts))],
        "avg_accuracy": avg, "micro_accuracy": micro,
        "annotators_with_test_labels": sum(n > 0 for n in counts), "test_labels": sum(counts), "test_loss": 1.0,
        "imputations": imputations, "imputations_scored": 0, "imputation_accuracy": imp_acc,
        "best_epoch": 1, "best_val_loss": 1.0, "epochs_run": 1, "epoch_limit": 10, "steps": 1, "world_size": 1,
        "train_seconds": 0.1,
    }  # fmt: skip


def grid_runs():
    """Rate 0: skip / simlabel over seeds 0, 1, 2 (A3 has no test labels in seed 1);
    rate 0.2: skip / simlabel / simlabel+confidence over seeds 0, 1. Listed out of order on purpose."""
    return [
        # rate 0, skip: Avg 0.40, 0.50, 0.45 -> mean 0.45, sample std 0.05
        metrics("skip", 1, 0.0, 0.50, 0.60, [0.5, 0.5, None], [4, 2, 0]),
        metrics("skip", 0, 0.0, 0.40, 0.50, [0.25, 0.5, 0.6], [4, 2, 5]),
        # rate 0, simlabel: Avg 0.50, 0.52, 0.57 -> mean 0.53; gains 0.10, 0.02, 0.12 -> mean 0.08
        metrics("simlabel", 0, 0.0, 0.50, 0.55, [0.5, 0.5, 0.5], [4, 2, 5]),
        metrics("simlabel", 1, 0.0, 0.52, 0.65, [0.52, 0.52, None], [4, 2, 0]),
        metrics("skip", 2, 0.0, 0.45, 0.40, [0.75, 0.0, 0.6], [4, 3, 5]),
        metrics("simlabel", 2, 0.0, 0.57, 0.70, [0.5, 0.5, 0.7], [4, 3, 5]),
        # rate 0.2: skip Avg 0.40, 0.50 (mean 45.0, std 7.1); simlabel 0.50, 0.50 (gains 0.10, 0.00)
        metrics("skip", 0, 0.2, 0.40, 0.40, [0.4, 0.4, 0.4], [5, 5, 5]),
        metrics("skip", 1, 0.2, 0.50, 0.50, [0.5, 0.5, 0.5], [5, 5, 5]),
        metrics("simlabel", 0, 0.2, 0.50, 0.50, [0.5, 0.5, 0.5], [5, 5, 5]),
        metrics("simlabel", 1, 0.2, 0.50, 0.50, [0.5, 0.5, 0.5], [5, 5, 5]),
        metrics("simlabel+confidence", 1, 0.2, 0.60, 0.60, [0.6, 0.6, 0.6], [5, 5, 5], 14, 0.7),
        metrics("simlabel+confidence", 0, 0.2, 0.44, 0.44, [0.44, 0.44, 0.44], [5, 5, 5], 10, 0.6),
    ]  # fmt: skip


def row(rows, rate, mode, model="heads"):
    [match] = [r for r in rows if r["missing_rate"] == rate and r["mode"] == mode and r["model"] == model]
    return match


# ------------------------------------------------------------------------------------------------ aggregate
def test_aggregate_means_sample_stds_and_paired_gains():
    rows = aggregate(grid_runs())
    # first-seen order of (rate, model, mode)
    assert [(r["missing_rate"], r["mode"]) for r in rows] == [
        (0.0, "skip"), (0.0, "simlabel"), (0.2, "skip"), (0.2, "simlabel"), (0.2, "simlabel+confidence")
    ]  # fmt: skip
    skip0 = row(rows, 0.0, "skip")
    assert skip0["seeds"] == [0, 1, 2]
    assert skip0["avg_mean"] == pytest.approx(0.45) and skip0["avg_std"] == pytest.approx(0.05)
    # micro 0.50, 0.60, 0.40: mean 0.5, sample std sqrt((0.01 + 0.01) / 2) = 0.1
    assert skip0["micro_mean"] == pytest.approx(0.5) and skip0["micro_std"] == pytest.approx(0.1)
    assert skip0["gain_mean"] == 0.0 and skip0["gain_std"] == 0.0
    sim0 = row(rows, 0.0, "simlabel")
    assert sim0["avg_mean"] == pytest.approx(0.53)
    assert sim0["avg_std"] == pytest.approx(math.sqrt((0.03**2 + 0.01**2 + 0.04**2) / 2))  # 0.0361
    # paired gains per seed 0.10, 0.02, 0.12: mean 0.08, std sqrt((0.02^2 + 0.06^2 + 0.04^2) / 2) = sqrt(0.0028)
    assert sim0["gain_mean"] == pytest.approx(0.08)
    assert sim0["gain_std"] == pytest.approx(math.sqrt(0.0028))
    # the unpaired difference of the std would be different: the gain is really paired
    assert sim0["gain_std"] != pytest.approx(math.hypot(sim0["avg_std"], skip0["avg_std"]), rel=1e-3)
    assert sim0["imputations_mean"] == 0.0 and math.isnan(sim0["imputation_accuracy_mean"])

    # per annotator: A1 of skip 0.25, 0.5, 0.75 -> 0.5 +- 0.25; A3 None in seed 1 -> over seeds 0 and 2 only
    ann = skip0["per_annotator"]
    assert list(ann) == ["A1", "A2", "A3"]
    assert ann["A1"]["mean"] == pytest.approx(0.5) and ann["A1"]["std"] == pytest.approx(0.25)
    assert ann["A1"]["test_count"] == 12
    assert ann["A2"]["mean"] == pytest.approx(1 / 3) and ann["A2"]["std"] == pytest.approx(math.sqrt(1 / 12))
    assert ann["A2"]["test_count"] == 7
    assert ann["A3"]["mean"] == pytest.approx(0.6) and ann["A3"]["std"] == 0.0
    assert ann["A3"]["test_count"] == 10
    a3 = sim0["per_annotator"]["A3"]
    assert a3["mean"] == pytest.approx(0.6) and a3["std"] == pytest.approx(math.sqrt(0.02))  # 0.5, 0.7

    skip2, sim2, conf2 = (row(rows, 0.2, m) for m in ("skip", "simlabel", "simlabel+confidence"))
    assert skip2["seeds"] == sim2["seeds"] == conf2["seeds"] == [0, 1]
    assert skip2["avg_mean"] == pytest.approx(0.45) and skip2["avg_std"] == pytest.approx(math.sqrt(0.005))
    assert sim2["avg_std"] == 0.0
    assert sim2["gain_mean"] == pytest.approx(0.05) and sim2["gain_std"] == pytest.approx(math.sqrt(0.005))
    # confidence: gains 0.04, 0.10 -> 0.07 +- sqrt(0.0018); imputations 10, 14 -> 12; accuracy 0.6, 0.7 -> 0.65
    assert conf2["gain_mean"] == pytest.approx(0.07) and conf2["gain_std"] == pytest.approx(math.sqrt(0.0018))
    assert conf2["imputations_mean"] == 12.0
    assert conf2["imputation_accuracy_mean"] == pytest.approx(0.65)


def test_aggregate_one_seed_has_zero_std_and_no_skip_means_no_gain():
    runs = [metrics("simlabel", 3, 0.0, 0.7, 0.6, [0.7, None], [3, 0])]
    [r] = aggregate(runs)
    assert r["avg_mean"] == pytest.approx(0.7) and r["avg_std"] == 0.0
    assert math.isnan(r["gain_mean"]) and math.isnan(r["gain_std"])  # no Skip run to pair with
    assert math.isnan(r["per_annotator"]["A2"]["mean"]) and math.isnan(r["per_annotator"]["A2"]["std"])
    assert r["per_annotator"]["A2"]["test_count"] == 0


def test_aggregate_of_metrics_read_back_with_undefined_accuracies():
    """A run whose test split has no labels has ``avg_accuracy`` / ``micro_accuracy`` = null in metrics.json
    (JSON has no NaN): such a seed counts as missing, and a gain needs both runs of the seed to be defined."""
    runs = [
        metrics("skip", 0, 0.0, 0.40, 0.40, [0.4, None], [2, 0]),
        metrics("skip", 1, 0.0, None, None, [None, None], [0, 0]),
        metrics("skip", 2, 0.0, 0.50, 0.50, [0.5, None], [2, 0]),
        metrics("simlabel", 0, 0.0, 0.50, 0.50, [0.5, None], [2, 0]),
        metrics("simlabel", 1, 0.0, 0.60, 0.60, [0.6, None], [2, 0]),
        metrics("simlabel", 2, 0.0, None, None, [None, None], [0, 0]),
    ]
    runs = json.loads(json.dumps(runs))  # as compare reads reused runs back
    skip, sim = aggregate(runs)
    assert skip["avg_mean"] == pytest.approx(0.45) and skip["avg_std"] == pytest.approx(math.sqrt(0.005))
    assert skip["micro_mean"] == pytest.approx(0.45)
    assert sim["avg_mean"] == pytest.approx(0.55) and sim["avg_std"] == pytest.approx(math.sqrt(0.005))
    assert sim["gain_mean"] == pytest.approx(0.10) and sim["gain_std"] == 0.0  # seed 0 only
    assert "**45.0 ± 7.1**" in markdown_tables([skip, sim])


def test_aggregate_keeps_models_and_rates_apart():
    runs = [
        metrics("skip", 0, 0.0, 0.40, 0.4, [0.4], [1], model="heads"),
        metrics("simlabel", 0, 0.0, 0.50, 0.5, [0.5], [1], model="heads"),
        metrics("skip", 0, 0.0, 0.10, 0.1, [0.1], [1], model="madl"),
        metrics("simlabel", 0, 0.0, 0.35, 0.3, [0.3], [1], model="madl"),
        metrics("skip", 0, 0.5, 0.20, 0.2, [0.2], [1], model="madl"),
        metrics("simlabel", 0, 0.5, 0.20, 0.2, [0.2], [1], model="madl"),
    ]
    rows = aggregate(runs)
    assert row(rows, 0.0, "simlabel", "heads")["gain_mean"] == pytest.approx(0.10)
    assert row(rows, 0.0, "simlabel", "madl")["gain_mean"] == pytest.approx(0.25)
    assert row(rows, 0.5, "simlabel", "madl")["gain_mean"] == pytest.approx(0.0)


# ------------------------------------------------------------------------------------------------ markdown
def table_lines(text: str, title: str) -> list[list[str]]:
    """The cells of the table under the heading ``### title``."""
    part = text.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]
    lines = [line for line in part.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_markdown_tables_cells():
    text = markdown_tables(aggregate(grid_runs()))
    assert text.index("### natural missingness") < text.index("### extra missing rate 0.2 ")
    natural = table_lines(text, "natural missingness")
    header = ["Model", "Mode", "A1", "A2", "A3", "Avg", "Δ Skip", "95 % CI", "verdict", "micro", "imputed",
              "imp. acc", "majority", "own Skip"]
    assert natural[0] == header
    assert natural[1][:2] == ["---", "---"] and set(natural[1][2:]) == {"---:"}
    assert natural[2] == ["heads", "skip", "50.0 ± 25.0", "33.3 ± 28.9", "60.0 ± 0.0", "**45.0 ± 5.0**", "–",
                          "–", "–", "50.0 ± 10.0", "–", "–", "–", "–"]
    # Δ Skip: mean ± standard error of the paired gains (+10, +2, +12: std 5.29, SE 3.06); no predictions, no interval
    assert natural[3] == ["heads", "simlabel", "50.7 ± 1.2", "50.7 ± 1.2", "60.0 ± 14.1", "**53.0 ± 3.6**",
                          "+8.0 ± 3.1", "–", "–", "63.3 ± 7.6", "–", "–", "–", "–"]
    assert len(natural) == 4
    assert "3 seed(s) (0, 1, 2)" in text
    removed = table_lines(text, "extra missing rate 0.2 of the training labels removed")
    assert removed[2][5] == "**45.0 ± 7.1**"
    assert removed[3][5:7] == ["**50.0 ± 0.0**", "+5.0 ± 5.0"]
    assert removed[4] == ["heads", "simlabel+confidence", "52.0 ± 11.3", "52.0 ± 11.3", "52.0 ± 11.3",
                          "**52.0 ± 11.3**", "+7.0 ± 3.0", "–", "–", "52.0 ± 11.3", "12", "65.0", "–", "–"]
    assert "2 seed(s) (0, 1)" in text


def test_markdown_negative_gain_has_its_sign():
    runs = [metrics("skip", 0, 0.0, 0.6, 0.6, [0.6], [1]), metrics("simlabel", 0, 0.0, 0.45, 0.45, [0.45], [1])]
    cells = table_lines(markdown_tables(aggregate(runs)), "natural missingness")
    assert cells[3][4] == "-15.0"  # one seed: no standard error


@pytest.mark.parametrize("num_annotators", [MAX_ANNOTATOR_COLUMNS, MAX_ANNOTATOR_COLUMNS + 1])
def test_markdown_leaves_out_per_annotator_columns_above_the_limit(num_annotators):
    assert MAX_ANNOTATOR_COLUMNS == 13
    accs = [0.5] * num_annotators
    runs = [metrics("skip", 0, 0.0, 0.5, 0.5, accs, [2] * num_annotators),
            metrics("simlabel", 0, 0.0, 0.6, 0.5, accs, [2] * num_annotators)]
    text = markdown_tables(aggregate(runs))
    header = table_lines(text, "natural missingness")[0]
    names = [f"A{k + 1}" for k in range(num_annotators)]
    if num_annotators <= 13:
        assert header == ["Model", "Mode", *names, "Avg", "Δ Skip", "95 % CI", "verdict", "micro", "imputed",
                          "imp. acc", "majority", "own Skip"]
        assert "per-annotator columns are in results.csv" not in text
    else:
        assert header == ["Model", "Mode", "Avg", "Δ Skip", "95 % CI", "verdict", "micro", "imputed", "imp. acc",
                          "majority", "own Skip"]
        assert "14 annotators: per-annotator columns are in results.csv" in text
        assert table_lines(text, "natural missingness")[3] == [
            "heads", "simlabel", "**60.0 ± 0.0**", "+10.0", "–", "–", "50.0 ± 0.0", "–", "–", "–", "–"
        ]  # fmt: skip


def test_markdown_says_whether_every_run_converged():
    runs = [metrics("skip", s, 0.0, 0.5, 0.5, [0.5], [2]) for s in (0, 1)]
    runs += [dict(metrics("simlabel", 0, 0.0, 0.6, 0.6, [0.6], [2]), best_epoch=9),     # 9 <= 0.9 * 10: converged
             dict(metrics("simlabel", 1, 0.0, 0.6, 0.6, [0.6], [2]), best_epoch=10)]    # the last epoch: not
    text = markdown_tables(aggregate(runs))
    assert ("**Not converged** (best validation epoch above 90% of the epoch limit): heads simlabel seed 1 "
            "(best epoch 10 of 10).") in text
    assert "Every run converged" in markdown_tables(aggregate(runs[:3]))
    old = [{k: v for k, v in m.items() if k != "epoch_limit"} for m in runs[:3]]
    assert "Convergence unknown for 3 run(s)" in markdown_tables(aggregate(old))


# ------------------------------------------------------------------------------------------------ csv
def test_write_csv_round_trip(tmp_path):
    rows = aggregate(grid_runs())
    path = tmp_path / "results.csv"
    write_csv(path, rows)
    with open(path, newline="", encoding="utf-8") as fh:
        read = list(csv.DictReader(fh))
    assert list(read[0]) == ["missing_rate", "model", "mode", "seeds", "avg_mean", "avg_std", "gain_mean",
                             "gain_std", "gain_se", "gain_low", "gain_high", "verdict", "micro_mean", "micro_std",
                             "imputations_mean", "imputation_accuracy_mean", "imputations_scored_mean",
                             "imputation_majority_mean", "imputation_own_skip_mean", "consensus_mean",
                             "over_consensus_mean", "over_consensus_se", "over_consensus_low", "over_consensus_high",
                             "over_consensus_verdict", "acc_A1", "acc_A2", "acc_A3"]
    assert len(read) == len(rows)
    for r, back in zip(rows, read):
        assert (float(back["missing_rate"]), back["model"], back["mode"]) == (r["missing_rate"], r["model"], r["mode"])
        assert [int(s) for s in back["seeds"].split()] == r["seeds"]
        for field in ("avg_mean", "avg_std", "gain_mean", "gain_std", "micro_mean", "micro_std",
                      "imputations_mean") + (("gain_se",) if r["mode"] != "skip" else ()):
            assert float(back[field]) == r[field], field  # repr round trip: exact
        for a in ("A1", "A2", "A3"):
            assert float(back[f"acc_{a}"]) == r["per_annotator"][a]["mean"]
    # NaN (no imputation accuracy) is an empty cell; numbers stay fractions, not percentages
    assert read[0]["imputation_accuracy_mean"] == "" and float(read[4]["imputation_accuracy_mean"]) == pytest.approx(0.65)
    assert float(read[0]["avg_mean"]) == pytest.approx(0.45)
    assert read[0]["verdict"] == read[1]["verdict"] == read[1]["gain_low"] == ""  # no predictions: no interval


def test_write_csv_annotator_columns_are_the_union(tmp_path):
    a = metrics("skip", 0, 0.0, 0.5, 0.5, [0.5, 0.25], [1, 1])
    b = metrics("skip", 0, 0.5, 0.5, 0.5, [0.75, 0.5, 1.0], [1, 1, 1])
    path = tmp_path / "r.csv"
    write_csv(path, aggregate([a, b]))
    with open(path, newline="") as fh:
        read = list(csv.DictReader(fh))
    assert [k for k in read[0] if k.startswith("acc_")] == ["acc_A1", "acc_A2", "acc_A3"]
    assert read[0]["acc_A3"] == "" and float(read[1]["acc_A3"]) == 1.0


# ------------------------------------------------------------------------------------------------ cluster order
def contiguous(order, block_of) -> bool:
    labels = [block_of[a] for a in order]
    runs = [labels[0]] + [b for prev, b in zip(labels, labels[1:]) if b != prev]
    return len(runs) == len(set(labels))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cluster_order_puts_blocks_together(seed):
    rng = np.random.default_rng(seed)
    sizes = [3, 2, 4, 1]
    block = np.repeat(np.arange(len(sizes)), sizes)
    a = len(block)
    s = np.where(block[:, None] == block[None, :], 0.8, 0.05) + rng.uniform(-0.05, 0.05, size=(a, a))
    s = (s + s.T) / 2
    s[0, -1] = s[-1, 0] = np.nan  # undefined pair: counts as 0
    s[1, 5] = s[5, 1] = -0.4
    perm = rng.permutation(a)
    shuffled = s[np.ix_(perm, perm)]
    block_of = block[perm]
    assert not contiguous(range(a), block_of)  # the shuffle really breaks the blocks up
    order = cluster_order(shuffled)
    assert sorted(order) == list(range(a))
    assert contiguous(order, block_of), [int(block_of[k]) for k in order]


def test_cluster_order_small_cases():
    assert cluster_order(np.zeros((1, 1))) == [0]
    assert cluster_order(np.zeros((0, 0))) == []
    # 0 and 2 are similar, 1 is unlike both: 0 and 2 must be neighbours
    order = cluster_order(np.array([[1, -0.5, 0.9], [-0.5, 1, -0.2], [0.9, -0.2, 1]]))
    assert abs(order.index(0) - order.index(2)) == 1


# ------------------------------------------------------------------------------------------------ figures
def read_png(path):
    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > 0
    assert float(np.asarray(image[..., :3]).std()) > 0  # not a blank canvas
    return image


def histories():
    return {
        "heads mr 0": [{"epoch": e, "imputed": 5 * e, "imputations_scored": 0, "imputation_accuracy": None}
                       for e in range(3)],
        "heads mr 0.2": [{"epoch": e, "imputed": 4 * e, "imputations_scored": e, "imputation_accuracy": 0.5 + 0.1 * e}
                         for e in range(3)],
    }  # fmt: skip


def test_plot_functions_write_readable_pngs(tmp_path):
    rng = np.random.default_rng(0)
    k = rng.uniform(-1, 1, size=(5, 5))
    k = (k + k.T) / 2
    k[1, 3] = k[3, 1] = np.nan
    names = ["A1", "A2", "A3", "A4", "A5"]
    plot_similarity_heatmaps(tmp_path / "one.png", [("kappa", k)], names)
    plot_similarity_heatmaps(tmp_path / "two.png", [("before", k), ("after", k * 0.5)], names, order=[4, 3, 2, 1, 0])
    one, two = read_png(tmp_path / "one.png"), read_png(tmp_path / "two.png")
    assert two.shape[1] > one.shape[1]  # two panels side by side
    rows = aggregate(grid_runs())
    plot_accuracy_by_annotator(tmp_path / "acc.png", rows, 0.0)
    plot_accuracy_by_annotator(tmp_path / "acc2.png", rows, 0.2)
    plot_avg_vs_missing_rate(tmp_path / "avg.png", rows)
    plot_imputations(tmp_path / "imp.png", histories())
    plot_imputations(tmp_path / "none.png", {})  # no simlabel+confidence run: still a figure
    for name in ("acc.png", "acc2.png", "avg.png", "imp.png", "none.png"):
        read_png(tmp_path / name)


def test_plot_accuracy_by_annotator_panels_per_model(tmp_path):
    runs = grid_runs() + [dict(m, model="madl") for m in grid_runs()]
    rows = aggregate(runs)
    plot_accuracy_by_annotator(tmp_path / "one.png", aggregate(grid_runs()), 0.0)
    plot_accuracy_by_annotator(tmp_path / "two.png", rows, 0.0)
    one, two = read_png(tmp_path / "one.png"), read_png(tmp_path / "two.png")
    assert two.shape[0] > one.shape[0]  # one panel per model, stacked


# ------------------------------------------------------------------------------------------------ write_report
def fake_runs(root):
    """Run directories of the grid: similarity.npz only in the run the heat map must use (simlabel+confidence,
    lowest rate, lowest seed) and history.json only in the simlabel+confidence runs of the lowest seed, so that
    reading any other run's file fails."""
    runs = []
    rng = np.random.default_rng(1)
    for m in grid_runs():
        d = root / "runs" / m["model"] / m["mode"].replace("+", "-") / f"mr{m['missing_rate']:g}" / f"seed{m['seed']}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(m))
        if m["mode"] == "simlabel+confidence" and m["seed"] == 0:
            (d / "history.json").write_text(json.dumps(histories()["heads mr 0.2"]))
            k0 = rng.uniform(-1, 1, size=(3, 3))
            np.savez(d / "similarity.npz", kappa_initial=(k0 + k0.T) / 2, kappa_final=(k0 + k0.T) / 3,
                     similarity_initial=np.clip(k0, 0, None), similarity_final=np.clip(k0, 0, None),
                     overlap_initial=np.full((3, 3), 4), annotators=np.array(["A1", "A2", "A3"]))
        runs.append((d, m))
    return runs


def test_write_report_files(tmp_path):
    runs = fake_runs(tmp_path)
    out = tmp_path / "report"
    header = {"dataset": "synthetic", "seeds": [0, 1, 2], "command": "simlabel compare --seeds 0,1,2"}
    rows = write_report(out, runs, header)
    expected = aggregate([m for _, m in runs])
    assert len(rows) == len(expected) == 5
    data = json.loads((out / "results.json").read_text())
    assert data["dataset"] == "synthetic" and data["seeds"] == [0, 1, 2]
    assert [r["run_dir"] for r in data["runs"]] == [str(d) for d, _ in runs]
    assert [{k: v for k, v in r.items() if k != "run_dir"} for r in data["runs"]] == [m for _, m in runs]
    assert len(data["table"]) == 5
    for got, want in zip(data["table"], expected):
        assert (got["missing_rate"], got["mode"], got["seeds"]) == (want["missing_rate"], want["mode"], want["seeds"])
        assert got["avg_mean"] == pytest.approx(want["avg_mean"]) and got["gain_std"] == pytest.approx(want["gain_std"])
        # JSON has no NaN: an undefined number is null
        assert got["imputation_accuracy_mean"] is None if math.isnan(want["imputation_accuracy_mean"]) else \
            got["imputation_accuracy_mean"] == pytest.approx(want["imputation_accuracy_mean"])
        # these runs have no predictions.npz (as runs written before it existed): a row, but no interval
        assert got["gain_low"] is None and got["verdict"] is None
        assert "imputation_baselines" not in data["runs"][0]
    md = (out / "results.md").read_text()
    assert md.startswith("# SimLabel comparison: dataset `synthetic`")
    assert "    simlabel compare --seeds 0,1,2" in md
    assert markdown_tables(expected) in md
    for name in FIGURES:
        assert f"]({name})" in md
        read_png(out / name)
    with open(out / "results.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 5


def test_write_report_without_plots(tmp_path):
    runs = [(d, m) for d, m in fake_runs(tmp_path)]
    out = tmp_path / "report"
    write_report(out, runs, {"dataset": "synthetic"}, plots=False)
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.json", "results.md"]
    md = (out / "results.md").read_text()
    assert "## Figures" not in md and "Regenerate with" not in md
    assert "**45.0 ± 5.0**" in md


def test_lam_auto_runs_show_the_lam_each_seed_chose(tmp_path):
    runs = [metrics("skip", s, 0.0, 0.5, 0.5, [0.5], [2]) for s in (1, 0)]
    runs += [dict(metrics("simlabel", s, 0.0, 0.6, 0.5, [0.6], [2]), lam_selected=lam)
             for s, lam in ((1, 0.0), (0, 3.0))]
    rows = aggregate(runs)
    assert row(rows, 0.0, "simlabel")["lam_selected"] == [3.0, 0.0] and row(rows, 0.0, "skip")["lam_selected"] == []
    cells = table_lines(markdown_tables(rows), "natural missingness")
    assert cells[0][-1] == "λ chosen" and cells[2][-1] == "–" and cells[3][-1] == "3, 0"
    write_csv(tmp_path / "r.csv", rows)
    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as fh:
        read = list(csv.DictReader(fh))
    assert [r["lam_selected"] for r in read] == ["", "3 0"] and "acc_A1" in read[0]
