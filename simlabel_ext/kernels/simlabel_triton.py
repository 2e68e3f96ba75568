"""Triton kernels of one SimLabel batch step (ALGORITHM.md §2–4): values and gradients in one pass, no host sync.

The semantics are exactly those of :func:`simlabel_ext.ops.reference.simlabel_loss_reference` (the oracle); see
:func:`fused_loss_forward` for the contract. Like Liger-Kernel's fused cross-entropy, the forward writes the
gradient of ``ce_sum`` (observed entries) and of ``kl_sum`` (soft entries) with respect to the logits into a
``[B, A, C]`` float32 buffer, so the backward is one kernel that scales it (:func:`scale_grad`).

Three paths, chosen by size and options (``path="auto"``, :func:`choose_path`):

``grouped`` (A_pad <= 128 with A_pad · C_pad <= 1024 or C_pad = 16: music_genre, the paper's sets, (8192, 64, 16))
    persistent programs, a few per SM, each looping over the items pid, pid + P, ... (``tl.range`` with two
    stages, so the next item's loads overlap the current math); an item is mixed whole, ``S @ src`` in unrolled
    k-slices of 16 contributors whose slices of S (shared by every item) and logits (just loaded) come from L1.
``sparse`` (larger A with ``contributors="labelled"``: hundreds to thousands of annotators, a few dozen labels per
    item) a prepare kernel builds, per item on the device, the compact list of its labelled annotators; the main
    kernel, grid ``(B, cdiv(A, BLOCK_N))``, mixes each tile of annotators over that list only, in k-tiles of
    BLOCK_K contributors, reading S transposed (a contributor's row of S^T is contiguous). No dense sweep over A.
``tiled`` (larger A with ``contributors="all"``) the same kernel sweeping every k-tile of A.

Classes beyond one chunk (C > BLOCK_C) take a row-statistics kernel first and a second sweep that finishes the
gradient; with one chunk the softmax statistics are computed in place. The loss sums and counts are per-program
partials reduced by one small kernel in a fixed order (deterministic, finished on the device). Input errors never
synchronise: the kernels record the first out-of-range label and the first similarity that is not finite and
>= 0 (row-major flat indices, ``atomic_min``) in an ``errors`` word that the caller reads when it next reads the
host anyway (:func:`simlabel_ext.ops.validation.check_errors`).

All arithmetic is float32 (float16 / bfloat16 / float64 logits are converted on load); ``tl.dot`` runs with
``input_precision="ieee"`` (TF32 would cost ~1e-3 relative accuracy of the soft labels), and the similarity mass
and its ``> 0`` test are plain float32 sums.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .flags import NO_ERROR, KernelFlag

#: == simlabel_ext.ops.options.LOG_Q_FLOOR; a tl.constexpr because jit code may only read constexpr globals
LOG_Q_FLOOR = tl.constexpr(1e-12)
_NO_ERROR = tl.constexpr(NO_ERROR)
#: The grouped path holds [A_pad, C_pad] tiles of one item in registers: at most 128 annotators, and at most 1024
#: entries per tile unless C_pad = 16 (every such configuration compiles for sm_90 without spills).
GROUPED_MAX_A = 128
GROUPED_MAX_TILE = 1024
#: Persistent programs per SM of the grouped path (on the interpreter: a fixed small grid).
PROGRAMS_PER_SM = 4


# ----------------------------------------------------------------------------------------------------------------
# Shared per-tile math
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _record_bad_labels(y, row, rmask, C, err_ptr):
    """atomic_min of the flat index of the first label outside -1..C-1 of this tile into errors[0]."""
    bad = rmask & ((y < -1) | (y >= C))
    first = tl.min(tl.where(bad, row, _NO_ERROR))
    if first < _NO_ERROR:
        tl.atomic_min(err_ptr, first)


@triton.jit
def _record_bad_similarity(s, flat, smask, err_ptr):
    """atomic_min of the flat index of the first entry that is not finite and >= 0 into errors[1]."""
    bad = smask & ((s != s) | (s < 0) | (s == float("inf")))
    first = tl.min(tl.where(bad, flat, _NO_ERROR))  # over every axis of the tile
    if first < _NO_ERROR:
        tl.atomic_min(err_ptr + 1, first)


@triton.jit
def _softmax_stats(x):
    """Row max and log Σ exp(x - max) of a [R, BC] tile that holds the whole class axis (-inf on padding)."""
    m = tl.max(x, axis=1)
    m = tl.where(m == float("-inf"), 0.0, m)  # an all-padding row gets m = logs = 0, so exp(x - m - logs) = 0
    total = tl.sum(tl.exp(x - m[:, None]), axis=1)
    return m, tl.log(tl.where(total > 0, total, 1.0))


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
    row, rmask, observed, soft, ce, kl, w, qlogq, qmax, qarg, conf_ptr, arg_ptr, imp_ptr, threshold, log_c,
    SOFT: tl.constexpr, IMPUTE: tl.constexpr,
):
    """Write confidence, soft argmax and impute mask of the rows; return the tile's (CE sum, weighted KL sum,
    observed count, soft count)."""
    ce_sum = tl.sum(tl.where(observed & rmask, ce, 0.0), axis=0)
    n_ce = tl.sum((observed & rmask).to(tl.int32), axis=0)
    if SOFT:
        kl_sum = tl.sum(tl.where(soft, w * kl, 0.0), axis=0)
        n_kl = tl.sum(soft.to(tl.int32), axis=0)
        conf = tl.where(soft, qmax * (1.0 - (-qlogq) / log_c), 0.0)
        arg = tl.where(soft, qarg.to(tl.int64), -1)
        if IMPUTE:
            imp = soft & (conf >= threshold)
        else:
            imp = soft & False
    else:
        kl_sum = tl.sum(tl.zeros_like(ce), axis=0)
        n_kl = tl.sum(tl.zeros_like(ce).to(tl.int32), axis=0)
        conf = tl.zeros_like(ce)
        arg = tl.full(ce.shape, -1, tl.int64)
        imp = observed & False
    tl.store(conf_ptr + row, conf, mask=rmask)
    tl.store(arg_ptr + row, arg, mask=rmask)
    tl.store(imp_ptr + row, imp.to(tl.uint8), mask=rmask)
    return ce_sum, kl_sum, n_ce, n_kl


@triton.jit
def _store_parts(part_f_ptr, part_i_ptr, idx, ce_sum, kl_sum, n_ce, n_kl):
    tl.store(part_f_ptr + 2 * idx, ce_sum)
    tl.store(part_f_ptr + 2 * idx + 1, kl_sum)
    tl.store(part_i_ptr + 2 * idx, n_ce.to(tl.int64))
    tl.store(part_i_ptr + 2 * idx + 1, n_kl.to(tl.int64))


@triton.jit
def _sum_parts_kernel(part_f_ptr, part_i_ptr, n_parts, ce_ptr, kl_ptr, nce_ptr, nkl_ptr, BLOCK: tl.constexpr):
    """One program: the loss sums (float64 accumulation, stored float32) and counts over every partial, in a
    fixed order (deterministic)."""
    i = tl.arange(0, BLOCK)
    ce = tl.zeros((BLOCK,), tl.float64)
    kl = tl.zeros((BLOCK,), tl.float64)
    nce = tl.zeros((BLOCK,), tl.int64)
    nkl = tl.zeros((BLOCK,), tl.int64)
    for p0 in range(0, n_parts, BLOCK):
        p = p0 + i
        pm = p < n_parts
        ce += tl.load(part_f_ptr + 2 * p, mask=pm, other=0.0).to(tl.float64)
        kl += tl.load(part_f_ptr + 2 * p + 1, mask=pm, other=0.0).to(tl.float64)
        nce += tl.load(part_i_ptr + 2 * p, mask=pm, other=0)
        nkl += tl.load(part_i_ptr + 2 * p + 1, mask=pm, other=0)
    tl.store(ce_ptr, tl.sum(ce, axis=0).to(tl.float32))
    tl.store(kl_ptr, tl.sum(kl, axis=0).to(tl.float32))
    tl.store(nce_ptr, tl.sum(nce, axis=0))
    tl.store(nkl_ptr, tl.sum(nkl, axis=0))


# ----------------------------------------------------------------------------------------------------------------
# Grouped path: persistent programs over whole items
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _grouped_kernel(
    logits_ptr, labels_ptr, sim_ptr, grad_ptr, conf_ptr, arg_ptr, imp_ptr, part_f_ptr, part_i_ptr, err_ptr,
    B, A, C, threshold, log_c,
    A_PAD: tl.constexpr, C_PAD: tl.constexpr, BLOCK_K: tl.constexpr,
    SOFT: tl.constexpr, IMPUTE: tl.constexpr, REVERSE: tl.constexpr, ALL_CONTRIB: tl.constexpr,
    LABEL_SOURCE: tl.constexpr, EVIDENCE: tl.constexpr,
):
    """Persistent programs: program pid handles items pid, pid + P, ... whole (all A annotators at once). Per
    item, num = S @ src and mass = S @ K in unrolled k-slices of BLOCK_K contributors (the slices of S and the
    contributors' logits come from L1: the item's rows were just loaded and S is shared by every item)."""
    pid = tl.program_id(0)
    n_prog = tl.num_programs(0)
    a = tl.arange(0, A_PAD)
    amask = a < A
    c = tl.arange(0, C_PAD)
    cmask = c < C
    mask = amask[:, None] & cmask[None, :]
    if pid == 0:  # S is checked once (the programs share it)
        sflat = a[:, None].to(tl.int64) * A + a[None, :]
        inside = amask[:, None] & amask[None, :]
        _record_bad_similarity(tl.load(sim_ptr + sflat, mask=inside, other=0.0), sflat, inside, err_ptr)
    a64 = a.to(tl.int64)
    kk = tl.arange(0, BLOCK_K)
    ce_acc = tl.sum(tl.zeros((A_PAD,), tl.float32), axis=0)
    kl_acc = tl.sum(tl.zeros((A_PAD,), tl.float32), axis=0)
    nce_acc = tl.sum(tl.zeros((A_PAD,), tl.int32), axis=0)
    nkl_acc = tl.sum(tl.zeros((A_PAD,), tl.int32), axis=0)
    for b in tl.range(pid, B, n_prog, num_stages=2):
        item = b * A
        row = item + a64
        x = tl.load(logits_ptr + row[:, None] * C + c[None, :], mask=mask, other=0.0).to(tl.float32)
        x = tl.where(cmask[None, :], x, float("-inf"))
        y = tl.load(labels_ptr + row, mask=amask, other=-1)
        _record_bad_labels(y, row, amask, C, err_ptr)
        m, logs = _softmax_stats(x)
        observed = (y >= 0) & amask
        if SOFT:
            acc = tl.zeros((A_PAD, C_PAD), tl.float32)
            mass = tl.zeros((A_PAD,), tl.float32)
            for k0 in tl.static_range(0, A_PAD, BLOCK_K):
                k = k0 + kk
                kmask = k < A
                yk = tl.load(labels_ptr + item + k, mask=kmask, other=-1)
                if ALL_CONTRIB:
                    ck = kmask
                else:
                    ck = yk >= 0
                keep = amask[:, None] & ck[None, :] & (a[:, None] != k[None, :])
                S = tl.load(sim_ptr + a[:, None].to(tl.int64) * A + k[None, :], mask=keep, other=0.0)
                mass += tl.sum(S, axis=1)
                if LABEL_SOURCE:
                    src = ((yk[:, None] == c[None, :]) & ck[:, None]).to(tl.float32)
                else:
                    xk = tl.load(logits_ptr + (item + k)[:, None] * C + c[None, :], mask=ck[:, None] & cmask[None, :],
                                 other=float("-inf")).to(tl.float32)
                    mk, lk = _softmax_stats(xk)
                    src = tl.exp((xk - mk[:, None]) - lk[:, None])
                acc = tl.dot(S, src, acc, input_precision="ieee")
            soft = amask & (y < 0) & (mass > 0)
            q = acc / tl.where(mass > 0, mass, 1.0)[:, None]
        else:
            mass = tl.zeros_like(m)
            soft = observed & False
            q = tl.zeros_like(x)
        p, t, ce, kl, sq, qlogq, qmax, qarg = _chunk_terms(x, cmask, c, m, logs, y, observed, q, SOFT, REVERSE)
        s, coef, w = _row_scale(observed, soft, kl, sq, mass, REVERSE, EVIDENCE)
        tl.store(grad_ptr + row[:, None] * C + c[None, :], _finish_grad(t, p, s, coef, observed | soft), mask=mask)
        ce_b, kl_b, nce_b, nkl_b = _store_rows(row, amask, observed, soft, ce, kl, w, qlogq, qmax, qarg, conf_ptr,
                                               arg_ptr, imp_ptr, threshold, log_c, SOFT, IMPUTE)
        ce_acc += ce_b
        kl_acc += kl_b
        nce_acc += nce_b
        nkl_acc += nkl_b
    _store_parts(part_f_ptr, part_i_ptr, pid, ce_acc, kl_acc, nce_acc, nkl_acc)


# ----------------------------------------------------------------------------------------------------------------
# Sparse and tiled paths: (item, annotator tile) programs
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _prepare_kernel(
    labels_ptr, sim_ptr, list_ptr, count_ptr, err_ptr, A, C, BLOCK_A: tl.constexpr, COMPACT: tl.constexpr,
):
    """Per item b (grid (B,)): check its labels; with COMPACT, write the annotators that labelled it, in order,
    to list[b, :count[b]]. The programs together check every entry of S (rows b, b + B, ...)."""
    b = tl.program_id(0).to(tl.int64)
    base = tl.sum(tl.zeros((BLOCK_A,), tl.int32), axis=0)
    for a0 in range(0, A, BLOCK_A):
        a = a0 + tl.arange(0, BLOCK_A)
        amask = a < A
        row = b * A + a
        y = tl.load(labels_ptr + row, mask=amask, other=-1)
        _record_bad_labels(y, row, amask, C, err_ptr)
        if COMPACT:
            labelled = (amask & (y >= 0)).to(tl.int32)
            position = base + tl.cumsum(labelled, axis=0) - 1
            tl.store(list_ptr + b * A + position, a.to(tl.int32), mask=labelled > 0)
            base += tl.sum(labelled, axis=0)
    if COMPACT:
        tl.store(count_ptr + b, base)
    for r in range(tl.program_id(0), A, tl.num_programs(0)):
        for k0 in range(0, A, BLOCK_A):
            k = k0 + tl.arange(0, BLOCK_A).to(tl.int64)
            kmask = k < A
            flat = r * A + k
            _record_bad_similarity(tl.load(sim_ptr + flat, mask=kmask, other=0.0), flat, kmask, err_ptr)


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
    logits_ptr, labels_ptr, sim_ptr, simt_ptr, list_ptr, count_ptr, m_ptr, logs_ptr, grad_ptr, conf_ptr, arg_ptr,
    imp_ptr, part_f_ptr, part_i_ptr,
    A, C, threshold, log_c,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr, SINGLE_CHUNK: tl.constexpr,
    SPARSE: tl.constexpr,
    SOFT: tl.constexpr, IMPUTE: tl.constexpr, REVERSE: tl.constexpr, ALL_CONTRIB: tl.constexpr,
    LABEL_SOURCE: tl.constexpr, EVIDENCE: tl.constexpr,
):
    """One item b and one tile of BLOCK_N annotators n (grid (B, cdiv(A, BLOCK_N))).

    num[n, c] = Σ_k S[n, k] src[k, c] and mass[n] = Σ_k S[n, k] over the contributors k != n: with SPARSE, the
    item's list of labelled annotators (S read from its transpose simt, rows contiguous); otherwise every k-tile
    of A. SINGLE_CHUNK (C <= BLOCK_C) computes the softmax statistics in place; otherwise they come from the row
    statistics kernel and a second sweep finishes the gradient.
    """
    b = tl.program_id(0).to(tl.int64)
    pid_n = tl.program_id(1)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < A
    row = b * A + n
    y = tl.load(labels_ptr + row, mask=nmask, other=-1)
    observed = (y >= 0) & nmask
    kk = tl.arange(0, BLOCK_K)
    if SPARSE:
        count = tl.load(count_ptr + b)
    else:
        count = A
    # only tiles with a missing entry need the soft labels: the k-loops of the others run 0 times
    any_missing = tl.max((nmask & (y < 0)).to(tl.int32), axis=0) > 0
    k_end = tl.where(any_missing, count, 0)
    mass = tl.zeros((BLOCK_N,), tl.float32)
    soft = observed & False
    ce = tl.zeros((BLOCK_N,), tl.float32)
    kl = tl.zeros((BLOCK_N,), tl.float32)
    sq = tl.zeros((BLOCK_N,), tl.float32)
    qlogq = tl.zeros((BLOCK_N,), tl.float32)
    qmax = tl.full((BLOCK_N,), -1.0, tl.float32)
    qarg = tl.zeros((BLOCK_N,), tl.int32)
    m = tl.zeros((BLOCK_N,), tl.float32)
    logs = tl.zeros((BLOCK_N,), tl.float32)
    if not SINGLE_CHUNK:
        m = tl.load(m_ptr + row, mask=nmask, other=0.0)
        logs = tl.load(logs_ptr + row, mask=nmask, other=0.0)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cmask = c < C
        mask = nmask[:, None] & cmask[None, :]
        x = tl.load(logits_ptr + row[:, None] * C + c[None, :], mask=mask, other=0.0).to(tl.float32)
        if SINGLE_CHUNK:
            m, logs = _softmax_stats(tl.where(cmask[None, :], x, float("-inf")))
        acc = tl.zeros((BLOCK_N, BLOCK_C), tl.float32)
        if SOFT:
            mass = tl.zeros((BLOCK_N,), tl.float32)  # recomputed identically for every class chunk
            for k0 in range(0, k_end, BLOCK_K):
                if SPARSE:
                    j = k0 + kk
                    jmask = j < count
                    k = tl.load(list_ptr + b * A + j, mask=jmask, other=0)
                    ck = jmask
                    yk = tl.load(labels_ptr + b * A + k, mask=ck, other=-1)
                    keep = ck[:, None] & nmask[None, :] & (k[:, None] != n[None, :])
                    S = tl.trans(tl.load(simt_ptr + k[:, None].to(tl.int64) * A + n[None, :], mask=keep, other=0.0))
                else:
                    k = k0 + kk
                    kmask = k < A
                    yk = tl.load(labels_ptr + b * A + k, mask=kmask, other=-1)
                    if ALL_CONTRIB:
                        ck = kmask
                    else:
                        ck = yk >= 0
                    keep = nmask[:, None] & ck[None, :] & (n[:, None] != k[None, :])
                    S = tl.load(sim_ptr + n[:, None].to(tl.int64) * A + k[None, :], mask=keep, other=0.0)
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
                        xk = xk.to(tl.float32)
                        if SINGLE_CHUNK:
                            mk, lk = _softmax_stats(xk)
                        else:
                            mk = tl.load(m_ptr + rk, mask=ck, other=0.0)
                            lk = tl.load(logs_ptr + rk, mask=ck, other=0.0)
                        src = tl.exp((xk - mk[:, None]) - lk[:, None])
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
    ce_t, kl_t, nce_t, nkl_t = _store_rows(row, nmask, observed, soft, ce, kl, w, qlogq, qmax, qarg, conf_ptr,
                                           arg_ptr, imp_ptr, threshold, log_c, SOFT, IMPUTE)
    _store_parts(part_f_ptr, part_i_ptr, b * tl.num_programs(1) + pid_n, ce_t, kl_t, nce_t, nkl_t)


# ----------------------------------------------------------------------------------------------------------------
# Backward: one kernel that scales the stored gradient
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _scale_grad_kernel(grad_ptr, labels_ptr, g_ptr, out_ptr, n_rows, C, BLOCK_R: tl.constexpr,
                       BLOCK_C: tl.constexpr):
    """out[r, c] = grad[r, c] · (g_ce if labels[r] >= 0 else g_kl), written in out's dtype (g: [g_ce, g_kl])."""
    r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = r < n_rows
    y = tl.load(labels_ptr + r, mask=rmask, other=-1)
    g_ce = tl.load(g_ptr)
    g_kl = tl.load(g_ptr + 1)
    scale = tl.where(y >= 0, g_ce, g_kl)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        mask = rmask[:, None] & (c < C)[None, :]
        g = tl.load(grad_ptr + r[:, None] * C + c[None, :], mask=mask, other=0.0)
        tl.store(out_ptr + r[:, None] * C + c[None, :], (g * scale[:, None]).to(out_ptr.dtype.element_ty), mask=mask)


def scale_grad(grad: torch.Tensor, labels: torch.Tensor, g_ce: torch.Tensor, g_kl: torch.Tensor,
               dtype: torch.dtype) -> torch.Tensor:
    """``grad [B, A, C] · where(labels >= 0, g_ce, g_kl)`` in ``dtype``: the whole backward, one launch (plus the
    two-element stack of the incoming gradients)."""
    B, A, C = grad.shape
    out = torch.empty((B, A, C), dtype=dtype, device=grad.device)
    if B * A == 0:
        return out
    g = torch.stack([g_ce.reshape(()), g_kl.reshape(())]).to(torch.float32)
    block_c = min(_pow2(C), 64)
    block_r = max(1, min(256, 4096 // block_c))
    _scale_grad_kernel[(triton.cdiv(B * A, block_r),)](grad, labels, g, out, B * A, C, BLOCK_R=block_r,
                                                       BLOCK_C=block_c, num_warps=8)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Launch configuration (a small heuristic table; no autotuning so that interpreter runs stay fast)
# ----------------------------------------------------------------------------------------------------------------
def _pow2(v: int) -> int:
    return triton.next_power_of_2(max(int(v), 1))


def grouped_config(A: int, C: int) -> dict:
    """A_pad, C_pad (>= 16: tl.dot tiles), the k-slice BLOCK_K = 16 (a float32 ``ieee`` dot keeps a whole
    k-slice of each operand row in registers) and num_warps (4, or 8 from tiles of 1024 entries: 177-255
    registers, no spills on sm_90)."""
    a_pad, c_pad = max(16, _pow2(A)), max(16, _pow2(C))
    return dict(A_PAD=a_pad, C_PAD=c_pad, BLOCK_K=16, num_warps=8 if a_pad * c_pad >= 1024 else 4)


def tiled_config(A: int, C: int) -> dict:
    """| A     | BLOCK_N | BLOCK_K | C_pad = max(16, next_pow2(C)) | BLOCK_C                  | num_warps               |
       | <= 16 | 16      | 16      | <= 64                         | C_pad (one class chunk)  | 4, or 8 if BLOCK_N·BLOCK_C >= 512 |
       | >  16 | 32      | 16      | >  64                         | 64 (chunked, two sweeps) |                         |

    Every block is >= 16 (tl.dot). float32 ``tl.dot`` with ``input_precision="ieee"`` lowers to FMAs with the
    whole BLOCK_K slice of each operand row in registers, so BLOCK_K stays 16 (larger k-tiles spilled on sm_90)."""
    bn = 16 if A <= 16 else 32
    bc = min(max(16, _pow2(C)), 64)
    return dict(BLOCK_N=bn, BLOCK_K=16, BLOCK_C=bc, num_warps=8 if bn * bc >= 512 else 4)


def choose_path(A: int, C: int, all_contributors: bool = False) -> str:
    """grouped for A_pad <= 128 with A_pad · C_pad <= 1024 or C_pad = 16; else sparse (labelled contributors) or
    tiled."""
    a_pad, c_pad = max(16, _pow2(A)), max(16, _pow2(C))
    if a_pad <= GROUPED_MAX_A and (a_pad * c_pad <= GROUPED_MAX_TILE or c_pad == 16):
        return "grouped"
    return "tiled" if all_contributors else "sparse"


def _grouped_programs(B: int, device: torch.device) -> int:
    if device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        return max(1, min(B, PROGRAMS_PER_SM * sms))
    return max(1, min(B, 4))  # the interpreter: a few programs, each with several items


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
    programs: int | None = None,
):
    """One SimLabel batch step: values and d(ce_sum)/d logits, d(kl_sum)/d logits in one pass, no host sync.

    logits [B, A, C] float16/bfloat16/float32/float64 (computed in float32), labels [B, A] int64 (-1 = missing),
    similarity [A, A] float32. ``flags``: the options' switches (:class:`~simlabel_ext.kernels.KernelFlag`, from
    ``SimLabelOptions.kernel_flags``); ``threshold``: impute where confidence >= threshold.

    Returns ``(ce_sum[] f32, kl_sum[] f32, n_ce[] int64, n_kl[] int64, confidence[B, A] f32,
    soft_argmax[B, A] int64, impute_mask[B, A] bool, grad[B, A, C] f32, errors[2] int64)`` where ``grad`` holds
    d ce_sum / d logits on observed entries, d kl_sum / d logits on soft entries and 0 elsewhere (the soft labels
    are gradient-stopped), and ``errors`` the row-major flat index of the first label outside -1..C-1 and of the
    first similarity entry that is not finite and >= 0 (:data:`NO_ERROR` where there is none). Other outputs are
    undefined when ``errors`` reports one; nothing here reads anything back to the host.

    Keyword-only knobs (tests / tuning): ``path`` "auto" | "grouped" | "sparse" | "tiled"; ``block_n`` /
    ``block_k`` / ``block_c`` (sparse and tiled paths, powers of two >= 16); ``programs`` (grouped path: the
    number of persistent programs).
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape [B, A, C]; got {tuple(logits.shape)}")
    B, A, C = logits.shape
    if tuple(labels.shape) != (B, A) or tuple(similarity.shape) != (A, A):
        raise ValueError("labels must be [B, A] and similarity [A, A]")
    flags = KernelFlag(flags)
    all_contributors = KernelFlag.ALL_CONTRIBUTORS in flags
    if KernelFlag.LABEL_SOURCE in flags and all_contributors:
        raise ValueError("the LABEL_SOURCE flag needs ALL_CONTRIBUTORS off")
    if path not in ("auto", "grouped", "sparse", "tiled"):
        raise ValueError(f"path={path!r} is not one of 'auto', 'grouped', 'sparse', 'tiled'")
    if path == "auto":
        path = choose_path(A, C, all_contributors)
    if path == "sparse" and all_contributors:
        raise ValueError('path="sparse" mixes the labelled contributors only: it needs ALL_CONTRIBUTORS off')
    device = logits.device
    logits = logits.contiguous()
    labels = labels.to(torch.int64).contiguous()
    similarity = similarity.to(device=device, dtype=torch.float32).contiguous()

    # every entry of these is written by the kernels (no memset)
    grad = torch.empty((B, A, C), dtype=torch.float32, device=device)
    confidence = torch.empty((B, A), dtype=torch.float32, device=device)
    soft_argmax = torch.empty((B, A), dtype=torch.int64, device=device)
    impute_u8 = torch.empty((B, A), dtype=torch.uint8, device=device)
    errors = torch.full((2,), NO_ERROR, dtype=torch.int64, device=device)
    ce_sum, kl_sum = (torch.zeros((), dtype=torch.float32, device=device) for _ in range(2))
    n_ce, n_kl = (torch.zeros((), dtype=torch.int64, device=device) for _ in range(2))
    outputs = (ce_sum, kl_sum, n_ce, n_kl, confidence, soft_argmax, impute_u8.view(torch.bool), grad, errors)
    if B * A == 0:
        return outputs

    soft = KernelFlag.SOFT in flags
    switches = dict(
        SOFT=soft,
        IMPUTE=KernelFlag.IMPUTE in flags and soft,
        REVERSE=KernelFlag.REVERSE_KL in flags,
        ALL_CONTRIB=all_contributors,
        LABEL_SOURCE=KernelFlag.LABEL_SOURCE in flags,
        EVIDENCE=KernelFlag.EVIDENCE_WEIGHT in flags,
    )
    threshold = float(threshold)
    log_c = math.log(C)

    if path == "grouped":
        cfg = grouped_config(A, C)
        n_prog = int(programs) if programs else _grouped_programs(B, device)
        part_f = torch.empty(2 * n_prog, dtype=torch.float32, device=device)
        part_i = torch.empty(2 * n_prog, dtype=torch.int64, device=device)
        _grouped_kernel[(n_prog,)](
            logits, labels, similarity, grad, confidence, soft_argmax, impute_u8, part_f, part_i, errors,
            B, A, C, threshold, log_c, **cfg, **switches,
        )
    else:
        cfg = tiled_config(A, C)
        for key, value in (("BLOCK_N", block_n), ("BLOCK_K", block_k), ("BLOCK_C", block_c)):
            if value is not None:
                cfg[key] = int(value)
            if cfg[key] < 16 or cfg[key] & (cfg[key] - 1):
                raise ValueError(f"{key}={cfg[key]} must be a power of two >= 16 (tl.dot tiles)")
        sparse = path == "sparse" and soft
        contributors = torch.empty((B, A) if sparse else (1,), dtype=torch.int32, device=device)
        count = torch.empty(B if sparse else 1, dtype=torch.int32, device=device)
        block_a = min(_pow2(A), 1024)
        _prepare_kernel[(B,)](labels, similarity, contributors, count, errors, A, C, BLOCK_A=block_a,
                              COMPACT=sparse, num_warps=4)
        single = C <= cfg["BLOCK_C"]
        row_m = row_logs = grad  # unused placeholders with one chunk
        if not single:
            n_rows = B * A
            row_m = torch.empty(n_rows, dtype=torch.float32, device=device)
            row_logs = torch.empty(n_rows, dtype=torch.float32, device=device)
            stats_bc = min(max(16, _pow2(C)), 256)
            stats_br = max(1, min(128, 4096 // stats_bc))
            _row_stats_kernel[(triton.cdiv(n_rows, stats_br),)](
                logits, row_m, row_logs, n_rows, C, BLOCK_R=stats_br, BLOCK_C=stats_bc, num_warps=4
            )
        simt = similarity.t().contiguous() if sparse else similarity
        n_tiles = triton.cdiv(A, cfg["BLOCK_N"])
        n_prog = B * n_tiles
        part_f = torch.empty(2 * n_prog, dtype=torch.float32, device=device)
        part_i = torch.empty(2 * n_prog, dtype=torch.int64, device=device)
        _tiled_kernel[(B, n_tiles)](
            logits, labels, similarity, simt, contributors, count, row_m, row_logs, grad, confidence, soft_argmax,
            impute_u8, part_f, part_i, A, C, threshold, log_c, SINGLE_CHUNK=single, SPARSE=sparse, **cfg,
            **switches,
        )
    _sum_parts_kernel[(1,)](part_f, part_i, n_prog, ce_sum, kl_sum, n_ce, n_kl, BLOCK=1024, num_warps=4)
    return outputs
