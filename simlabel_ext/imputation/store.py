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

import numpy as np
import pandas as pd
import torch

from ..data import AnnotationMatrix

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


_EMPTY = torch.zeros(0, dtype=torch.int64)
#: The fields of an :class:`ImputationStore` besides its observed labels, each ``[N, A]``: dtype and the value of
#: an entry that holds no imputed label.
_FIELDS = {"classes": (torch.int64, -1), "confidence": (torch.float32, 0.0), "epoch": (torch.int64, -1),
           "step": (torch.int64, -1), "revisions": (torch.int64, 0)}
_NO_CHANGE = LabelChange(_EMPTY, _EMPTY, _EMPTY, _EMPTY)


class ImputationStore:
    """Imputed labels beside read-only observed labels ``observed [N, A]`` (int64, -1 = missing).

    State, all ``[N, A]`` on the CPU: ``classes`` (int64, -1 = not imputed), ``confidence`` (float32),
    ``epoch`` and ``step`` (int64, when the current class was set: the trainer's epoch numbered from 1 and its
    global optimizer step; -1 where nothing is imputed) and
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
        for name, (dtype, empty) in _FIELDS.items():
            setattr(self, name, torch.full(observed.shape, empty, dtype=dtype))

    @property
    def observed(self) -> torch.Tensor:
        """A copy of the observed labels ``[N, A]``."""
        return self._observed.clone()

    def __len__(self) -> int:
        """Number of entries that currently hold an imputed label."""
        return int((self.classes >= 0).sum())

    def labels(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Observed labels where present, imputed labels elsewhere, -1 for the rest: int64 ``[N, A]``, or only the
        rows ``items`` (int64 ``[B]``) as ``[B, A]``."""
        observed, imputed = (self._observed, self.classes) if items is None else (self._observed[items],
                                                                                    self.classes[items])
        return torch.where(observed >= 0, observed, imputed)

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
        # NumPy views of the CPU tensors: the per-step updates are small, where NumPy's per-call cost is far lower.
        items, annotators, classes = (torch.as_tensor(t, dtype=torch.int64).reshape(-1).numpy()
                                      for t in (items, annotators, classes))
        confidence = torch.as_tensor(confidence, dtype=torch.float32).reshape(-1).numpy()
        n, a = self._observed.shape
        k = len(items)
        if not len(annotators) == len(classes) == len(confidence) == k:
            raise ValueError("items, annotators, classes and confidence must have the same length")
        if k == 0:
            return _NO_CHANGE
        for name, values, hi in (("item", items, n), ("annotator", annotators, a), ("class", classes, self.num_classes)):
            low, high = int(values.min()), int(values.max())
            if low < 0 or high >= hi:
                raise ValueError(f"{name} {low if low < 0 else high} is outside 0..{hi - 1}")
        flat = items * a + annotators  # one index per entry into the flattened [N, A] state
        observed = self._observed.numpy().reshape(-1)[flat]
        if (observed >= 0).any():
            j = int(np.flatnonzero(observed >= 0)[0])
            raise ValueError(f"entry (item {int(items[j])}, annotator {int(annotators[j])}) holds the observed label "
                             f"{int(observed[j])}; observed labels are never overwritten")
        ordered = np.sort(flat)
        if (ordered[1:] == ordered[:-1]).any():
            raise ValueError("an entry appears twice in one imputation update")
        state = self.classes.numpy().reshape(-1)
        previous = state[flat]
        changed = np.flatnonzero(previous != classes)
        if len(changed) == 0:
            return _NO_CHANGE
        at, before = flat[changed], previous[changed]
        state[at] = classes[changed]
        self.confidence.numpy().reshape(-1)[at] = confidence[changed]
        self.epoch.numpy().reshape(-1)[at] = int(epoch)
        self.step.numpy().reshape(-1)[at] = int(step)
        self.revisions.numpy().reshape(-1)[at] += before >= 0
        return LabelChange(*(torch.from_numpy(x) for x in (items[changed], annotators[changed], classes[changed],
                                                           before)))

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

    def frame(self, annotations: AnnotationMatrix) -> pd.DataFrame:
        """The imputed entries in (item, annotator) order as a long table named by ``annotations``' ids: columns
        ``task, worker, label`` (strings), ``confidence`` (float32), ``epoch``, ``step``, ``revisions`` (int64)."""
        entries = self.entries()

        def names(ids: tuple[str, ...], index: torch.Tensor) -> np.ndarray:
            return np.asarray(ids, dtype=object)[index.numpy()]

        return pd.DataFrame({
            "task": names(annotations.item_ids, entries["item"]),
            "worker": names(annotations.annotator_ids, entries["annotator"]),
            "label": names(annotations.class_names, entries["label"]),
            "confidence": entries["confidence"].numpy(),
            "epoch": entries["epoch"].numpy(),
            "step": entries["step"].numpy(),
            "revisions": entries["revisions"].numpy(),
        })

    def state_dict(self) -> dict[str, Any]:
        """Tensors only (loads with ``torch.load(weights_only=True)``), sparse: ``shape`` (int64 ``[2]``, ``N, A``);
        the observed labels as ``observed_at`` (flat entry index ``item * A + annotator``, int64 ``[K_o]``) and
        ``observed`` (their classes, int64 ``[K_o]``); the imputed entries as ``imputed_at`` (int64 ``[K]``) with
        their ``classes``, ``confidence``, ``epoch``, ``step`` and ``revisions`` (``[K]``, dtypes as in the store).
        A crowd of 5,000 items x 200 annotators with 30,000 labels takes well under a megabyte, not the 40 MB of
        its dense ``[N, A]`` fields."""
        observed = self._observed.reshape(-1)
        observed_at = (observed >= 0).nonzero().flatten()
        imputed_at = (self.classes.reshape(-1) >= 0).nonzero().flatten()
        state = {"shape": torch.tensor(self._observed.shape, dtype=torch.int64), "observed_at": observed_at,
                 "observed": observed[observed_at], "imputed_at": imputed_at}
        for name in _FIELDS:
            state[name] = getattr(self, name).reshape(-1)[imputed_at].clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` after checking all of it (a rejected state leaves the store unchanged); the
        observed labels must be the ones this store was built with. The dense form of earlier versions (every
        field ``[N, A]``, no ``imputed_at``) loads too."""
        state = self._dense(state) if "imputed_at" in state else state
        _require(state, ("observed", *_FIELDS))
        for name in ("observed", *_FIELDS):
            current = getattr(self, "_observed" if name == "observed" else name)
            _check_field(name, state[name], tuple(current.shape), current.dtype)
        if not torch.equal(state["observed"], self._observed):
            raise ValueError("the saved imputation store was built on other observed labels (another data set, "
                             "seed or missing rate)")
        classes = state["classes"]
        bad = ((classes < -1) | (classes >= self.num_classes)).nonzero()
        if len(bad):
            i, a = (int(v) for v in bad[0])
            raise ValueError(f"the saved imputation store holds class {int(classes[i, a])} at (item {i}, annotator "
                             f"{a}), outside -1..{self.num_classes - 1}")
        if (classes[self._observed >= 0] >= 0).any():
            raise ValueError("the saved imputation store imputes an entry that holds an observed label")
        for name in _FIELDS:
            setattr(self, name, state[name].clone(memory_format=torch.contiguous_format))

    def _dense(self, state: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The ``[N, A]`` fields of a sparse :meth:`state_dict` (entries it does not list hold the empty value of a
        new store), after checking its layout."""
        _require(state, ("shape", "observed_at", "observed", "imputed_at", *_FIELDS))
        shape = tuple(self._observed.shape)
        _check_field("shape", state["shape"], (2,), torch.int64)
        if tuple(state["shape"].tolist()) != shape:
            raise ValueError(f"the saved imputation store is {tuple(state['shape'].tolist())}, expected {shape}")
        size = shape[0] * shape[1]
        dense = {}
        for at, names in (("observed_at", ("observed",)), ("imputed_at", _FIELDS)):
            index = state[at]
            _check_field(at, index, (len(index),) if isinstance(index, torch.Tensor) else (), torch.int64)
            if len(index) and not (0 <= int(index.min()) and int(index.max()) < size):
                raise ValueError(f"saved imputation store field {at!r} holds an entry outside 0..{size - 1}")
            if len(torch.unique(index)) != len(index):
                raise ValueError(f"saved imputation store field {at!r} names an entry twice")
            for name in names:
                dtype, empty = _FIELDS.get(name, (torch.int64, -1))  # observed: int64, -1 = missing
                _check_field(name, state[name], (len(index),), dtype)
                full = torch.full((size,), empty, dtype=dtype)
                full[index] = state[name]
                dense[name] = full.reshape(shape)
        return dense


def _require(state: dict[str, Any], names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in state]
    if missing:
        raise ValueError(f"the saved imputation store lacks {', '.join(map(repr, missing))}")


def _check_field(name: str, value: Any, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    """``ValueError`` naming the field unless ``value`` is a tensor of ``shape`` and ``dtype``."""
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape or value.dtype != dtype:
        got = f"{tuple(value.shape)} {value.dtype}" if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"saved imputation store field {name!r} is {got}, expected {shape} {dtype}")
