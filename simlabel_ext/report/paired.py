"""The criterion of a comparison: a mode's paired gain in Avg over Skip, its standard error over seeds, and a 95 %
paired bootstrap interval over test items.

One seed fixes the split, so a mode and Skip trained with the same seed are scored on the same test entries
(:class:`SplitOutcome`). For each seed the bootstrap draws the test items ``DRAWS`` times with replacement (the same
draws for both modes: the generator is seeded by the seed alone) and computes, on each draw, Avg (the mean over
annotators of each annotator's accuracy on the drawn items it labelled, annotators with no drawn label left out)
for the mode minus Avg for Skip. The gains of draw ``b`` are averaged over seeds, and the interval is the 2.5 and
97.5 percentiles of those averages. A mode *beats* Skip when the interval lies above 0 and is *worse* when it lies
below 0; otherwise the comparison is *inconclusive*. Accuracies and gains are fractions.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DRAWS", "PairedGain", "SplitOutcome", "avg_accuracy", "paired_gain", "paired_gain_or_none", "split_avg",
           "split_outcome"]

#: Bootstrap draws per seed.
DRAWS = 2000
#: Coverage of the interval.
CONFIDENCE = 0.95
#: The stream of the bootstrap generator, beside the data set's (split 0, removal 1).
_BOOTSTRAP_STREAM = 7


@dataclass(frozen=True)
class SplitOutcome:
    """One run's entries of a split (the test split for the criterion): ``correct`` and ``labelled`` are float64
    ``[T, A]`` 0/1 arrays over the ``T`` items of the split that carry at least one label (``correct`` <=
    ``labelled``)."""

    correct: np.ndarray
    labelled: np.ndarray


def split_outcome(predictions: Mapping[str, np.ndarray], split: int = 2) -> SplitOutcome:
    """The :class:`SplitOutcome` of a run on one split (code of ``predictions.npz``: 2 = test, 1 = validation)
    from the arrays of its ``predictions.npz``."""
    test = predictions["split"] == split
    labels, predicted = predictions["labels"][test], predictions["prediction"][test]
    labelled = labels >= 0
    keep = labelled.any(1)
    return SplitOutcome(((predicted == labels) & labelled)[keep].astype(np.float64), labelled[keep].astype(np.float64))


def avg_accuracy(outcome: SplitOutcome, weights: np.ndarray) -> np.ndarray:
    """Avg for each row of ``weights`` (float ``[B, T]``: how often each test item is drawn): float64 ``[B]``,
    NaN for a row in which no annotator has a drawn label."""
    hits, counts = weights @ outcome.correct, weights @ outcome.labelled                            # [B, A]
    accuracy = np.where(counts > 0, hits / np.where(counts > 0, counts, 1.0), 0.0)
    present = (counts > 0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present > 0, accuracy.sum(1) / present, np.nan)


def split_avg(outcome: SplitOutcome) -> float:
    """The Avg of ``outcome`` with every item of its split drawn once (NaN when no annotator has a label)."""
    return float(avg_accuracy(outcome, np.ones((1, outcome.labelled.shape[0])))[0])


@dataclass(frozen=True)
class PairedGain:
    """A mode against Skip over ``seeds``: ``mean`` (mean over seeds of the paired test-set gain in Avg), ``se``
    (its standard error over seeds, NaN for one seed), ``low`` / ``high`` (the bootstrap interval) and
    ``verdict`` (``beats``, ``worse`` or ``inconclusive``)."""

    mean: float
    se: float
    low: float
    high: float
    seeds: tuple[int, ...]

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "beats"
        if self.high < 0:
            return "worse"
        return "inconclusive"


def bootstrap_weights(seed: int, items: int, draws: int = DRAWS) -> np.ndarray:
    """float64 ``[draws, items]``: how often each of ``items`` test items is drawn in each resample of ``seed``."""
    rng = np.random.default_rng((_BOOTSTRAP_STREAM, seed))
    return rng.multinomial(items, np.full(items, 1.0 / items), size=draws).astype(np.float64)


def paired_gain(pairs: Sequence[tuple[int, SplitOutcome, SplitOutcome]], draws: int = DRAWS,
                confidence: float = CONFIDENCE) -> PairedGain:
    """The criterion for ``pairs`` of ``(seed, mode's outcome, Skip's outcome)`` (see the module docstring).

    Raises ``ValueError`` when the two runs of a seed were not scored on the same test entries, or for no pairs.
    """
    if not pairs:
        raise ValueError("paired_gain needs at least one (seed, mode, skip) pair")
    point, boot = [], np.zeros(draws)
    for seed, mode, skip in pairs:
        if mode.labelled.shape != skip.labelled.shape or not np.array_equal(mode.labelled, skip.labelled):
            raise ValueError(f"seed {seed}: the mode and Skip were scored on different test entries "
                             "(not the same split or test labels)")
        items = mode.labelled.shape[0]
        if items == 0:
            raise ValueError(f"seed {seed}: no test labels to compare on")
        point.append(split_avg(mode) - split_avg(skip))
        weights = bootstrap_weights(seed, items, draws)
        boot += avg_accuracy(mode, weights) - avg_accuracy(skip, weights)
    boot /= len(pairs)
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(boot, [tail, 100 - tail])
    mean = sum(point) / len(point)
    se = math.sqrt(sum((g - mean) ** 2 for g in point) / (len(point) - 1) / len(point)) if len(point) > 1 else math.nan
    return PairedGain(mean, se, float(low), float(high), tuple(seed for seed, _, _ in pairs))


def paired_gain_or_none(pairs: Sequence[tuple[int, SplitOutcome | None, SplitOutcome | None]]) -> PairedGain | None:
    """:func:`paired_gain` of ``(seed, candidate, baseline)`` ``pairs``; None for no pairs, or unless every seed
    has both outcomes and the candidate has test labels (runs written before ``predictions.npz`` existed)."""
    if not pairs or any(mine is None or theirs is None or not len(mine.labelled) for _, mine, theirs in pairs):
        return None
    return paired_gain(pairs)
