"""A training step's one read of the host: its error word, loss parts and counts, and the imputation selection of
every rank, in one copy; under DDP the ranks exchange their selections on the device first, so every rank applies
the same imputations in the same order.

:func:`pack_step` lays out, in one int64 tensor on the device: the op's ``errors`` [2], the step's local
``ce_sum`` and ``kl_sum`` (float64 bits) and ``n_ce``, ``n_kl``, and, when the step imputes, every rank's
``[shard, A]`` impute mask, soft argmax and confidence (float32 bits), padded to the largest shard and gathered
with a fixed-size all-gather (no host read). :func:`read_step` copies it to the host once and
:func:`selected_entries` turns the gathered selection into the entries to impute, sorted by (item, annotator):
every rank knows every shard's items (the batch order is shared), so only the per-entry outputs travel.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .distributed import Distributed

__all__ = ["StepRead", "pack_step", "read_step", "selected_entries"]


class StepRead(NamedTuple):
    """The host's copy of one step: ``errors`` [2], ``totals`` (ce_sum, kl_sum, n_ce, n_kl; float64 [4], this
    rank's), and ``entries`` (int64 ``[world_size, shard, A, 3]``: mask, class, confidence bits) or None."""

    errors: list[int]
    totals: np.ndarray
    entries: np.ndarray | None


def pack_step(dist: Distributed, errors: torch.Tensor, ce_sum: torch.Tensor, kl_sum: torch.Tensor,
              n_ce: torch.Tensor, n_kl: torch.Tensor, impute: tuple[torch.Tensor, ...] | None, shard: int
              ) -> tuple[torch.Tensor, tuple[int, ...] | None]:
    """The step's outputs in one int64 device tensor (see the module docstring) and the entries' shape."""
    sums = torch.stack([ce_sum.detach().to(torch.float64), kl_sum.detach().to(torch.float64)]).view(torch.int64)
    parts = [errors.reshape(2), sums, torch.stack([n_ce, n_kl]).to(torch.int64)]
    shape = None
    if impute is not None:
        mask, classes, confidence = impute
        b, a = mask.shape
        local = torch.stack([mask.to(torch.int64), classes.to(torch.int64),
                             confidence.detach().to(torch.float32).view(torch.int32).to(torch.int64)], -1)
        padded = local.new_zeros((shard, a, 3))
        padded[:b] = local
        gathered = dist.all_gather_stacked(padded)
        shape = tuple(gathered.shape)
        parts.append(gathered.reshape(-1))
    return torch.cat(parts), shape


def read_step(packed: tuple[torch.Tensor, tuple[int, ...] | None]) -> StepRead:
    """The one host read of a step (:func:`pack_step`'s tensor, copied and split)."""
    values, shape = packed
    host = values.cpu().numpy()
    totals = np.concatenate([host[2:4].view(np.float64), host[4:6].astype(np.float64)])
    entries = host[6:].reshape(shape) if shape is not None else None
    return StepRead(host[0:2].tolist(), totals, entries)


def selected_entries(entries: np.ndarray, batch: np.ndarray, world_size: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(items, annotators, classes, confidence, mask)`` of every rank's shard of the global ``batch``, entry by
    entry, in (item, annotator) order; ``mask`` says which entries the op selected for imputation."""
    a = entries.shape[2]
    rows = [batch[r::world_size] for r in range(world_size)]
    flat = np.concatenate([entries[r, :len(rows[r])] for r in range(world_size)]).reshape(-1, 3)
    items = np.repeat(np.concatenate(rows), a)
    annotators = np.tile(np.arange(a), len(items) // a if a else 0)
    order = np.argsort(items * a + annotators, kind="stable")
    flat, items, annotators = flat[order], items[order], annotators[order]
    confidence = flat[:, 2].astype(np.int32).view(np.float32)
    return items, annotators, flat[:, 1], confidence, flat[:, 0].astype(bool)
