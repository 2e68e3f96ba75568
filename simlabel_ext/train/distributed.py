"""Data-parallel context: one process (no-op collectives) or a ``torchrun`` process group (PyTorch DDP).

:func:`init_distributed` reads torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) and joins the
default process group with ``gloo`` on the CPU or ``nccl`` on CUDA. The few collectives the trainer needs are
methods of :class:`Distributed`; in a single process they return their input.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Distributed", "init_distributed", "pick_device", "shutdown_distributed"]


@dataclass(frozen=True)
class Distributed:
    """``rank`` of ``world_size`` processes; ``device`` is where this rank computes."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum of ``tensor`` over ranks (a new tensor on the input's device)."""
        if not self.active:
            return tensor.clone()
        total = tensor.detach().to(self.device).clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.to(tensor.device)

    def all_gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Concatenate ``rows [K_r, ...]`` of every rank in rank order (``K_r`` may differ, and may be 0)."""
        if not self.active:
            return rows
        local = rows.to(self.device)
        sizes = torch.zeros(self.world_size, dtype=torch.int64, device=self.device)
        sizes[self.rank] = local.shape[0]
        dist.all_reduce(sizes, op=dist.ReduceOp.SUM)
        longest = int(sizes.max())
        padded = local.new_zeros((longest, *local.shape[1:]))
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        return torch.cat([p[: int(k)] for p, k in zip(parts, sizes)]).to(rows.device)

    def all_gather_stacked(self, tensor: torch.Tensor) -> torch.Tensor:
        """``[world_size, *tensor.shape]``: every rank's ``tensor`` (the same shape on every rank), on the device,
        without reading the host (unlike :meth:`all_gather_rows`, whose sizes may differ)."""
        if not self.active:
            return tensor.unsqueeze(0)
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast_object(self, value: object) -> object:
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA if available, else CPU; a bare ``cuda`` → the local rank's GPU (made current)."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} was requested but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def init_distributed(requested_device: str = "auto") -> Distributed:
    """Join torchrun's process group if ``WORLD_SIZE > 1`` (gloo on CPU, nccl on CUDA); else one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank, world_size, device)


def shutdown_distributed() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
