"""The comparison's criterion (simlabel_ext.report.paired) and the imputation baselines
(simlabel_ext.report.imputation), against hand-computed cases and naive loops."""
from __future__ import annotations

import math

import numpy as np
import pytest

from simlabel_ext.report.imputation import imputation_baselines
from simlabel_ext.report.paired import (
    SplitOutcome,
    avg_accuracy,
    bootstrap_weights,
    paired_gain,
    split_avg,
    split_outcome,
)


def outcome(correct, labelled):
    return SplitOutcome(np.array(correct, dtype=np.float64), np.array(labelled, dtype=np.float64))


# ------------------------------------------------------------------------------------------------ Avg on a draw
def test_avg_accuracy_by_hand():
    # 3 items x 2 annotators; annotator 0 labels items 0, 1; annotator 1 labels items 1, 2
    o = outcome([[1, 0], [0, 1], [0, 0]], [[1, 0], [1, 1], [0, 1]])
    weights = np.array([[1, 1, 1],    # a0: 1/2, a1: 1/2 -> 0.5
                        [2, 0, 1],    # a0: 2/2, a1: 0/1 -> 0.5
                        [0, 0, 3],    # a0: no label (left out), a1: 0/3 -> 0
                        [0, 3, 0],    # a0: 0/3, a1: 3/3 -> 0.5
                        [3, 0, 0]])   # a0: 3/3, a1: none -> 1
    np.testing.assert_allclose(avg_accuracy(o, weights), [0.5, 0.5, 0.0, 0.5, 1.0])
    assert math.isnan(avg_accuracy(o, np.zeros((1, 3)))[0])
    assert split_avg(o) == 0.5  # every item once: the first row above
    assert math.isnan(split_avg(outcome(np.zeros((0, 2)), np.zeros((0, 2)))))


def test_avg_accuracy_matches_a_naive_loop():
    rng = np.random.default_rng(0)
    labelled = (rng.random((40, 7)) < 0.3).astype(float)
    labelled[np.arange(40), rng.integers(7, size=40)] = 1
    correct = labelled * (rng.random((40, 7)) < 0.6)
    o = SplitOutcome(correct, labelled)
    weights = bootstrap_weights(3, 40, draws=25)
    expected = []
    for w in weights:
        accs = []
        for a in range(7):
            n = sum(w[i] * labelled[i, a] for i in range(40))
            if n:
                accs.append(sum(w[i] * correct[i, a] for i in range(40)) / n)
        expected.append(sum(accs) / len(accs))
    np.testing.assert_allclose(avg_accuracy(o, weights), expected, rtol=1e-12)


def test_bootstrap_weights_resample_every_item_count_and_depend_on_the_seed_only():
    w = bootstrap_weights(5, 30, draws=200)
    assert w.shape == (200, 30) and (w.sum(1) == 30).all() and (w >= 0).all()
    np.testing.assert_array_equal(w, bootstrap_weights(5, 30, draws=200))
    assert not np.array_equal(w, bootstrap_weights(6, 30, draws=200))
    # each item is drawn once per resample on average
    assert abs(w.mean() - 1) < 0.02


# ------------------------------------------------------------------------------------------------ the criterion
def test_paired_gain_by_hand_point_and_se():
    skip = outcome([[0], [1]], [[1], [1]])             # Avg 0.5
    better = outcome([[1], [1]], [[1], [1]])           # Avg 1.0: +0.5
    same = outcome([[0], [1]], [[1], [1]])             # +0.0
    g = paired_gain([(0, better, skip), (1, same, skip)], draws=500)
    assert g.mean == pytest.approx(0.25)
    assert g.se == pytest.approx(0.25)                 # std([0.5, 0]) = 0.3536; / sqrt(2)
    assert g.seeds == (0, 1)


def test_paired_gain_interval_equals_the_percentiles_of_a_naive_bootstrap():
    rng = np.random.default_rng(1)
    pairs = []
    for seed in (0, 1, 2):
        labelled = (rng.random((25, 4)) < 0.5).astype(float)
        labelled[:, 0] = 1
        skip = SplitOutcome(labelled * (rng.random((25, 4)) < 0.5), labelled)
        mode = SplitOutcome(labelled * (rng.random((25, 4)) < 0.65), labelled)
        pairs.append((seed, mode, skip))
    g = paired_gain(pairs, draws=300)
    per_draw = np.zeros(300)
    for seed, mode, skip in pairs:
        w = bootstrap_weights(seed, 25, draws=300)       # the same draws for the mode and for Skip
        for b in range(300):
            per_draw[b] += (avg_accuracy(mode, w[b:b + 1]) - avg_accuracy(skip, w[b:b + 1]))[0] / 3
    assert g.low == pytest.approx(np.percentile(per_draw, 2.5), abs=1e-12)
    assert g.high == pytest.approx(np.percentile(per_draw, 97.5), abs=1e-12)
    points = [float(avg_accuracy(m, np.ones((1, 25)))[0] - avg_accuracy(s, np.ones((1, 25)))[0])
              for _, m, s in pairs]
    assert g.mean == pytest.approx(np.mean(points)) and g.se == pytest.approx(np.std(points, ddof=1) / math.sqrt(3))


def test_verdicts():
    labelled = np.ones((50, 2))
    wrong, right = SplitOutcome(np.zeros((50, 2)), labelled), SplitOutcome(labelled.copy(), labelled)
    beats = paired_gain([(0, right, wrong)], draws=100)
    assert (beats.low, beats.high, beats.verdict) == (1.0, 1.0, "beats") and math.isnan(beats.se)
    assert paired_gain([(0, wrong, right)], draws=100).verdict == "worse"
    tie = paired_gain([(0, right, right)], draws=100)
    assert (tie.low, tie.high, tie.verdict) == (0.0, 0.0, "inconclusive")
    # a mode right on half the items where Skip is right on the other half: the interval straddles 0
    half = np.zeros((50, 2))
    half[:25] = 1
    swap = 1 - half
    mixed = paired_gain([(0, SplitOutcome(half, labelled), SplitOutcome(swap, labelled))], draws=500)
    assert mixed.low < 0 < mixed.high and mixed.verdict == "inconclusive"


def test_paired_gain_refuses_runs_scored_on_different_entries():
    a = outcome([[1]], [[1]])
    b = outcome([[1], [0]], [[1], [1]])
    with pytest.raises(ValueError, match="seed 4: the mode and Skip were scored on different test entries"):
        paired_gain([(4, a, b)])
    with pytest.raises(ValueError, match="at least one"):
        paired_gain([])


def test_split_outcome_keeps_the_labelled_items_of_the_split():
    predictions = {
        "split": np.array([0, 2, 2, 1, 2], dtype=np.int8),
        "labels": np.array([[1, -1], [0, 1], [-1, -1], [1, 1], [-1, 0]], dtype=np.int16),
        "prediction": np.array([[1, 1], [0, 0], [1, 1], [1, 1], [1, 0]], dtype=np.int16),
    }
    o = split_outcome(predictions)
    np.testing.assert_array_equal(o.labelled, [[1, 1], [0, 1]])   # item 2 has no label: left out
    np.testing.assert_array_equal(o.correct, [[1, 0], [0, 1]])
    v = split_outcome(predictions, split=1)
    np.testing.assert_array_equal(v.correct, [[1, 1]])


# ------------------------------------------------------------------------------------------------ imputation
def test_imputation_baselines_by_hand():
    # 4 items x 3 annotators, 3 classes; items 0-2 train, item 3 test. Hidden labels at the imputed entries.
    run = {
        "classes": np.array(["a", "b", "c"]),
        "split": np.array([0, 0, 0, 2], dtype=np.int8),
        "labels": np.array([[-1, 1, 1], [-1, 0, 2], [-1, -1, -1], [-1, 2, 2]], dtype=np.int16),
        "hidden": np.array([[1, -1, -1], [2, -1, -1], [0, -1, -1], [2, -1, -1]], dtype=np.int16),
        "imputed": np.array([[1, -1, -1], [0, -1, -1], [0, -1, -1], [-1, -1, -1]], dtype=np.int16),
        "prediction": np.zeros((4, 3), dtype=np.int16),
    }
    skip = dict(run, prediction=np.array([[1, 0, 0], [2, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=np.int16))
    got = imputation_baselines(run, skip)
    assert got["scored"] == 3                                     # the test item is not an imputation
    assert got["imputed"] == pytest.approx(2 / 3)                 # right on items 0 and 2
    # majority: item 0 votes {1: 2} -> right; item 1 votes {0: 1, 2: 1} tie, hidden 2 -> 1/2; item 2: no votes -> 1/3
    assert got["majority"] == pytest.approx((1 + 0.5 + 1 / 3) / 3)
    assert got["own_skip"] == pytest.approx(2 / 3)                # skip predicts 1, 2, 1 against 1, 2, 0
    assert math.isnan(imputation_baselines(run, None)["own_skip"])
    nothing = imputation_baselines(dict(run, hidden=np.full((4, 3), -1, dtype=np.int16)), skip)
    assert nothing["scored"] == 0 and math.isnan(nothing["imputed"])
    with pytest.raises(ValueError, match="does not share the split and labels"):
        imputation_baselines(run, dict(skip, split=np.array([0, 0, 2, 2], dtype=np.int8)))
