"""The optimizer and learning-rate schedule of ALGORITHM.md §5, and the KL weight ramp."""
from __future__ import annotations

import math

import torch

__all__ = ["build_optimizer", "kl_weight", "warmup_cosine"]


def warmup_cosine(step: int, total_steps: int, warmup: float) -> float:
    """Learning-rate factor at optimizer ``step`` (0-based): linear from ``1/w`` to 1 over the first
    ``w = ceil(warmup * total_steps)`` steps, then cosine from 1 to 0 over the rest."""
    warm = math.ceil(round(warmup * total_steps, 9))  # round first: 0.07 * 100 is 7.000000000000001
    if step < warm:
        return (step + 1) / warm
    rest = max(1, total_steps - warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / rest)))


def build_optimizer(
    parameters, lr: float, weight_decay: float, total_steps: int, warmup: float
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW and its warm-up + cosine :class:`~torch.optim.lr_scheduler.LambdaLR` (stepped once per step)."""
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total_steps, warmup))
    return optimizer, scheduler


def kl_weight(lam: float, epoch: int, warmup_epochs: int) -> float:
    """λ at ``epoch`` (0-based): ``lam · min(1, (epoch + 1) / warmup_epochs)``, or ``lam`` without a ramp."""
    if warmup_epochs <= 0:
        return lam
    return lam * min(1.0, (epoch + 1) / warmup_epochs)
