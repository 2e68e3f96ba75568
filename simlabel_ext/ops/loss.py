"""The public entry point of one SimLabel batch step: options → the fused op (or the reference) → the loss.

``backend`` selects the implementation:

- ``"auto"`` (default) — the fused op ``simlabel::fused_forward``: C++ on CPU, Triton on CUDA, the reference
  elsewhere (see :mod:`.fused`);
- ``"reference"`` — the readable eager implementation of :mod:`.reference` (the oracle), e.g. to debug or to
  compare. The environment variable ``SIMLABEL_BACKEND=reference`` changes the default for a whole process.
"""
from __future__ import annotations

import os

import torch

from .fused import fused_forward
from .options import SimLabelOptions, SimLabelOutput, combine_loss
from .reference import accumulation_dtype, simlabel_loss_reference
from .validation import check_shapes

BACKENDS = ("auto", "reference")
DEFAULT_BACKEND = os.environ.get("SIMLABEL_BACKEND", "auto")


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
    backend: str | None = None,
) -> SimLabelOutput:
    """Loss, confidence, soft-label argmax and impute mask of one batch.

    logits [B, A, C] (float16/bfloat16/float32/float64; accumulated in float32, float64 stays float64),
    labels [B, A] (int, -1 = missing), similarity [A, A] (>= 0, diagonal ignored). Options: see
    :mod:`simlabel_ext.ops.options`; ``backend``: see this module (default ``SIMLABEL_BACKEND`` or ``"auto"``).
    Differentiable w.r.t. ``logits``; the soft labels carry no gradient.
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
    backend = DEFAULT_BACKEND if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {', '.join(map(repr, BACKENDS))}")
    if backend == "reference":
        return simlabel_loss_reference(logits, labels, similarity, options)
    check_shapes(logits, labels, similarity)
    ce_sum, kl_sum, n_ce, n_kl, conf, argmax, impute, _ = fused_forward(
        logits.contiguous(),
        labels.to(torch.int64).contiguous(),
        similarity.to(accumulation_dtype(logits.dtype)).contiguous(),
        options.uses_soft_labels,
        options.imputes,
        float(options.threshold),
        options.kl_direction == "reverse",
        options.contributors == "all",
        options.soft_source == "labels",
        options.kl_weight == "evidence",
    )
    loss = combine_loss(ce_sum, kl_sum, n_ce, n_kl, options)
    return SimLabelOutput(loss, ce_sum, kl_sum, n_ce, n_kl, conf, argmax, impute)
