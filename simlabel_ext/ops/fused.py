"""The fused SimLabel op ``simlabel::fused_forward``, registered once with ``torch.library``.

One forward pass per device computes the loss parts, the per-entry confidence / soft-label argmax / impute mask
and the gradient buffer ``grad [B, A, C]`` (Liger-Kernel style: the gradient of ``ce_sum`` on observed entries
and of ``kl_sum`` on soft entries; the two sets are disjoint). Backward is then one elementwise product:
``d logits = grad · (g_ce where observed else g_kl)``. Kernels, by device:

- CPU: the C++ kernel ``simlabel_ext._C.fused_loss_forward`` (``csrc/simlabel_loss``);
- CUDA: the Triton kernels of :mod:`simlabel_ext.kernels.simlabel_triton` (float16/bfloat16/float32 logits);
- anything else, or when those are unavailable: the pure-PyTorch reference (:mod:`.reference`), which gives the
  same outputs.

The op has a fake (meta) implementation and its autograd formula registered, so it runs under
``torch.compile(fullgraph=True)``. Value checks (label range, similarity finite and >= 0) run inside the op.
"""
from __future__ import annotations

import torch

from .. import _extension
from .options import LOG_Q_FLOOR
from .reference import accumulation_dtype, confidence, soft_labels
from .validation import check_values

Outputs = tuple[torch.Tensor, ...]


def reference_forward(
    logits, labels, similarity, soft, impute, threshold, reverse_kl, all_contributors, label_source, evidence_weight
) -> Outputs:
    """The op's eight outputs in eager PyTorch, with the closed-form gradients (the fallback of every device).

    Same formulas as :func:`.reference.simlabel_loss_reference`, whose autograd gradients the tests compare
    against: CE rows ``p − onehot(y)``; reverse KL rows ``w · p ⊙ (log p − log q − KL)``; forward KL rows
    ``w · (p Σq − q)``, with w the evidence weight (or 1).
    """
    dtype = accumulation_dtype(logits.dtype)
    log_p = torch.log_softmax(logits.to(dtype), dim=-1)
    p = log_p.exp()
    observed = labels >= 0
    onehot = torch.nn.functional.one_hot(labels.clamp(min=0), logits.shape[-1]).to(dtype)
    ce = -(log_p * onehot).sum(-1)
    zero = torch.zeros((), dtype=dtype, device=logits.device)
    ce_sum = torch.where(observed, ce, zero).sum()
    grad = torch.where(observed.unsqueeze(-1), p - onehot, zero)

    B, A, _ = logits.shape
    kl_sum, n_kl = zero, torch.zeros((), dtype=torch.int64, device=logits.device)
    conf = torch.zeros(B, A, dtype=dtype, device=logits.device)
    argmax = torch.full((B, A), -1, dtype=torch.int64, device=logits.device)
    impute_mask = torch.zeros(B, A, dtype=torch.bool, device=logits.device)
    if soft:
        q, mass = soft_labels(
            p,
            labels,
            similarity,
            contributors="all" if all_contributors else "labelled",
            soft_source="labels" if label_source else "predictions",
        )
        is_soft = ~observed & (mass > 0)
        log_q = q.clamp(min=LOG_Q_FLOOR).log()
        weight = mass.clamp(max=1.0) if evidence_weight else torch.ones_like(mass)
        if reverse_kl:
            kl = (p * (log_p - log_q)).sum(-1)
            kl_grad = p * (log_p - log_q - kl.unsqueeze(-1))
        else:
            kl = (q * (log_q - log_p)).sum(-1)
            kl_grad = p * q.sum(-1, keepdim=True) - q
        kl_sum = torch.where(is_soft, weight * kl, zero).sum()
        n_kl = is_soft.sum()
        grad = torch.where(is_soft.unsqueeze(-1), weight.unsqueeze(-1) * kl_grad, grad)
        conf = torch.where(is_soft, confidence(q), conf)
        argmax = torch.where(is_soft, q.argmax(-1), argmax)
        if impute:
            impute_mask = is_soft & (conf >= threshold)
    return ce_sum, kl_sum, observed.sum(), n_kl, conf, argmax, impute_mask, grad


def _cpu_kernel():
    module = _extension.compiled()
    return getattr(module, "fused_loss_forward", None) if module is not None else None


def _cuda_kernel():
    from ..kernels import triton_available

    if not triton_available():
        return None
    from ..kernels.simlabel_triton import fused_loss_forward

    return fused_loss_forward


@torch.library.custom_op("simlabel::fused_forward", mutates_args=())
def fused_forward(
    logits: torch.Tensor,
    labels: torch.Tensor,
    similarity: torch.Tensor,
    soft: bool,
    impute: bool,
    threshold: float,
    reverse_kl: bool,
    all_contributors: bool,
    label_source: bool,
    evidence_weight: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ce_sum, kl_sum, n_ce, n_kl, confidence [B, A], soft_argmax [B, A], impute_mask [B, A], grad [B, A, C])."""
    check_values(labels, similarity, logits.shape[-1])
    flags = (soft, impute, threshold, reverse_kl, all_contributors, label_source, evidence_weight)
    kernel = {"cpu": _cpu_kernel, "cuda": _cuda_kernel}.get(logits.device.type, lambda: None)()
    if logits.device.type == "cuda" and logits.dtype == torch.float64:
        kernel = None  # the Triton kernels compute in float32; float64 keeps its precision through the reference
    if kernel is None:
        return reference_forward(logits, labels, similarity, *flags)
    return tuple(kernel(logits, labels, similarity, *flags))


@fused_forward.register_fake
def _(logits, labels, similarity, *flags):
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
    )


def _setup_context(ctx, inputs, output):
    logits, labels = inputs[0], inputs[1]
    ctx.save_for_backward(labels, output[7])
    ctx.logits_dtype = logits.dtype
    ctx.mark_non_differentiable(*output[2:])


def _backward(ctx, g_ce, g_kl, *unused):
    labels, grad = ctx.saved_tensors
    scale = torch.where(labels >= 0, g_ce, g_kl).to(grad.dtype).unsqueeze(-1)
    return (grad * scale).to(ctx.logits_dtype), None, None, None, None, None, None, None, None, None


fused_forward.register_autograd(_backward, setup_context=_setup_context)
