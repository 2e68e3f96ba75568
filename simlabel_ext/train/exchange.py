"""The data-parallel exchange of one step's imputations, so that every rank applies the same ones in one order.

Each rank selects entries of its own shard; :func:`exchange_imputations` all-gathers them (one ``int64`` tensor of
rows ``item, annotator, class, confidence bits``: the float32 confidence travels as its bit pattern, so nothing
is rounded) and sorts them by (item, annotator). On one process it returns its input unchanged: a step's entries
are distinct, so the store and the similarity counts do not depend on their order.
"""
from __future__ import annotations

import numpy as np
import torch

from .distributed import Distributed

__all__ = ["exchange_imputations"]


def exchange_imputations(
    dist: Distributed, items: np.ndarray, annotators: np.ndarray, classes: np.ndarray, confidence: np.ndarray,
    num_annotators: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every rank's ``(items, annotators, classes, confidence)`` (``[K_r]`` each; int64, float32 confidence),
    concatenated and in (item, annotator) order on every rank."""
    if not dist.active:
        return items, annotators, classes, confidence
    local = torch.from_numpy(np.stack([items, annotators, classes, confidence.view(np.int32).astype(np.int64)], 1))
    chosen = dist.all_gather_rows(local).numpy()
    chosen = chosen[np.argsort(chosen[:, 0] * num_annotators + chosen[:, 1])]
    return chosen[:, 0], chosen[:, 1], chosen[:, 2], chosen[:, 3].astype(np.int32).view(np.float32)
