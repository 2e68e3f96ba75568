"""The public entry point of one SimLabel batch step."""
from __future__ import annotations

import torch

from .options import SimLabelOptions, SimLabelOutput
from .reference import simlabel_loss_reference


def simlabel_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    similarity: torch.Tensor,
    *,
    mode: str = "simlabel+confidence",
    threshold: float = 0.6,
    kl_direction: str = "reverse",
    reduction: str = "mean",
    lam: float = 1.0,
    contributors: str = "labelled",
    soft_source: str = "predictions",
    kl_weight: str = "uniform",
) -> SimLabelOutput:
    """Loss, confidence, soft-label argmax and impute mask of one batch.

    logits [B, A, C] (float16/bfloat16/float32/float64), labels [B, A] (int, -1 = missing),
    similarity [A, A] (>= 0, diagonal ignored). Options: see :mod:`simlabel_ext.ops.options`.
    """
    options = SimLabelOptions(
        mode=mode,
        threshold=threshold,
        kl_direction=kl_direction,
        reduction=reduction,
        lam=lam,
        contributors=contributors,
        soft_source=soft_source,
        kl_weight=kl_weight,
    )
    return simlabel_loss_reference(logits, labels, similarity, options)
