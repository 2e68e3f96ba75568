"""The annotation matrix: who gave which label to which item, with ``-1`` for a missing label.

:class:`AnnotationMatrix` holds ``labels`` (``torch.int64 [N, A]``, values in ``0..C-1`` or ``-1``) and the ids
that name its rows (items), columns (annotators) and label values (classes). Every invariant is checked once, in
the constructor, so code downstream can trust the shapes and the value range. The matrix does not copy
``labels``: do not modify the tensor in place after construction.

:class:`AnnotationSummary` is the matrix's label statistics (the paper's Table 1): labels and missing rate per
annotator and overall. Missing rates are fractions in ``[0, 1]`` (``0.0`` when there are no entries at all).

:func:`from_arrays` builds a matrix from a plain integer array, naming items, annotators and classes
``"0", "1", ...`` unless told otherwise. Reading and writing files is in :mod:`simlabel_ext.data.formats`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["AnnotationMatrix", "AnnotationSummary", "from_arrays"]


def _check_ids(name: str, ids: Sequence[str]) -> tuple[str, ...]:
    """``ids`` as a tuple of unique strings; ``ValueError`` naming the first bad or repeated entry."""
    if isinstance(ids, str):
        raise ValueError(f"{name} must be a sequence of strings, not the string {ids!r}")
    ids = tuple(ids)
    first: dict[str, int] = {}
    for pos, value in enumerate(ids):
        if not isinstance(value, str):
            raise ValueError(f"{name}[{pos}] = {value!r} is a {type(value).__name__}, not a str")
        if value in first:
            what = name[:-1].replace("_", " ")  # "annotator_ids" -> "annotator id"
            raise ValueError(f"duplicate {what} {value!r} at positions {first[value]} and {pos}")
        first[value] = pos
    return ids


@dataclass(frozen=True, slots=True)
class AnnotationSummary:
    """Label statistics of an :class:`AnnotationMatrix`; rates are fractions in ``[0, 1]``."""

    num_items: int
    num_annotators: int
    num_classes: int
    num_labels: int
    annotator_ids: tuple[str, ...]
    labels_per_annotator: tuple[int, ...]
    missing_rate_per_annotator: tuple[float, ...]
    missing_rate: float
    empty_annotators: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists instead of tuples, per-annotator values keyed by annotator id)."""
        return {
            "num_items": self.num_items,
            "num_annotators": self.num_annotators,
            "num_classes": self.num_classes,
            "num_labels": self.num_labels,
            "missing_rate": self.missing_rate,
            "labels_per_annotator": dict(zip(self.annotator_ids, self.labels_per_annotator)),
            "missing_rate_per_annotator": dict(zip(self.annotator_ids, self.missing_rate_per_annotator)),
            "empty_annotators": list(self.empty_annotators),
        }

    def __str__(self) -> str:
        """A plain-text table: one row per annotator (id, #labels, missing %), then the overall line."""
        width = max([len("annotator"), len("overall")] + [len(a) for a in self.annotator_ids])
        lines = [
            f"{self.num_items} items, {self.num_annotators} annotators, {self.num_classes} classes, "
            f"{self.num_labels} labels",
            f"{'annotator':<{width}}  {'#labels':>8}  {'missing %':>9}",
        ]
        for ann, count, rate in zip(self.annotator_ids, self.labels_per_annotator, self.missing_rate_per_annotator):
            lines.append(f"{ann:<{width}}  {count:>8}  {100 * rate:>9.1f}")
        lines.append(f"{'overall':<{width}}  {self.num_labels:>8}  {100 * self.missing_rate:>9.1f}")
        if self.empty_annotators:
            lines.append("annotators without labels: " + ", ".join(self.empty_annotators))
        return "\n".join(lines)


@dataclass(frozen=True, slots=True, eq=False)
class AnnotationMatrix:
    """Labels ``[N, A]`` (``torch.int64``, ``0..C-1`` or ``-1`` = missing) with item, annotator and class ids.

    ``item_ids`` (length N), ``annotator_ids`` (length A) and ``class_names`` (length C >= 1) are unique
    strings; any sequence of strings is accepted and stored as a tuple. Equality compares ids and labels.
    """

    labels: torch.Tensor
    item_ids: tuple[str, ...]
    annotator_ids: tuple[str, ...]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        labels = self.labels
        if not isinstance(labels, torch.Tensor):
            raise ValueError(f"labels must be a torch.Tensor, not {type(labels).__name__}")
        if labels.dtype != torch.int64:
            raise ValueError(f"labels must have dtype torch.int64, got {labels.dtype}")
        if labels.dim() != 2:
            raise ValueError(f"labels must be 2-D [items, annotators], got shape {tuple(labels.shape)}")
        for field in ("item_ids", "annotator_ids", "class_names"):
            object.__setattr__(self, field, _check_ids(field, getattr(self, field)))
        n, a = labels.shape
        if n != len(self.item_ids) or a != len(self.annotator_ids):
            raise ValueError(
                f"labels has shape {tuple(labels.shape)} but there are {len(self.item_ids)} item ids "
                f"and {len(self.annotator_ids)} annotator ids"
            )
        c = len(self.class_names)
        if c == 0:
            raise ValueError("class_names is empty: at least one class is needed")
        bad = ((labels < -1) | (labels >= c)).nonzero()
        if len(bad):
            i, j = (int(v) for v in bad[0])
            raise ValueError(
                f"labels[{i}, {j}] = {int(labels[i, j])} is outside 0..{c - 1} ({c} classes) or -1"
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AnnotationMatrix):
            return NotImplemented
        return (
            self.item_ids == other.item_ids
            and self.annotator_ids == other.annotator_ids
            and self.class_names == other.class_names
            and torch.equal(self.labels.cpu(), other.labels.cpu())
        )

    __hash__ = None  # type: ignore[assignment]  # holds a mutable tensor

    @property
    def num_items(self) -> int:
        """N."""
        return len(self.item_ids)

    @property
    def num_annotators(self) -> int:
        """A."""
        return len(self.annotator_ids)

    @property
    def num_classes(self) -> int:
        """C."""
        return len(self.class_names)

    @property
    def mask(self) -> torch.Tensor:
        """``bool [N, A]``: True where a label is present."""
        return self.labels >= 0

    @property
    def num_labels(self) -> int:
        """Number of present labels."""
        return int(self.mask.sum())

    def empty_annotators(self) -> tuple[str, ...]:
        """Ids of the annotators without any label, in column order."""
        counts = self.mask.sum(dim=0).tolist()
        return tuple(a for a, k in zip(self.annotator_ids, counts) if k == 0)

    def summary(self) -> AnnotationSummary:
        """Labels and missing rate per annotator and overall."""
        n, a = self.num_items, self.num_annotators
        counts = tuple(int(k) for k in self.mask.sum(dim=0).tolist())
        total = sum(counts)
        return AnnotationSummary(
            num_items=n,
            num_annotators=a,
            num_classes=self.num_classes,
            num_labels=total,
            annotator_ids=self.annotator_ids,
            labels_per_annotator=counts,
            missing_rate_per_annotator=tuple(1.0 - k / n if n else 0.0 for k in counts),
            missing_rate=1.0 - total / (n * a) if n * a else 0.0,
            empty_annotators=tuple(ann for ann, k in zip(self.annotator_ids, counts) if k == 0),
        )


def from_arrays(
    labels: np.ndarray | torch.Tensor | Sequence[Sequence[int]],
    item_ids: Sequence[str] | None = None,
    annotator_ids: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
) -> AnnotationMatrix:
    """An :class:`AnnotationMatrix` from an integer array ``[N, A]`` (``-1`` = missing).

    Ids default to ``"0".."N-1"`` and ``"0".."A-1"``; class names to ``"0".."C-1"`` with ``C = max label + 1``
    (at least 1). Floating-point or boolean arrays are refused rather than silently cast.
    """
    tensor = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise ValueError(f"labels must be an integer array, got dtype {tensor.dtype}")
    tensor = tensor.to(torch.int64)
    if tensor.dim() != 2:
        raise ValueError(f"labels must be 2-D [items, annotators], got shape {tuple(tensor.shape)}")
    n, a = tensor.shape
    if class_names is None:
        c = int(tensor.max()) + 1 if tensor.numel() else 1
        class_names = [str(k) for k in range(max(c, 1))]
    return AnnotationMatrix(
        labels=tensor,
        item_ids=[str(i) for i in range(n)] if item_ids is None else item_ids,
        annotator_ids=[str(j) for j in range(a)] if annotator_ids is None else annotator_ids,
        class_names=class_names,
    )
