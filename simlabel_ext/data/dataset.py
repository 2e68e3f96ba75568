"""A crowdsourced data set ready for training: inputs, annotations, true labels, the item split.

:class:`CrowdDataset` is what every dataset plugin returns. It holds

- ``inputs``: ``float32 [N, D]`` feature vectors or ``float32 [N, C, H, W]`` images, finite, described by
  ``input_spec`` (:class:`~simlabel_ext.models.contract.InputSpec`);
- ``annotations``: the :class:`~simlabel_ext.data.AnnotationMatrix` ``[N, A]`` the models train on (after any
  simulated label removal);
- ``truth``: ``int64 [N]`` true classes, ``-1`` where unknown, or ``None`` (reporting only, never training);
- ``split``: a :class:`Split` of the items into train / validation / test;
- ``removed``: ``bool [N, A]``, the training labels removed by :func:`simulate_missing`, or ``None`` when
  nothing was removed;
- ``original``: the matrix before that removal (its real labels score imputation accuracy), or ``None``;
- ``scaling``: the :class:`FeatureScaling` that ``inputs`` went through (training-split statistics), or ``None``;
  a fitted model keeps it to scale new items the same way;
- ``feature_names``: the names of the ``D`` feature columns (as in the data set's files), or ``None``;
- ``complete``: ``int64 [N, A]``, every annotator's label on every item, for simulated crowds that know it
  (``None`` for real data). It scores imputed labels at entries that no real crowd could score.

:attr:`CrowdDataset.hidden_labels` joins the last two sources: the labels the data set knows but does not give to
training (removed ones, and a simulated crowd's unannotated entries), against which imputations are scored.

Evaluation protocol (ALGORITHM.md §6): :func:`split_items` splits the items 70/15/15 with a seeded permutation;
:func:`simulate_missing` removes each remaining training label independently with probability ``r`` (paper
Table 4), leaving validation and test labels alone. :func:`make_dataset` does both, optionally z-scores the
features with training-split statistics (:func:`standardize`), and builds the :class:`CrowdDataset`.

Seeds are non-negative integers. Each helper draws from its own stream (NumPy ``default_rng((stream, seed))``),
so one seed can drive the split and the removal without the two being correlated.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .annotations import AnnotationMatrix
from .inputs import InputSpec

__all__ = ["CrowdDataset", "FeatureScaling", "SPLIT_FRACTIONS", "Split", "make_dataset", "simulate_missing", "split_items",
           "standardize"]

#: The train / validation / test fractions of ALGORITHM.md §6.
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)

_SPLIT_STREAM = 0
_MISSING_STREAM = 1


def _rng(stream: int, seed: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    return np.random.default_rng((stream, seed))


@dataclass(frozen=True, eq=False)
class Split:
    """Item indices (``int64``, 1-D, sorted) of the training, validation and test parts."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor

    def __post_init__(self) -> None:
        for part in ("train", "val", "test"):
            value = getattr(self, part)
            if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or value.dim() != 1:
                raise ValueError(f"split.{part} must be a 1-D int64 tensor")

    def check(self, num_items: int) -> None:
        """``ValueError`` unless the three parts are disjoint and cover ``0..num_items-1`` exactly."""
        owner = torch.full((num_items,), -1, dtype=torch.int64)
        for k, part in enumerate(("train", "val", "test")):
            index = getattr(self, part)
            bad = index[(index < 0) | (index >= num_items)]
            if len(bad):
                raise ValueError(f"split.{part} holds item {int(bad[0])}, outside 0..{num_items - 1}")
            values, counts = index.unique(return_counts=True)
            if (counts > 1).any():
                raise ValueError(f"item {int(values[counts > 1][0])} appears twice in split.{part}")
            clash = (owner[index] >= 0).nonzero()
            if len(clash):
                item = int(index[int(clash[0])])
                other = ("train", "val", "test")[int(owner[item])]
                raise ValueError(f"item {item} is in both split.{other} and split.{part}")
            owner[index] = k
        lost = (owner < 0).nonzero()
        if len(lost):
            raise ValueError(f"{len(lost)} item(s) are in no split part, the first is item {int(lost[0])}")

    def sizes(self) -> tuple[int, int, int]:
        """``(train, val, test)`` item counts."""
        return len(self.train), len(self.val), len(self.test)


def split_items(num_items: int, seed: int, fractions: Sequence[float] = SPLIT_FRACTIONS) -> Split:
    """A seeded random split of ``num_items`` items.

    ``train = floor(N * f_train)`` and ``val = floor(N * f_val)`` items, the test part gets the rest; e.g.
    ``N = 700`` gives 490 / 105 / 105 and ``N = 2311`` gives 1617 / 346 / 348. ``fractions`` are three
    non-negative numbers summing to 1. Each part is sorted.
    """
    if num_items < 0:
        raise ValueError(f"num_items must be >= 0; got {num_items}")
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(not math.isfinite(f) or f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1; got {fractions}")
    n_train = math.floor(num_items * fractions[0] + 1e-9)
    n_val = math.floor(num_items * fractions[1] + 1e-9)
    perm = torch.from_numpy(_rng(_SPLIT_STREAM, seed).permutation(num_items)).to(torch.int64)
    train, val, test = perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]
    return Split(train.sort().values, val.sort().values, test.sort().values)


def simulate_missing(
    annotations: AnnotationMatrix, train_items: torch.Tensor, rate: float, seed: int
) -> tuple[AnnotationMatrix, torch.Tensor]:
    """Remove each present label of the training items independently with probability ``rate`` (seeded).

    Returns the new matrix (same ids) and ``removed``, ``bool [N, A]``: True where a label was removed. Labels of
    other items are never touched. One uniform number is drawn per entry of ``[N, A]``, so the outcome depends
    only on ``(seed, N, A)`` and the labels, not on the order of ``train_items``.
    """
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"missing rate must be in [0, 1]; got {rate}")
    n, a = annotations.labels.shape
    train_items = torch.as_tensor(train_items, dtype=torch.int64)
    if len(train_items) and (int(train_items.min()) < 0 or int(train_items.max()) >= n):
        raise ValueError(f"train_items must lie in 0..{n - 1}")
    in_train = torch.zeros(n, dtype=torch.bool)
    in_train[train_items] = True
    draws = torch.from_numpy(_rng(_MISSING_STREAM, seed).random((n, a)))
    removed = annotations.mask & in_train.unsqueeze(1) & (draws < rate)
    labels = annotations.labels.masked_fill(removed, -1)
    matrix = AnnotationMatrix(labels, annotations.item_ids, annotations.annotator_ids, annotations.class_names)
    return matrix, removed


@dataclass(frozen=True, eq=False)
class FeatureScaling:
    """A z-score per feature: ``(x - mean) / std`` in float64, returned as float32 (``mean``, ``std``: float64
    ``[D]``; a feature that was constant is only centred, its std taken as 1)."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, inputs: torch.Tensor, items: torch.Tensor) -> FeatureScaling:
        """The mean and std of the rows ``items`` of ``inputs [N, D]``."""
        if inputs.dim() != 2:
            raise ValueError(f"standardize expects features [N, D]; got shape {tuple(inputs.shape)}")
        if len(items) == 0:
            raise ValueError("standardize needs at least one item to take statistics from")
        rows = inputs[items].to(torch.float64)
        std = rows.std(0, unbiased=False)
        return cls(rows.mean(0), torch.where(std > 0, std, torch.ones_like(std)))

    def apply(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs [N, D]`` scaled, float32."""
        return ((inputs.to(torch.float64) - self.mean) / self.std).to(torch.float32)


def standardize(inputs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Z-score each feature (last dimension of ``[N, D]``) with the mean and std of the rows ``items`` only
    (:class:`FeatureScaling`). Returns float32."""
    return FeatureScaling.fit(inputs, items).apply(inputs)


@dataclass(frozen=True, eq=False)
class CrowdDataset:
    """Inputs, annotations, optional truth and the item split of one data set (see the module docstring)."""

    inputs: torch.Tensor
    input_spec: InputSpec
    annotations: AnnotationMatrix
    truth: torch.Tensor | None
    split: Split
    removed: torch.Tensor | None = None
    original: AnnotationMatrix | None = None
    scaling: FeatureScaling | None = None
    feature_names: tuple[str, ...] | None = None
    complete: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.annotations, AnnotationMatrix):
            raise ValueError(f"annotations must be an AnnotationMatrix, not {type(self.annotations).__name__}")
        if not isinstance(self.input_spec, InputSpec):
            raise ValueError(f"input_spec must be an InputSpec, not {type(self.input_spec).__name__}")
        if not isinstance(self.split, Split):
            raise ValueError(f"split must be a Split, not {type(self.split).__name__}")
        n, a = self.annotations.labels.shape
        if self.annotations.num_classes < 2:
            raise ValueError(f"the labels hold a single class, {self.annotations.class_names[0]!r}: annotator models "
                             "need at least 2; declare every class (crowd-csv's classes option, SimLabel.fit's "
                             "classes=) if some never occur")
        self._check_inputs(n)
        if self.truth is not None:
            truth = self.truth
            if not isinstance(truth, torch.Tensor) or truth.dtype != torch.int64 or tuple(truth.shape) != (n,):
                raise ValueError(f"truth must be an int64 tensor of shape ({n},) or None")
            bad = ((truth < -1) | (truth >= self.num_classes)).nonzero()
            if len(bad):
                i = int(bad[0])
                raise ValueError(f"truth[{i}] = {int(truth[i])} is outside 0..{self.num_classes - 1} or -1")
        self.split.check(n)
        if (self.removed is None) != (self.original is None):
            raise ValueError("removed and original must be given together (or neither)")
        if self.removed is not None:
            self._check_removed(n, a)
        if self.complete is not None:
            self._check_complete(n, a)
        if self.input_spec.kind == "features":
            d = self.input_spec.shape[0]
            if self.scaling is not None and (tuple(self.scaling.mean.shape), tuple(self.scaling.std.shape)) != ((d,),) * 2:
                raise ValueError(f"scaling must have a mean and a std of shape ({d},)")
            if self.feature_names is not None:
                object.__setattr__(self, "feature_names", tuple(str(name) for name in self.feature_names))
                if len(self.feature_names) != d or len(set(self.feature_names)) != d:
                    raise ValueError(f"feature_names must be {d} distinct names")
        elif self.scaling is not None or self.feature_names is not None:
            raise ValueError("scaling and feature_names apply to feature inputs only, not images")

    def _check_inputs(self, n: int) -> None:
        x = self.inputs
        if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
            raise ValueError("inputs must be a float32 tensor")
        if x.dim() != 1 + len(self.input_spec.shape) or tuple(x.shape[1:]) != tuple(self.input_spec.shape):
            expected = ", ".join(map(str, self.input_spec.shape))
            raise ValueError(f"inputs have shape {tuple(x.shape)} but input_spec says [N, {expected}]")
        if x.shape[0] != n:
            raise ValueError(f"inputs have {x.shape[0]} rows but the annotations have {n} items")
        bad = (~torch.isfinite(x.flatten(1))).any(1).nonzero()
        if len(bad):
            i = int(bad[0])
            item = self.annotations.item_ids[i]
            raise ValueError(f"inputs are not finite in {len(bad)} row(s); the first is row {i} (item {item!r})")

    def _check_removed(self, n: int, a: int) -> None:
        removed, original = self.removed, self.original
        if not isinstance(removed, torch.Tensor) or removed.dtype != torch.bool or tuple(removed.shape) != (n, a):
            raise ValueError(f"removed must be a bool tensor of shape ({n}, {a}) or None")
        if not isinstance(original, AnnotationMatrix) or (
            original.item_ids, original.annotator_ids, original.class_names
        ) != (self.annotations.item_ids, self.annotations.annotator_ids, self.annotations.class_names):
            raise ValueError("original must be an AnnotationMatrix with the same ids as annotations")
        expected = original.labels.masked_fill(removed, -1)
        if not (removed <= original.mask).all() or not torch.equal(expected, self.annotations.labels):
            raise ValueError("annotations must equal original with exactly the removed labels set to -1")
        in_train = torch.zeros(n, dtype=torch.bool)
        in_train[self.split.train] = True
        outside = (removed & ~in_train.unsqueeze(1)).nonzero()
        if len(outside):
            i, j = (int(v) for v in outside[0])
            raise ValueError(f"removed[{i}, {j}] is set but item {i} is not a training item")

    def _check_complete(self, n: int, a: int) -> None:
        full = self.complete
        if not isinstance(full, torch.Tensor) or full.dtype != torch.int64 or tuple(full.shape) != (n, a):
            raise ValueError(f"complete must be an int64 tensor of shape ({n}, {a}) or None")
        bad = ((full < 0) | (full >= self.num_classes)).nonzero()
        if len(bad):
            i, j = (int(v) for v in bad[0])
            raise ValueError(f"complete[{i}, {j}] = {int(full[i, j])} is outside 0..{self.num_classes - 1}")
        real = (self.original if self.original is not None else self.annotations).labels
        differ = ((real >= 0) & (real != full)).nonzero()
        if len(differ):
            i, j = (int(v) for v in differ[0])
            raise ValueError(f"complete[{i}, {j}] = {int(full[i, j])} differs from the observed label {int(real[i, j])}")

    @property
    def hidden_labels(self) -> torch.Tensor:
        """``int64 [N, A]``: labels known to the data set but not given to training (``complete`` where the
        annotations are missing, else the removed ``original`` labels), ``-1`` elsewhere."""
        given = self.annotations.labels
        if self.complete is not None:
            return self.complete.masked_fill(given >= 0, -1)
        if self.removed is not None:
            return self.original.labels.masked_fill(~self.removed, -1)
        return torch.full_like(given, -1)

    @property
    def num_items(self) -> int:
        """N."""
        return self.annotations.num_items

    @property
    def num_annotators(self) -> int:
        """A."""
        return self.annotations.num_annotators

    @property
    def num_classes(self) -> int:
        """C."""
        return self.annotations.num_classes


def make_dataset(
    inputs: torch.Tensor,
    input_spec: InputSpec,
    annotations: AnnotationMatrix,
    truth: torch.Tensor | None = None,
    *,
    seed: int = 0,
    missing_rate: float = 0.0,
    standardize_features: bool = False,
    fractions: Sequence[float] = SPLIT_FRACTIONS,
    feature_names: Sequence[str] | None = None,
    complete: torch.Tensor | None = None,
) -> CrowdDataset:
    """The evaluation protocol in one call: split (``seed``), optional z-scoring with training statistics
    (features only), and removal of training labels with probability ``missing_rate`` (``seed``, own stream).
    ``feature_names``: the names of the feature columns, kept with the data set (and by models fitted on it);
    ``complete``: every annotator's label on every item, for a simulated crowd (see :class:`CrowdDataset`)."""
    split = split_items(annotations.num_items, seed, fractions)
    scaling = FeatureScaling.fit(inputs, split.train) if standardize_features else None
    if scaling is not None:
        inputs = scaling.apply(inputs)
    removed = original = None
    if missing_rate:
        original = annotations
        annotations, removed = simulate_missing(annotations, split.train, missing_rate, seed)
    return CrowdDataset(inputs, input_spec, annotations, truth, split, removed, original, scaling,
                        None if feature_names is None else tuple(feature_names), complete)
