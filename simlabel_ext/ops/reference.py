"""Readable pure-PyTorch SimLabel math (ALGORITHM.md §2–4): the oracle of the fused kernels and their fallback.

Shapes: B items in the batch, A annotators, C classes. ``logits [B, A, C]``, ``labels [B, A]`` (int, -1 =
missing), ``similarity [A, A]`` (S, >= 0; its diagonal is ignored). Everything is computed in log space in
float32 (float64 for float64 logits); gradients flow through ``logits`` only — the soft labels are built from
gradient-stopped predictions.

- :func:`simlabel_loss_reference`: one step with autograd (the oracle of every kernel);
- :func:`closed_form_forward`: the same step with the gradients in closed form, in the shape of the fused op's
  outputs (the op's implementation on devices without a kernel), which the tests hold against the oracle.
"""
from __future__ import annotations

import math

import torch

from ..kernels.flags import NO_ERROR
from .options import LOG_Q_FLOOR, SimLabelOptions, SimLabelOutput, combine_loss
from .validation import check_inputs


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; float16/bfloat16/float32 accumulate in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def soft_labels(
    probs: torch.Tensor,
    labels: torch.Tensor,
    similarity: torch.Tensor,
    *,
    contributors: str = "labelled",
    soft_source: str = "predictions",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarity-weighted soft labels for every entry, with two batched matrix products (ALGORITHM.md §2).

    probs [B, A, C] (no gradient is taken through them), labels [B, A], similarity [A, A].
    Returns ``q [B, A, C]`` (each row sums to 1 where ``mass > 0``, zeros elsewhere) and ``mass [B, A]``, the
    unnormalised similarity mass ``Σ_k S[n, k] K[i, k]`` over the contributors k ≠ n.
    """
    num_classes = probs.shape[-1]
    weights = similarity.to(probs.dtype).clone()
    weights.fill_diagonal_(0)
    observed = labels >= 0
    contributing = observed if contributors == "labelled" else torch.ones_like(observed)
    if soft_source == "labels":
        source = torch.nn.functional.one_hot(labels.clamp(min=0).long(), num_classes).to(probs.dtype)
    else:
        source = probs.detach()
    source = source * contributing.unsqueeze(-1)
    numerator = torch.einsum("nk,bkc->bnc", weights, source)
    mass = torch.einsum("nk,bk->bn", weights, contributing.to(probs.dtype))
    q = numerator / torch.where(mass > 0, mass, torch.ones_like(mass)).unsqueeze(-1)
    return q, mass


def confidence(q: torch.Tensor) -> torch.Tensor:
    """``max_c q_c · (1 − H(q) / log C)`` with 0 log 0 = 0 (ALGORITHM.md §4). q [..., C] → [...]."""
    log_q = q.clamp(min=LOG_Q_FLOOR).log()
    entropy = -(q * log_q).sum(-1)
    return q.amax(-1) * (1.0 - entropy / math.log(q.shape[-1]))


def entry_kl(log_p: torch.Tensor, q: torch.Tensor, mass: torch.Tensor, options: SimLabelOptions) -> torch.Tensor:
    """The KL term of every entry [B, A], differentiable w.r.t. ``log_p [B, A, C]`` (log-probabilities): between
    the model and the soft label ``q [B, A, C]`` in ``options.kl_direction``, scaled by the similarity ``mass
    [B, A]`` (capped at 1) under ``kl_weight="evidence"``. Entries that are not soft are the caller's to mask."""
    log_q = q.clamp(min=LOG_Q_FLOOR).log()
    if options.kl_direction == "reverse":
        kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    else:
        kl = (q * (log_q - log_p)).sum(-1)
    if options.kl_weight == "evidence":
        kl = kl * mass.clamp(max=1.0)
    return kl


def closed_form_forward(
    logits: torch.Tensor, labels: torch.Tensor, similarity: torch.Tensor, options: SimLabelOptions
) -> tuple[torch.Tensor, ...]:
    """The fused op's eight outputs ``(ce_sum, kl_sum, n_ce, n_kl, confidence, soft_argmax, impute_mask, grad)``
    in eager PyTorch, with the gradient buffer in closed form (inputs already checked).

    The same formulas as :func:`simlabel_loss_reference`, whose autograd gradients the tests compare against:
    CE rows ``p − onehot(y)``; reverse KL rows ``w · p ⊙ (log p − log q − KL)``; forward KL rows
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
    if options.uses_soft_labels:
        q, mass = soft_labels(p, labels, similarity, contributors=options.contributors,
                              soft_source=options.soft_source)
        is_soft = ~observed & (mass > 0)
        log_q = q.clamp(min=LOG_Q_FLOOR).log()
        weight = mass.clamp(max=1.0) if options.kl_weight == "evidence" else torch.ones_like(mass)
        if options.kl_direction == "reverse":
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
        if options.imputes:
            impute_mask = is_soft & (conf >= options.threshold)
    return ce_sum, kl_sum, observed.sum(), n_kl, conf, argmax, impute_mask, grad


def simlabel_loss_reference(
    logits: torch.Tensor,
    labels: torch.Tensor,
    similarity: torch.Tensor,
    options: SimLabelOptions | None = None,
    *,
    source_probs: torch.Tensor | None = None,
) -> SimLabelOutput:
    """One SimLabel batch step in eager PyTorch; differentiable w.r.t. ``logits``. See :class:`SimLabelOutput`.

    ``source_probs [B, A, C]``: the contributors' distributions for ``soft_source="predictions"``; default
    ``softmax(logits)`` with the gradient stopped. Passing a fixed tensor makes the stop-gradient explicit, which
    is what a finite-difference check of the gradient needs.
    """
    options = options or SimLabelOptions()
    check_inputs(logits, labels, similarity)
    dtype = accumulation_dtype(logits.dtype)
    log_p = torch.log_softmax(logits.to(dtype), dim=-1)
    observed = labels >= 0

    target = labels.clamp(min=0).long().unsqueeze(-1)
    ce = -log_p.gather(-1, target).squeeze(-1)
    ce_sum = torch.where(observed, ce, torch.zeros_like(ce)).sum()
    n_ce = observed.sum()

    B, A, C = logits.shape
    zero = log_p.new_zeros(())
    conf = log_p.new_zeros(B, A)
    argmax = torch.full((B, A), -1, dtype=torch.int64, device=logits.device)
    impute = torch.zeros(B, A, dtype=torch.bool, device=logits.device)
    if not options.uses_soft_labels:
        kl_sum, n_kl = zero, torch.zeros((), dtype=torch.int64, device=logits.device)
    else:
        if source_probs is None:
            source_probs = log_p.exp()
        q, mass = soft_labels(
            source_probs.to(dtype), labels, similarity, contributors=options.contributors, soft_source=options.soft_source
        )
        soft = ~observed & (mass > 0)
        kl = entry_kl(log_p, q, mass, options)
        kl_sum = torch.where(soft, kl, torch.zeros_like(kl)).sum()
        n_kl = soft.sum()
        conf = torch.where(soft, confidence(q), conf)
        argmax = torch.where(soft, q.argmax(-1), argmax)
        if options.imputes:
            impute = soft & (conf >= options.threshold)
    loss = combine_loss(ce_sum, kl_sum, n_ce, n_kl, options)
    errors = torch.full((2,), NO_ERROR, dtype=torch.int64, device=logits.device)  # check_inputs raised instead
    return SimLabelOutput(loss, ce_sum, kl_sum, n_ce, n_kl, conf, argmax, impute, errors)
