"""simlabel_ext.report.consensus and the consensus columns of the comparison table: hand-computed cases.

A run's consensus (per item, the most frequent of its predicted labels, ties to the lower class) is given to every
annotator and scored like the run; the table pairs each run with it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from simlabel_ext.report import aggregate, markdown_tables
from simlabel_ext.report.consensus import consensus_labels, consensus_outcome
from simlabel_ext.report.paired import split_avg, split_outcome


def test_consensus_is_the_majority_with_ties_to_the_lower_class():
    prediction = np.array([[2, 2, 0], [1, 0, 0], [0, 1, 2], [1, 2, 2], [1, 1, 1]])
    np.testing.assert_array_equal(consensus_labels(prediction, 3), [2, 0, 0, 2, 1])


#: 4 items x 3 annotators: items 0-1 test, 2 validation, 3 train. Annotator 2 answers the other class on item 0.
ARRAYS = {
    "classes": np.array(["a", "b"]),
    "split": np.array([2, 2, 1, 0], dtype=np.int8),
    "labels": np.array([[0, 0, 1], [1, -1, 1], [0, 0, 0], [1, 1, 1]], dtype=np.int16),
    "prediction": np.array([[0, 0, 1], [1, 1, 1], [0, 0, 0], [1, 1, 1]], dtype=np.int16),
}


def test_consensus_outcome_scores_the_majority_as_every_annotators_label():
    own, broadcast = split_outcome(ARRAYS), consensus_outcome(ARRAYS)
    np.testing.assert_array_equal(broadcast.labelled, own.labelled)
    # item 0: consensus 0 (two of three), so annotator 2's label 1 is missed; item 1: consensus 1, all right
    np.testing.assert_array_equal(broadcast.correct, [[1, 1, 0], [1, 0, 1]])
    np.testing.assert_array_equal(own.correct, [[1, 1, 1], [1, 0, 1]])
    # Avg: the run 1.0 for every annotator; the broadcast (2/2 + 1/1 + 1/2) / 3
    assert split_avg(own) == 1.0 and split_avg(broadcast) == pytest.approx(2.5 / 3)
    validation = consensus_outcome(ARRAYS, split=1)
    np.testing.assert_array_equal(validation.correct, [[1, 1, 1]])


def _metrics(mode: str, seed: int, avg: float) -> dict:
    return {"model": "heads", "mode": mode, "seed": seed, "missing_rate": 0.0, "avg_accuracy": avg,
            "micro_accuracy": avg, "imputations": 0, "imputation_accuracy": None, "best_epoch": 1, "epoch_limit": 10,
            "annotators": [{"id": f"A{k + 1}", "accuracy": avg, "test_count": 1} for k in range(3)]}


def test_the_table_pairs_every_run_with_its_consensus():
    runs = [_metrics("skip", 0, 1.0), _metrics("skip", 1, 1.0), _metrics("simlabel", 0, 1.0)]
    outcomes = [split_outcome(ARRAYS)] * 3
    consensus = [consensus_outcome(ARRAYS)] * 3
    rows = aggregate(runs, outcomes, consensus)
    skip, simlabel = rows
    # each seed gains 1 - 2.5/3 = 1/6 over its consensus. A resample of the 2 test items draws item 0 twice (a
    # quarter of them: the broadcast misses annotator 2's only label, gain 1/3), item 1 twice (a quarter: gain 0)
    # or both (gain 1/6), so the 95 % interval is [0, 1/3]
    assert skip["consensus_mean"] == pytest.approx(2.5 / 3)
    assert skip["over_consensus_mean"] == pytest.approx(1 / 6) and skip["over_consensus_se"] == pytest.approx(0.0)
    assert (skip["over_consensus_low"], skip["over_consensus_high"]) == pytest.approx((0.0, 1 / 3))
    assert skip["over_consensus_verdict"] == "inconclusive"
    assert math.isnan(simlabel["over_consensus_se"])                       # one seed: no standard error
    table = markdown_tables(rows)
    assert "| heads | skip | 100.0 ± 0.0 | 83.3 | +16.7 ± 0.0 | [+0.0, +33.3] | inconclusive |" in table
    assert "| heads | simlabel | 100.0 ± 0.0 | 83.3 | +16.7 | [+0.0, +33.3] | inconclusive |" in table


def test_without_predictions_the_consensus_columns_stay_empty():
    rows = aggregate([_metrics("skip", 0, 1.0)])
    assert math.isnan(rows[0]["consensus_mean"]) and rows[0]["over_consensus_verdict"] is None
    assert "Own predictions against their consensus" not in markdown_tables(rows)


def test_aggregate_names_a_consensus_list_of_the_wrong_length():
    with pytest.raises(ValueError, match="1 consensus outcomes for 2 runs"):
        aggregate([_metrics("skip", 0, 1.0), _metrics("skip", 1, 1.0)], None, [None])
