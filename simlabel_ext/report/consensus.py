"""A run's consensus given to every annotator: the check of whether its per-annotator predictions learnt anything
of the annotators beyond the crowd.

The consensus of an item is the most frequent of the run's predicted labels for it over all annotators (ties to
the lower class). Giving it as every annotator's label and scoring that like the run (Avg on the same test
entries) costs no training; when the run's own predictions do not beat it (the paired criterion of
:mod:`.paired`), its annotator models hold nothing the interval can see beyond one label per item, and a single
consensus model would serve as well.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .paired import SplitOutcome, split_outcome

__all__ = ["consensus_labels", "consensus_outcome"]


def consensus_labels(prediction: np.ndarray, classes: int) -> np.ndarray:
    """int64 ``[N]``: per item the most frequent of its ``A`` predicted labels (``prediction`` int ``[N, A]``,
    classes ``0..classes-1``), ties to the lower class."""
    votes = np.stack([(prediction == c).sum(1) for c in range(classes)], 1)                   # [N, C]
    return votes.argmax(1)


def consensus_outcome(predictions: Mapping[str, np.ndarray], split: int = 2) -> SplitOutcome:
    """The :class:`SplitOutcome` on ``split`` of the run whose ``predictions.npz`` arrays are ``predictions``, with
    every annotator's prediction replaced by the item's :func:`consensus_labels`."""
    prediction = predictions["prediction"]
    consensus = consensus_labels(prediction, len(predictions["classes"]))
    broadcast = np.repeat(consensus[:, None], prediction.shape[1], 1)
    return split_outcome({**predictions, "prediction": broadcast}, split)
