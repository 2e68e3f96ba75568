"""Imputed labels scored beside two plain baselines, at the training entries whose hidden label is known.

A SimLabel + Confidence run imputes labels into missing training entries. Where the data set knows what the
annotator would have said there (labels removed on purpose, or a simulated crowd: ``hidden`` in
``predictions.npz``), three guesses of that label are scored on the same entries:

- ``imputed``: the run's imputed label;
- ``majority``: the item's majority label among the other annotators' training labels (ties share the credit:
  an entry scores 1/k when the hidden label is one of k tied labels; an item with no other label scores 1/C, a
  uniform guess);
- ``own_skip``: what the annotator's model trained with Skip (same model, seed and missing rate) predicts there.

Accuracies are fractions; NaN where nothing is scored.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = ["imputation_baselines"]


def imputation_baselines(run: Mapping[str, np.ndarray],
                         skip: Mapping[str, np.ndarray] | None) -> dict[str, float | int]:
    """``{"scored", "imputed", "majority", "own_skip"}`` for a run's ``predictions.npz`` arrays and those of its
    Skip twin (``None``: ``own_skip`` is NaN). Raises ``ValueError`` when the two runs do not share their split
    and labels."""
    labels, hidden, imputed = run["labels"], run["hidden"], run["imputed"]
    num_classes = len(run["classes"])
    train = run["split"] == 0
    scored = (imputed >= 0) & (hidden >= 0) & train[:, None]
    items, annotators = np.nonzero(scored)
    n = len(items)
    if n == 0:
        return {"scored": 0, "imputed": math.nan, "majority": math.nan, "own_skip": math.nan}
    truth = hidden[items, annotators].astype(np.int64)
    train_labels = np.where(train[:, None], labels, -1)
    votes = np.zeros((labels.shape[0], num_classes))                          # [N, C] training votes per item
    rows, cols = np.nonzero(train_labels >= 0)
    np.add.at(votes, (rows, train_labels[rows, cols].astype(np.int64)), 1.0)
    # the entry's own label is missing (it was imputed), so the item's votes are the other annotators' votes
    others = votes[items]                                                     # [n, C]
    top = others.max(1, keepdims=True)
    tied = (others == top) & (top > 0)
    ties = tied.sum(1)
    majority = np.where(ties > 0, tied[np.arange(n), truth] / np.maximum(ties, 1), 1.0 / num_classes)
    result = {"scored": n, "imputed": float((imputed[items, annotators] == truth).mean()),
              "majority": float(majority.mean()), "own_skip": math.nan}
    if skip is not None:
        if not (np.array_equal(skip["split"], run["split"]) and np.array_equal(skip["labels"], labels)):
            raise ValueError("the Skip run does not share the split and labels of the run it is compared with")
        result["own_skip"] = float((skip["prediction"][items, annotators] == truth).mean())
    return result
