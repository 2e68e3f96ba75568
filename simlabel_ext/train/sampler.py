"""The batch order of an epoch, shared by every process count.

Each epoch draws one permutation of the training items from a generator seeded with ``(seed, epoch)`` and cuts
it into global batches of ``batch_size`` items; rank ``r`` of ``W`` takes positions ``r, r + W, ...`` of each
global batch. The union over ranks of one step's shards is therefore the same global batch as in a one-process
run, so a data-parallel run takes the same optimizer steps.

``torch.utils.data.DistributedSampler`` is not used: it pads the epoch with repeated items so that every rank
gets as many, which changes the loss of a run that is not a multiple of the world size. Here nothing is
repeated; in the last global batch a rank may get fewer items, or none, and still joins every collective.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

__all__ = ["ShardedBatches"]


class ShardedBatches:
    """Per-step item indices of one rank: iterate with :meth:`epoch`."""

    def __init__(self, items: torch.Tensor, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < world_size:
            raise ValueError(f"the global batch size ({batch_size}) must be at least the number of processes "
                             f"({world_size})")
        self.items = torch.as_tensor(items, dtype=torch.int64)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)

    def __len__(self) -> int:
        """Global batches (optimizer steps) per epoch."""
        return -(-len(self.items) // self.batch_size)

    def permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(epoch))
        return self.items[torch.randperm(len(self.items), generator=generator)]

    def global_epoch(self, epoch: int) -> Iterator[torch.Tensor]:
        """Every rank's items of each step of ``epoch``, the global batch (int64 ``[<= batch_size]``); rank ``r``'s
        shard is ``batch[r::world_size]``, so every rank knows every shard without communication."""
        order = self.permutation(epoch)
        for start in range(0, len(order), self.batch_size):
            yield order[start:start + self.batch_size]

    def epoch(self, epoch: int) -> Iterator[torch.Tensor]:
        """This rank's item indices for each step of ``epoch`` (int64 ``[b]``, ``b`` may be 0)."""
        for batch in self.global_epoch(epoch):
            yield batch[self.rank::self.world_size]
