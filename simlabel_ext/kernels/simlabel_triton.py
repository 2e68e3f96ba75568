"""Triton forward kernels of one SimLabel batch step (ALGORITHM.md §2–4), values and gradients in one pass.

The semantics are exactly those of :func:`simlabel_ext.ops.reference.simlabel_loss_reference` (the oracle); see
:func:`fused_loss_forward` for the contract. Like Liger-Kernel's fused cross-entropy, the forward writes the
gradient of ``ce_sum`` (observed entries) and of ``kl_sum`` (soft entries) with respect to the logits into a
``[B, A, C]`` float32 buffer, so the backward is one multiply by the incoming gradients.

Two kernel paths, chosen by size (``path="auto"``):

``small`` (``A_pad² · C_pad <= 4096``, i.e. few annotators and classes)
    one kernel, grid ``(cdiv(B, ITEMS),)``; each program holds ``ITEMS`` whole items ``[ITEMS, A_pad, C_pad]``
    in registers, mixes them with a broadcast multiply-reduce over the annotator axis (exact float32 FMAs,
    no ``tl.dot``: the tiles are smaller than the 16 that ``tl.dot`` needs) and writes every output.

``tiled`` (everything else: many annotators and/or many classes)
    kernel 1 ``_row_stats_kernel``, grid ``(cdiv(B·A, BLOCK_R),)``: per (item, annotator) row the max ``m`` and
    ``log Σ exp(x - m)`` (online over class chunks), so that ``log p = (x - m) - logs`` everywhere after;
    kernel 2 ``_tiled_kernel``, grid ``(B, cdiv(A, BLOCK_N))`` (items on axis 0: no 65,535 limit): for one item
    and one tile of BLOCK_N annotators ``n``, per chunk of BLOCK_C classes, it accumulates
    ``num[n, c] = Σ_k S[n, k] src[k, c]`` with ``tl.dot`` and the mass ``Σ_k S[n, k] K[k]`` over k-tiles of
    BLOCK_K annotators (the diagonal of S masked; ``src`` recomputed on the fly from the logits and the row stats,
    so neither ``[B, A, A]`` nor a ``src`` buffer is ever materialised; k-tiles with zero similarity mass are
    skipped, which is most of them for sparse crowds with ``contributors="labelled"``, and tiles without a
    missing entry run no k-loop at all), and evaluates CE / KL / confidence / argmax / gradient for those rows. With several class chunks the KL gradient needs a row sum
    over all classes first, so the first sweep stores the row-local part ``t`` of the gradient in the output
    buffer and a second sweep finishes it: ``grad = coef · (t - p · s)`` with a per-row scalar ``s``.

Extra memory: O(B·A) (row stats, per-program partial sums) besides the outputs; the grad output is O(B·A·C).
Sums are deterministic: each program writes its partial CE / KL sum, reduced afterwards with ``torch.sum``.
All arithmetic is float32 (float16 / bfloat16 / float64 logits are converted on load); ``tl.dot`` runs with
``input_precision="ieee"`` (TF32 would cost ~1e-3 relative accuracy of the soft labels).
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .flags import KernelFlag

#: == simlabel_ext.ops.options.LOG_Q_FLOOR; a tl.constexpr because jit code may only read constexpr globals
LOG_Q_FLOOR = tl.constexpr(1e-12)

#: Largest ``A_pad² · C_pad`` for which the single-kernel small path is chosen (the broadcast product of one
#: item has that many elements).
SMALL_PATH_LIMIT = 4096


# ----------------------------------------------------------------------------------------------------------------
# Shared per-tile math
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _chunk_terms(x, cmask, c_idx, m, logs, y, observed, q, SOFT: tl.constexpr, REVERSE: tl.constexpr):
    """Row-local terms of one [R, BC] tile of classes (a chunk of the class axis).

    x: logits (float32, anything where ~cmask); m, logs: [R] row max and log Σ exp(x - m) over ALL classes;
    y: [R] labels (-1 = missing); q: [R, BC] soft labels (0 on padded classes).
    Returns p, t (row-local part of the gradient: -onehot(y) on observed rows, p·(log p - log q) (reverse) or
    -q (forward) elsewhere) and the chunk's partial row sums: CE, KL (unweighted), Σq, Σ q log q, max q, argmax q.
    """
    logp = tl.where(cmask[None, :], (x - m[:, None]) - logs[:, None], 0.0)
    p = tl.where(cmask[None, :], tl.exp(logp), 0.0)
    onehot = (c_idx[None, :] == y[:, None]) & cmask[None, :]
    ce = -tl.sum(tl.where(onehot, logp, 0.0), axis=1)
    t_ce = -onehot.to(tl.float32)
    if SOFT:
        logq = tl.log(tl.maximum(q, LOG_Q_FLOOR))
        if REVERSE:
            t_kl = tl.where(cmask[None, :], p * (logp - logq), 0.0)
            kl = tl.sum(t_kl, axis=1)
            sq = kl  # unused: only the forward KL's gradient needs Σq
        else:
            t_kl = -q
            kl = tl.sum(tl.where(cmask[None, :], q * (logq - logp), 0.0), axis=1)
            sq = tl.sum(q, axis=1)
        qlogq = tl.sum(tl.where(cmask[None, :], q * logq, 0.0), axis=1)
        qmax, qarg = tl.max(q, axis=1, return_indices=True, return_indices_tie_break_left=True)
        t = tl.where(observed[:, None], t_ce, t_kl)
    else:
        kl = tl.zeros_like(ce)
        sq = tl.zeros_like(ce)
        qlogq = tl.zeros_like(ce)
        qmax = tl.zeros_like(ce)
        qarg = tl.zeros_like(ce).to(tl.int32)
        t = t_ce
    return p, t, ce, kl, sq, qlogq, qmax, qarg


@triton.jit
def _row_scale(observed, soft, kl, sq, mass, REVERSE: tl.constexpr, EVIDENCE: tl.constexpr):
    """Per row: s and coef of ``grad = coef · (t - p · s)``, and the KL weight w (min(1, mass) or 1)."""
    if EVIDENCE:
        w = tl.minimum(mass, 1.0)
    else:
        w = tl.zeros_like(mass) + 1.0
    if REVERSE:
        s_kl = kl
    else:
        s_kl = -sq
    s = tl.where(observed, -1.0, s_kl)
    coef = tl.where(observed, 1.0, tl.where(soft, w, 0.0))
    return s, coef, w


@triton.jit
def _finish_grad(t, p, s, coef, active):
    return tl.where(active[:, None], coef[:, None] * (t - p * s[:, None]), 0.0)


@triton.jit
def _store_rows(
    row, rmask, observed, soft, ce, kl, w, qlogq, qmax, qarg, conf_ptr, arg_ptr, imp_ptr, ce_part_ptr, kl_part_ptr,
    part_idx, threshold, log_c, SOFT: tl.constexpr, IMPUTE: tl.constexpr,
):
    tl.store(ce_part_ptr + part_idx, tl.sum(tl.where(observed & rmask, ce, 0.0), axis=0))
    if SOFT:
        tl.store(kl_part_ptr + part_idx, tl.sum(tl.where(soft, w * kl, 0.0), axis=0))
        conf = tl.where(soft, qmax * (1.0 - (-qlogq) / log_c), 0.0)
        arg = tl.where(soft, qarg.to(tl.int64), -1)
        if IMPUTE:
            imp = soft & (conf >= threshold)
        else:
            imp = soft & False
    else:
        tl.store(kl_part_ptr + part_idx, 0.0)
        conf = tl.zeros_like(ce)
        arg = tl.full(ce.shape, -1, tl.int64)
        imp = observed & False
    tl.store(conf_ptr + row, conf, mask=rmask)
    tl.store(arg_ptr + row, arg, mask=rmask)
    tl.store(imp_ptr + row, imp.to(tl.uint8), mask=rmask)


# ----------------------------------------------------------------------------------------------------------------
# Small path: whole items per program
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _small_kernel(
    logits_ptr, labels_ptr, sim_ptr, grad_ptr, conf_ptr, arg_ptr, imp_ptr, ce_part_ptr, kl_part_ptr,
    B, A, C, threshold, log_c,
    A_PAD: tl.constexpr, C_PAD: tl.constexpr, ITEMS: tl.constexpr,
    SOFT: tl.constexpr, IMPUTE: tl.constexpr, REVERSE: tl.constexpr, ALL_CONTRIB: tl.constexpr,
    LABEL_SOURCE: tl.constexpr, EVIDENCE: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    R: tl.constexpr = ITEMS * A_PAD
    r = tl.arange(0, R)
    item = pid * ITEMS + r // A_PAD
    a = r % A_PAD
    rmask = (item < B) & (a < A)
    row = item * A + a
    c = tl.arange(0, C_PAD)
    cmask = c < C
    mask = rmask[:, None] & cmask[None, :]
    x = tl.load(logits_ptr + row[:, None] * C + c[None, :], mask=mask, other=0.0).to(tl.float32)
    x = tl.where(cmask[None, :], x, float("-inf"))
    m = tl.max(x, axis=1)
    logs = tl.log(tl.sum(tl.exp(x - m[:, None]), axis=1))
    y = tl.load(labels_ptr + row, mask=rmask, other=-1)
    observed = (y >= 0) & rmask

    if SOFT:
        if ALL_CONTRIB:
            contrib = rmask
        else:
            contrib = observed
        if LABEL_SOURCE:
            src = ((c[None, :] == y[:, None]) & contrib[:, None]).to(tl.float32)
        else:
            src = tl.where(contrib[:, None] & cmask[None, :], tl.exp((x - m[:, None]) - logs[:, None]), 0.0)
        ai = tl.arange(0, A_PAD)
        smask = (ai[:, None] < A) & (ai[None, :] < A) & (ai[:, None] != ai[None, :])
        S = tl.load(sim_ptr + ai[:, None] * A + ai[None, :], mask=smask, other=0.0)
        src3 = tl.reshape(src, (ITEMS, A_PAD, C_PAD))
        num = tl.reshape(tl.sum(S[None, :, :, None] * src3[:, None, :, :], axis=2), (R, C_PAD))
        k2 = tl.reshape(contrib.to(tl.float32), (ITEMS, A_PAD))
        mass = tl.reshape(tl.sum(S[None, :, :] * k2[:, None, :], axis=2), (R,))
        soft = rmask & (y < 0) & (mass > 0)
        q = num / tl.where(mass > 0, mass, 1.0)[:, None]
    else:
        mass = tl.zeros_like(m)
        soft = observed & False
        q = tl.zeros_like(x)

    p, t, ce, kl, sq, qlogq, qmax, qarg = _chunk_terms(x, cmask, c, m, logs, y, observed, q, SOFT, REVERSE)
    s, coef, w = _row_scale(observed, soft, kl, sq, mass, REVERSE, EVIDENCE)
    grad = _finish_grad(t, p, s, coef, observed | soft)
    tl.store(grad_ptr + row[:, None] * C + c[None, :], grad, mask=mask)
    _store_rows(
        row, rmask, observed, soft, ce, kl, w, qlogq, qmax, qarg, conf_ptr, arg_ptr, imp_ptr, ce_part_ptr,
        kl_part_ptr, pid, threshold, log_c, SOFT, IMPUTE,
    )


# ----------------------------------------------------------------------------------------------------------------
# Tiled path
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _row_stats_kernel(logits_ptr, m_ptr, logs_ptr, n_rows, C, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """Per row of the flattened [B·A, C] logits: m = max_c x and logs = log Σ_c exp(x - m) (online over chunks)."""
    pid = tl.program_id(0).to(tl.int64)
    r = pid * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = r < n_rows
    m = tl.full((BLOCK_R,), float("-inf"), tl.float32)
    acc = tl.zeros((BLOCK_R,), tl.float32)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cmask = c < C
        x = tl.load(logits_ptr + r[:, None] * C + c[None, :], mask=rmask[:, None] & cmask[None, :], other=0.0)
        x = tl.where(cmask[None, :], x.to(tl.float32), float("-inf"))
        m_new = tl.maximum(m, tl.max(x, axis=1))
        acc = acc * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new[:, None]), axis=1)
        m = m_new
    tl.store(m_ptr + r, m, mask=rmask)
    tl.store(logs_ptr + r, tl.log(acc), mask=rmask)


@triton.jit
def _tiled_kernel(
    logits_ptr, labels_ptr, sim_ptr, m_ptr, logs_ptr, grad_ptr, conf_ptr, arg_ptr, imp_ptr, ce_part_ptr, kl_part_ptr,
    A, C, threshold, log_c,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr, SINGLE_CHUNK: tl.constexpr,
    SOFT: tl.constexpr, IMPUTE: tl.constexpr, REVERSE: tl.constexpr, ALL_CONTRIB: tl.constexpr,
    LABEL_SOURCE: tl.constexpr, EVIDENCE: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    pid_n = tl.program_id(1)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < A
    row = b * A + n
    y = tl.load(labels_ptr + row, mask=nmask, other=-1)
    observed = (y >= 0) & nmask
    m = tl.load(m_ptr + row, mask=nmask, other=0.0)
    logs = tl.load(logs_ptr + row, mask=nmask, other=0.0)
    kk = tl.arange(0, BLOCK_K)

    # only tiles with a missing entry need the soft labels: the k-loops of the others run 0 times
    any_missing = tl.max((nmask & (y < 0)).to(tl.int32), axis=0) > 0
    k_end = tl.where(any_missing, A, 0)
    mass = tl.zeros((BLOCK_N,), tl.float32)
    soft = observed & False
    ce = tl.zeros((BLOCK_N,), tl.float32)
    kl = tl.zeros((BLOCK_N,), tl.float32)
    sq = tl.zeros((BLOCK_N,), tl.float32)
    qlogq = tl.zeros((BLOCK_N,), tl.float32)
    qmax = tl.full((BLOCK_N,), -1.0, tl.float32)
    qarg = tl.zeros((BLOCK_N,), tl.int32)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cmask = c < C
        mask = nmask[:, None] & cmask[None, :]
        x = tl.load(logits_ptr + row[:, None] * C + c[None, :], mask=mask, other=0.0).to(tl.float32)
        acc = tl.zeros((BLOCK_N, BLOCK_C), tl.float32)
        if SOFT:
            # mass[n] = Σ_{k != n} S[n, k] K[k] (recomputed identically for every class chunk) and
            # num[n, c] = Σ_{k != n} S[n, k] src[k, c] over k-tiles
            mass = tl.zeros((BLOCK_N,), tl.float32)
            for k0 in range(0, k_end, BLOCK_K):
                k = k0 + kk
                kmask = k < A
                yk = tl.load(labels_ptr + b * A + k, mask=kmask, other=-1)
                if ALL_CONTRIB:
                    ck = kmask
                else:
                    ck = yk >= 0
                smask = nmask[:, None] & ck[None, :] & (n[:, None] != k[None, :])
                S = tl.load(sim_ptr + n[:, None] * A + k[None, :], mask=smask, other=0.0)
                w_k = tl.sum(S, axis=1)
                mass += w_k
                # skip k-tiles that carry no similarity mass (most of them in sparse crowds)
                if tl.max(w_k, axis=0) > 0:
                    if LABEL_SOURCE:
                        src = ((yk[:, None] == c[None, :]) & ck[:, None]).to(tl.float32)
                    else:
                        rk = b * A + k
                        kcm = ck[:, None] & cmask[None, :]
                        # -inf where masked: exp gives the zeros (and no overflow on padded classes)
                        xk = tl.load(logits_ptr + rk[:, None] * C + c[None, :], mask=kcm, other=float("-inf"))
                        mk = tl.load(m_ptr + rk, mask=ck, other=0.0)
                        lk = tl.load(logs_ptr + rk, mask=ck, other=0.0)
                        src = tl.exp((xk.to(tl.float32) - mk[:, None]) - lk[:, None])
                    acc = tl.dot(S, src, acc, input_precision="ieee")
            soft = nmask & (y < 0) & (mass > 0)
            q = acc / tl.where(mass > 0, mass, 1.0)[:, None]
        else:
            q = acc
        p, t, ce_c, kl_c, sq_c, qlogq_c, qmax_c, qarg_c = _chunk_terms(
            x, cmask, c, m, logs, y, observed, q, SOFT, REVERSE
        )
        ce += ce_c
        kl += kl_c
        sq += sq_c
        qlogq += qlogq_c
        better = qmax_c > qmax  # strict: the first index wins ties across chunks
        qarg = tl.where(better, qarg_c + c0, qarg)
        qmax = tl.where(better, qmax_c, qmax)
        if SINGLE_CHUNK:
            s, coef, w = _row_scale(observed, soft, kl, sq, mass, REVERSE, EVIDENCE)
            tl.store(grad_ptr + row[:, None] * C + c[None, :], _finish_grad(t, p, s, coef, observed | soft), mask=mask)
        else:
            tl.store(grad_ptr + row[:, None] * C + c[None, :], t, mask=mask)

    s, coef, w = _row_scale(observed, soft, kl, sq, mass, REVERSE, EVIDENCE)
    if not SINGLE_CHUNK:
        tl.debug_barrier()
        active = observed | soft
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            cmask = c < C
            mask = nmask[:, None] & cmask[None, :]
            ptrs = row[:, None] * C + c[None, :]
            x = tl.load(logits_ptr + ptrs, mask=mask, other=float("-inf")).to(tl.float32)
            p = tl.exp((x - m[:, None]) - logs[:, None])
            t = tl.load(grad_ptr + ptrs, mask=mask, other=0.0)
            tl.store(grad_ptr + ptrs, _finish_grad(t, p, s, coef, active), mask=mask)
    _store_rows(
        row, nmask, observed, soft, ce, kl, w, qlogq, qmax, qarg, conf_ptr, arg_ptr, imp_ptr, ce_part_ptr,
        kl_part_ptr, b * tl.num_programs(1) + pid_n, threshold, log_c, SOFT, IMPUTE,
    )


# ----------------------------------------------------------------------------------------------------------------
# Launch configuration (a small heuristic table; no autotuning so that interpreter runs stay fast)
# ----------------------------------------------------------------------------------------------------------------
def _pow2(v: int) -> int:
    return triton.next_power_of_2(max(int(v), 1))


def small_config(A: int, C: int, soft: bool) -> dict:
    """ITEMS per program for the small path: ~4096 elements per [ITEMS·A_pad, C_pad] tile and ~8192 in the
    broadcast product [ITEMS, A_pad, A_pad, C_pad]; num_warps 4 (2 for tiny tiles)."""
    a_pad, c_pad = _pow2(A), _pow2(C)
    limit = min(64, 4096 // (a_pad * c_pad))
    if soft:
        limit = min(limit, 8192 // (a_pad * a_pad * c_pad))
    items = 1
    while items * 2 <= limit:
        items *= 2
    elems = items * a_pad * c_pad
    return dict(A_PAD=a_pad, C_PAD=c_pad, ITEMS=items, num_warps=4 if elems >= 1024 else 2)


def tiled_config(A: int, C: int) -> dict:
    """| A     | BLOCK_N | BLOCK_K | C_pad = max(16, next_pow2(C)) | BLOCK_C                  | num_warps               |
       | <= 16 | 16      | 16      | <= 64                         | C_pad (one class chunk)  | 4, or 8 if BLOCK_N·BLOCK_C >= 512 |
       | >  16 | 32      | 16      | >  64                         | 64 (chunked, two sweeps) |                         |

    Every block is >= 16 (tl.dot). float32 ``tl.dot`` with ``input_precision="ieee"`` lowers to FMAs with the
    whole BLOCK_K slice of each operand row in registers, so BLOCK_K stays 16: with BLOCK_N = BLOCK_K = 64 ptxas
    (sm_90) spilled ~5 KB per thread, while every entry of this table compiles without spills (ptxas -v, sm_90a,
    104–250 registers)."""
    bn = 16 if A <= 16 else 32
    bc = min(max(16, _pow2(C)), 64)
    return dict(BLOCK_N=bn, BLOCK_K=16, BLOCK_C=bc, num_warps=8 if bn * bc >= 512 else 4)


def choose_path(A: int, C: int) -> str:
    return "small" if _pow2(A) ** 2 * _pow2(C) <= SMALL_PATH_LIMIT else "tiled"


# ----------------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------------
def fused_loss_forward(
    logits: torch.Tensor,
    labels: torch.Tensor,
    similarity: torch.Tensor,
    flags: int,
    threshold: float,
    *,
    path: str = "auto",
    block_n: int | None = None,
    block_k: int | None = None,
    block_c: int | None = None,
    items_per_program: int | None = None,
):
    """One SimLabel batch step: values and d(ce_sum)/d logits, d(kl_sum)/d logits in one pass.

    logits [B, A, C] float16/bfloat16/float32/float64 (computed in float32), labels [B, A] int64 in -1..C-1,
    similarity [A, A] float32 (finite, >= 0, diagonal ignored). ``flags``: the options' switches
    (:class:`~simlabel_ext.ops.options.KernelFlag`, from ``SimLabelOptions.kernel_flags``); ``threshold``:
    impute where confidence >= threshold.

    Returns ``(ce_sum[] f32, kl_sum[] f32, n_ce[] int64, n_kl[] int64, confidence[B, A] f32,
    soft_argmax[B, A] int64, impute_mask[B, A] bool, grad[B, A, C] f32)`` where ``grad`` holds
    d ce_sum / d logits on observed entries, d kl_sum / d logits on soft entries and 0 elsewhere (the soft labels
    are gradient-stopped). Values are inputs validated by the caller (``check_inputs``); nothing here reads them
    back to the host.

    Keyword-only knobs (tests / tuning): ``path`` "auto" | "small" | "tiled"; ``block_n`` / ``block_k`` /
    ``block_c`` (tiled path, powers of two >= 16); ``items_per_program`` (small path, a power of two).
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape [B, A, C]; got {tuple(logits.shape)}")
    B, A, C = logits.shape
    if tuple(labels.shape) != (B, A) or tuple(similarity.shape) != (A, A):
        raise ValueError("labels must be [B, A] and similarity [A, A]")
    flags = KernelFlag(flags)
    if KernelFlag.LABEL_SOURCE in flags and KernelFlag.ALL_CONTRIBUTORS in flags:
        raise ValueError("the LABEL_SOURCE flag needs ALL_CONTRIBUTORS off")
    if path not in ("auto", "small", "tiled"):
        raise ValueError(f"path={path!r} is not one of 'auto', 'small', 'tiled'")
    device = logits.device
    logits = logits.contiguous()
    labels = labels.to(torch.int64).contiguous()
    similarity = similarity.to(device=device, dtype=torch.float32).contiguous()

    # every entry of these is written by the kernels (no memset)
    grad = torch.empty((B, A, C), dtype=torch.float32, device=device)
    confidence = torch.empty((B, A), dtype=torch.float32, device=device)
    soft_argmax = torch.empty((B, A), dtype=torch.int64, device=device)
    impute_u8 = torch.empty((B, A), dtype=torch.uint8, device=device)
    if B * A == 0:
        zf = torch.zeros((), dtype=torch.float32, device=device)
        zi = torch.zeros((), dtype=torch.int64, device=device)
        return zf, zf.clone(), zi, zi.clone(), confidence, soft_argmax, impute_u8.view(torch.bool), grad

    soft = KernelFlag.SOFT in flags
    switches = dict(
        SOFT=soft,
        IMPUTE=KernelFlag.IMPUTE in flags and soft,
        REVERSE=KernelFlag.REVERSE_KL in flags,
        ALL_CONTRIB=KernelFlag.ALL_CONTRIBUTORS in flags,
        LABEL_SOURCE=KernelFlag.LABEL_SOURCE in flags,
        EVIDENCE=KernelFlag.EVIDENCE_WEIGHT in flags,
    )
    threshold = float(threshold)
    log_c = math.log(C)
    if path == "auto":
        path = choose_path(A, C)

    if path == "small":
        cfg = small_config(A, C, soft)
        if items_per_program is not None:
            cfg["ITEMS"] = int(items_per_program)
            if cfg["ITEMS"] < 1 or cfg["ITEMS"] & (cfg["ITEMS"] - 1):
                raise ValueError(f"items_per_program={items_per_program} must be a power of two")
        n_prog = triton.cdiv(B, cfg["ITEMS"])
        ce_part = torch.empty(n_prog, dtype=torch.float32, device=device)
        kl_part = torch.empty(n_prog, dtype=torch.float32, device=device)
        _small_kernel[(n_prog,)](
            logits, labels, similarity, grad, confidence, soft_argmax, impute_u8, ce_part, kl_part,
            B, A, C, threshold, log_c, **cfg, **switches,
        )
    else:
        cfg = tiled_config(A, C)
        if block_n is not None:
            cfg["BLOCK_N"] = int(block_n)
        if block_k is not None:
            cfg["BLOCK_K"] = int(block_k)
        if block_c is not None:
            cfg["BLOCK_C"] = int(block_c)
        for key in ("BLOCK_N", "BLOCK_K", "BLOCK_C"):
            v = cfg[key]
            if v < 16 or v & (v - 1):
                raise ValueError(f"{key}={v} must be a power of two >= 16 (tl.dot tiles)")
        n_rows = B * A
        row_m = torch.empty(n_rows, dtype=torch.float32, device=device)
        row_logs = torch.empty(n_rows, dtype=torch.float32, device=device)
        stats_bc = min(max(16, _pow2(C)), 256)
        stats_br = max(1, min(128, 4096 // stats_bc))
        _row_stats_kernel[(triton.cdiv(n_rows, stats_br),)](
            logits, row_m, row_logs, n_rows, C, BLOCK_R=stats_br, BLOCK_C=stats_bc, num_warps=4
        )
        n_tiles = triton.cdiv(A, cfg["BLOCK_N"])
        ce_part = torch.empty(B * n_tiles, dtype=torch.float32, device=device)
        kl_part = torch.empty(B * n_tiles, dtype=torch.float32, device=device)
        _tiled_kernel[(B, n_tiles)](
            logits, labels, similarity, row_m, row_logs, grad, confidence, soft_argmax, impute_u8, ce_part, kl_part,
            A, C, threshold, log_c, SINGLE_CHUNK=C <= cfg["BLOCK_C"], **cfg, **switches,
        )

    observed = labels >= 0
    ce_sum = ce_part.sum()
    kl_sum = kl_part.sum()
    n_ce = observed.sum()
    n_kl = (soft_argmax >= 0).sum()
    return ce_sum, kl_sum, n_ce, n_kl, confidence, soft_argmax, impute_u8.view(torch.bool), grad
