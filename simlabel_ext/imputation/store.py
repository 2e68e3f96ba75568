"""The imputation store: the only writer of imputed labels, keyed by (item index, annotator).

Observed labels ``observed [N, A]`` (int64, -1 = missing) are read-only: an entry that holds an observed label can
never be imputed (:meth:`ImputationStore.update` raises, naming the entry). Every imputed label keeps its
provenance: the confidence of the soft label that produced it, the epoch and global optimizer step when its
current class was set, and how often the entry was revised to another class.

:meth:`ImputationStore.update` returns the entries whose class changed as :class:`LabelChange` tensors, which is
exactly what :meth:`simlabel_ext.similarity.SimilarityEngine.set_labels` takes: the store holds no engine, the
caller applies the changes (remove old + add new is one ``set_label`` per entry).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch

__all__ = ["ImputationStore", "LabelChange"]


class LabelChange(NamedTuple):
    """Entries whose imputed class changed: ``items``, ``annotators``, ``classes`` (int64 ``[K]``, new class)
    and ``previous`` (int64 ``[K]``, the class before, -1 for a first imputation)."""

    items: torch.Tensor
    annotators: torch.Tensor
    classes: torch.Tensor
    previous: torch.Tensor

    def __len__(self) -> int:  # noqa: D105 - the number of changed entries
        return int(self.items.numel())


class ImputationStore:
    """Imputed labels beside read-only observed labels ``observed [N, A]`` (int64, -1 = missing).

    State, all ``[N, A]`` on the CPU: ``classes`` (int64, -1 = not imputed), ``confidence`` (float32),
    ``epoch`` and ``step`` (int64, when the current class was set; -1 where nothing is imputed) and
    ``revisions`` (int64, how often the entry changed class after its first imputation).
    """

    def __init__(self, observed: torch.Tensor, num_classes: int) -> None:
        if not isinstance(observed, torch.Tensor) or observed.dim() != 2 or observed.dtype != torch.int64:
            raise ValueError("observed must be an int64 tensor [N, A] (-1 = missing)")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2; got {num_classes}")
        bad = ((observed < -1) | (observed >= num_classes)).nonzero()
        if len(bad):
            i, a = (int(v) for v in bad[0])
            raise ValueError(f"observed[{i}, {a}] = {int(observed[i, a])} is outside -1..{num_classes - 1}")
        self._observed = observed.clone()
        self.num_classes = int(num_classes)
        shape = observed.shape
        self.classes = torch.full(shape, -1, dtype=torch.int64)
        self.confidence = torch.zeros(shape, dtype=torch.float32)
        self.epoch = torch.full(shape, -1, dtype=torch.int64)
        self.step = torch.full(shape, -1, dtype=torch.int64)
        self.revisions = torch.zeros(shape, dtype=torch.int64)

    @property
    def observed(self) -> torch.Tensor:
        """A copy of the observed labels ``[N, A]``."""
        return self._observed.clone()

    def __len__(self) -> int:
        """Number of entries that currently hold an imputed label."""
        return int((self.classes >= 0).sum())

    def labels(self) -> torch.Tensor:
        """Observed labels where present, imputed labels elsewhere, -1 for the rest: int64 ``[N, A]``."""
        return torch.where(self._observed >= 0, self._observed, self.classes)

    def update(
        self,
        items: torch.Tensor,
        annotators: torch.Tensor,
        classes: torch.Tensor,
        confidence: torch.Tensor,
        *,
        epoch: int,
        step: int,
    ) -> LabelChange:
        """Impute ``classes[k]`` at ``(items[k], annotators[k])`` with its ``confidence[k]`` (all ``[K]``).

        An entry re-selected with the class it already holds keeps its provenance (the first time that class was
        imputed); an entry selected with another class is revised (its confidence, epoch and step are replaced
        and ``revisions`` grows by one). Entries must be distinct within one call and must not hold an observed
        label. Returns the entries whose class changed, in the order given.
        """
        items, annotators, classes = (torch.as_tensor(t, dtype=torch.int64).reshape(-1) for t in (items, annotators, classes))
        confidence = torch.as_tensor(confidence, dtype=torch.float32).reshape(-1)
        n, a = self._observed.shape
        k = items.numel()
        if not annotators.numel() == classes.numel() == confidence.numel() == k:
            raise ValueError("items, annotators, classes and confidence must have the same length")
        if k == 0:
            empty = torch.zeros(0, dtype=torch.int64)
            return LabelChange(empty, empty, empty, empty)
        for name, values, hi in (("item", items, n), ("annotator", annotators, a), ("class", classes, self.num_classes)):
            bad = ((values < 0) | (values >= hi)).nonzero()
            if len(bad):
                raise ValueError(f"{name} {int(values[int(bad[0])])} is outside 0..{hi - 1}")
        observed = (self._observed[items, annotators] >= 0).nonzero()
        if len(observed):
            j = int(observed[0])
            i, b = int(items[j]), int(annotators[j])
            raise ValueError(f"entry (item {i}, annotator {b}) holds the observed label {int(self._observed[i, b])}; "
                             "observed labels are never overwritten")
        flat = items * a + annotators
        if flat.unique().numel() != k:
            raise ValueError("an entry appears twice in one imputation update")
        previous = self.classes[items, annotators]
        changed = previous != classes
        ci, ca, cc = items[changed], annotators[changed], classes[changed]
        revised = previous[changed] >= 0
        self.classes[ci, ca] = cc
        self.confidence[ci, ca] = confidence[changed]
        self.epoch[ci, ca] = int(epoch)
        self.step[ci, ca] = int(step)
        self.revisions[ci[revised], ca[revised]] += 1
        return LabelChange(ci, ca, cc, previous[changed])

    def entries(self) -> dict[str, torch.Tensor]:
        """The imputed entries in (item, annotator) order: ``item``, ``annotator``, ``label``, ``confidence``,
        ``epoch``, ``step``, ``revisions`` (each ``[K]``)."""
        index = (self.classes >= 0).nonzero()
        i, a = index[:, 0], index[:, 1]
        return {
            "item": i,
            "annotator": a,
            "label": self.classes[i, a],
            "confidence": self.confidence[i, a],
            "epoch": self.epoch[i, a],
            "step": self.step[i, a],
            "revisions": self.revisions[i, a],
        }

    def state_dict(self) -> dict[str, Any]:
        """Tensors only (loads with ``torch.load(weights_only=True)``)."""
        return {
            "observed": self._observed.clone(),
            "classes": self.classes.clone(),
            "confidence": self.confidence.clone(),
            "epoch": self.epoch.clone(),
            "step": self.step.clone(),
            "revisions": self.revisions.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the observed labels must be the ones this store was built with."""
        if not torch.equal(state["observed"], self._observed):
            raise ValueError("the saved imputation store was built on other observed labels (another data set, "
                             "seed or missing rate)")
        classes = state["classes"]
        if (classes[self._observed >= 0] >= 0).any():
            raise ValueError("the saved imputation store imputes an entry that holds an observed label")
        for name in ("classes", "confidence", "epoch", "step", "revisions"):
            value = state[name]
            current = getattr(self, name)
            if value.shape != current.shape or value.dtype != current.dtype:
                raise ValueError(f"saved imputation store field {name!r} has shape {tuple(value.shape)} "
                                 f"{value.dtype}, expected {tuple(current.shape)} {current.dtype}")
            setattr(self, name, value.clone())
