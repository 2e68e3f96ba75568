"""The fused SimLabel op ``simlabel::fused_forward``: one schema, a kernel registered per device, a fake
implementation and an autograd formula (``torch.library``).

Schema: ``(logits [B, A, C], labels [B, A] int64, similarity [A, A], flags, threshold)`` →
``(ce_sum, kl_sum, n_ce, n_kl, confidence [B, A], soft_argmax [B, A], impute_mask [B, A], grad [B, A, C],
errors [2])``, where ``flags`` and ``threshold`` are :attr:`SimLabelOptions.kernel_flags
<simlabel_ext.ops.options.SimLabelOptions>` and the threshold. One forward pass computes the loss sums, the
per-entry outputs and the gradient buffer (Liger-Kernel style: the gradient of ``ce_sum`` on observed entries and
of ``kl_sum`` on soft entries; the two sets are disjoint), so backward is one elementwise product:
``d logits = grad · (g_ce where observed else g_kl)`` (one Triton kernel on CUDA).

Kernels, by device:

- CPU: the C++ kernel ``simlabel_ext._C.fused_loss_forward`` (``csrc/simlabel_loss``);
- CUDA: the Triton kernels of :mod:`simlabel_ext.kernels.simlabel_triton` (float16/bfloat16/float32 logits);
- any other device, float64 logits on CUDA, or a kernel that is not available (extension not built, no triton):
  :func:`~simlabel_ext.ops.reference.closed_form_forward`, which gives the same outputs.

Value checks (label range, similarity finite and >= 0): the CPU and the closed-form paths raise inside the op; the
CUDA kernels never synchronise with the host, forward or backward: they record the first bad cell of each input in
``errors`` (:data:`~simlabel_ext.kernels.NO_ERROR` where none), which
:func:`~simlabel_ext.ops.validation.check_errors` turns into the same ``ValueError`` when the caller reads the host.
So the op can run under ``torch.cuda.set_sync_debug_mode("error")`` and inside CUDA-graph capture.
"""
from __future__ import annotations

import torch

from .. import _extension
from ..kernels.flags import NO_ERROR
from .options import SimLabelOptions
from .reference import accumulation_dtype, closed_form_forward
from .validation import check_values

__all__ = ["fused_forward", "no_errors"]

Outputs = tuple[torch.Tensor, ...]


def no_errors(device: torch.device) -> torch.Tensor:
    """The errors output of a path that raises instead (nothing recorded)."""
    return torch.full((2,), NO_ERROR, dtype=torch.int64, device=device)


def _closed_form(logits, labels, similarity, flags: int, threshold: float) -> Outputs:
    check_values(labels, similarity, logits.shape[-1])
    options = SimLabelOptions.from_kernel_flags(flags, threshold)
    return (*closed_form_forward(logits, labels, similarity, options), no_errors(logits.device))


@torch.library.custom_op("simlabel::fused_forward", mutates_args=())
def fused_forward(
    logits: torch.Tensor, labels: torch.Tensor, similarity: torch.Tensor, flags: int, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
           torch.Tensor]:
    """(ce_sum, kl_sum, n_ce, n_kl, confidence [B, A], soft_argmax [B, A], impute_mask [B, A], grad [B, A, C],
    errors [2]).

    This body runs on devices without a registered kernel: the closed-form eager twin of the reference.
    """
    return _closed_form(logits, labels, similarity, flags, threshold)


@fused_forward.register_kernel("cpu")
def _cpu(logits, labels, similarity, flags, threshold) -> Outputs:
    module = _extension.compiled()
    kernel = getattr(module, "fused_loss_forward", None) if module is not None else None
    if kernel is None:
        return _closed_form(logits, labels, similarity, flags, threshold)
    check_values(labels, similarity, logits.shape[-1])
    return (*kernel(logits, labels, similarity, flags, threshold), no_errors(logits.device))


@fused_forward.register_kernel("cuda")
def _cuda(logits, labels, similarity, flags, threshold) -> Outputs:
    from ..kernels import triton_available

    if logits.dtype == torch.float64 or not triton_available():  # the Triton kernels compute in float32
        return _closed_form(logits, labels, similarity, flags, threshold)
    from ..kernels.simlabel_triton import fused_loss_forward

    return tuple(fused_loss_forward(logits, labels, similarity, flags, threshold))  # checks recorded in errors


@fused_forward.register_fake
def _(logits, labels, similarity, flags, threshold):
    B, A, C = logits.shape
    acc = accumulation_dtype(logits.dtype)
    scalar = logits.new_empty((), dtype=acc)
    count = logits.new_empty((), dtype=torch.int64)
    return (
        scalar,
        scalar.clone(),
        count,
        count.clone(),
        logits.new_empty((B, A), dtype=acc),
        logits.new_empty((B, A), dtype=torch.int64),
        logits.new_empty((B, A), dtype=torch.bool),
        logits.new_empty((B, A, C), dtype=acc),
        logits.new_empty((2,), dtype=torch.int64),
    )


def _setup_context(ctx, inputs, output):
    logits, labels = inputs[0], inputs[1]
    ctx.save_for_backward(labels, output[7])
    ctx.logits_dtype = logits.dtype
    ctx.mark_non_differentiable(*output[2:])


def _backward(ctx, g_ce, g_kl, *unused):
    labels, grad = ctx.saved_tensors
    if grad.is_cuda:
        from ..kernels import triton_available

        if triton_available():
            from ..kernels.simlabel_triton import scale_grad

            return scale_grad(grad, labels, g_ce, g_kl, ctx.logits_dtype), None, None, None, None
    scale = torch.where(labels >= 0, g_ce, g_kl).to(grad.dtype).unsqueeze(-1)
    return (grad * scale).to(ctx.logits_dtype), None, None, None, None


fused_forward.register_autograd(_backward, setup_context=_setup_context)
