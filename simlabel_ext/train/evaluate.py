"""Evaluation over a whole split (ALGORITHM.md §6), sharded over ranks and summed, so every rank gets the same.

Per-annotator accuracy: for each annotator, the accuracy of its model's argmax on the split's items that
annotator labelled. The validation loss is the mean cross-entropy over the split's observed labels (the same
quantity in every mode, so early stopping compares like with like).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .distributed import Distributed

__all__ = ["SplitMetrics", "evaluate_split"]


@dataclass(frozen=True)
class SplitMetrics:
    """``correct`` and ``count`` per annotator (int64 ``[A]``) and the summed cross-entropy ``ce_sum`` (nats)."""

    correct: torch.Tensor
    count: torch.Tensor
    ce_sum: float

    @property
    def labels(self) -> int:
        return int(self.count.sum())

    @property
    def loss(self) -> float:
        """Mean cross-entropy per observed label (``nan`` when the split has no labels)."""
        return self.ce_sum / self.labels if self.labels else float("nan")

    @property
    def accuracy(self) -> torch.Tensor:
        """Per-annotator accuracy, float64 ``[A]``, ``nan`` for an annotator without labels in the split."""
        return torch.where(self.count > 0, self.correct.double() / self.count.clamp(min=1).double(), torch.nan)

    @property
    def avg(self) -> float:
        """The paper's "Avg": mean of the per-annotator accuracies over annotators with labels in the split."""
        acc = self.accuracy[self.count > 0]
        return float(acc.mean()) if len(acc) else float("nan")

    @property
    def micro(self) -> float:
        """Accuracy over all the split's labels."""
        return float(self.correct.sum()) / self.labels if self.labels else float("nan")


@torch.no_grad()
def evaluate_split(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    items: torch.Tensor,
    dist: Distributed,
    batch_size: int,
) -> SplitMetrics:
    """Metrics of ``model`` (in eval mode) on ``items`` against ``labels [N, A]`` (-1 = missing).

    Rank ``r`` evaluates ``items[r::W]``; the sums are all-reduced.
    """
    was_training = model.training
    model.eval()
    a = labels.shape[1]
    totals = torch.zeros(2 * a + 1, dtype=torch.float64)
    shard = items[dist.rank::dist.world_size]
    try:
        for start in range(0, len(shard), batch_size):
            index = shard[start:start + batch_size]
            y = labels[index].to(dist.device)
            logits = model(inputs[index].to(dist.device)).logits.float()
            present = y >= 0
            hit = (logits.argmax(-1) == y) & present
            ce = F.cross_entropy(logits[present], y[present], reduction="sum") if present.any() else logits.new_zeros(())
            totals[:a] += hit.sum(0).cpu().to(torch.float64)
            totals[a:2 * a] += present.sum(0).cpu().to(torch.float64)
            totals[2 * a] += float(ce)
    finally:
        model.train(was_training)
    totals = dist.all_reduce_sum(totals)
    return SplitMetrics(totals[:a].round().to(torch.int64), totals[a:2 * a].round().to(torch.int64),
                        float(totals[2 * a]))
