"""The public entry point of one SimLabel batch step: it checks the inputs once and calls the op.

``backend`` selects the implementation:

- ``"auto"`` (default) — the fused op ``simlabel::fused_forward``: C++ on CPU, Triton on CUDA, the closed-form
  eager twin elsewhere (see :mod:`.fused`);
- ``"reference"`` — the readable autograd implementation of :mod:`.reference` (the oracle), e.g. to debug or to
  compare. The environment variable ``SIMLABEL_BACKEND=reference`` changes the default for a whole process.

``checks`` decides when bad input (a label outside -1..C-1, a similarity that is not finite and >= 0) raises:

- ``"sync"`` (default; ``SIMLABEL_CHECKS`` changes it) — before this function returns: on the CPU the kernel raises
  itself; on CUDA the function reads the op's 16-byte ``errors`` word once (one host synchronisation);
- ``"deferred"`` — never here: the op runs without any host synchronisation (``torch.cuda.set_sync_debug_mode``
  "error", CUDA graphs), and the caller passes ``out.errors`` to :func:`~simlabel_ext.ops.validation.check_errors`
  when it next reads the host (the trainer does, in its one read per step). Under ``torch.compile`` the check
  is always deferred. Until then, outputs of a step with bad input are undefined.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from .fused import fused_forward
from .options import SimLabelOptions, SimLabelOutput, combine_loss
from .reference import accumulation_dtype, simlabel_loss_reference
from .validation import check_errors, check_shapes

BACKENDS = ("auto", "reference")
DEFAULT_BACKEND = os.environ.get("SIMLABEL_BACKEND", "auto")
CHECKS = ("sync", "deferred")
DEFAULT_CHECKS = os.environ.get("SIMLABEL_CHECKS", "sync")

_DEFAULTS = SimLabelOptions()


def simlabel_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    similarity: torch.Tensor,
    options: SimLabelOptions | None = None,
    *,
    backend: str | None = None,
    checks: str | None = None,
    **changes: Any,
) -> SimLabelOutput:
    """Loss, confidence, soft-label argmax and impute mask of one batch.

    logits [B, A, C] (float16/bfloat16/float32/float64; accumulated in float32, float64 stays float64),
    labels [B, A] (int, -1 = missing), similarity [A, A] (>= 0, diagonal ignored). ``options``: a
    :class:`SimLabelOptions` (default: its defaults); keyword ``changes`` replace single options, e.g.
    ``simlabel_loss(logits, labels, S, mode="skip")``. ``backend`` and ``checks``: see this module (defaults
    ``SIMLABEL_BACKEND`` or ``"auto"``, ``SIMLABEL_CHECKS`` or ``"sync"``). Differentiable w.r.t. ``logits``; the
    soft labels carry no gradient.
    """
    options = options if options is not None else _DEFAULTS
    if not isinstance(options, SimLabelOptions):
        raise TypeError(f"options must be a SimLabelOptions; got {type(options).__name__}")
    if changes:
        options = options.replace(**changes)
    backend = DEFAULT_BACKEND if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {', '.join(map(repr, BACKENDS))}")
    checks = DEFAULT_CHECKS if checks is None else checks
    if checks not in CHECKS:
        raise ValueError(f"checks={checks!r} is not one of {', '.join(map(repr, CHECKS))}")
    if backend == "reference":
        return simlabel_loss_reference(logits, labels, similarity, options)
    check_shapes(logits, labels, similarity)
    labels = labels.to(torch.int64).contiguous()
    similarity = similarity.to(accumulation_dtype(logits.dtype)).contiguous()
    ce_sum, kl_sum, n_ce, n_kl, conf, argmax, impute, _, errors = fused_forward(
        logits.contiguous(), labels, similarity, options.kernel_flags, options.threshold
    )
    if checks == "sync" and logits.is_cuda and not torch.compiler.is_compiling():
        check_errors(errors, labels, similarity, logits.shape[-1])
    loss = combine_loss(ce_sum, kl_sum, n_ce, n_kl, options)
    return SimLabelOutput(loss, ce_sum, kl_sum, n_ce, n_kl, conf, argmax, impute, errors)
