"""The Triton forward kernels against the pure-PyTorch reference (the oracle), in Triton's interpreter.

tests/conftest.py sets TRITON_INTERPRET=1 before triton is imported, so the kernels run on CPU tensors here; on a
GPU runner (TRITON_INTERPRET=0) the same tests run on CUDA tensors. Expected values: ``simlabel_loss_reference``
outputs, and as gradient the reference's autograd gradients of ``ce_sum`` and ``kl_sum`` (their supports, the
observed and the soft entries, are disjoint, so the kernel's grad buffer must equal their sum).

Tolerances: float32 rtol 1e-5 / atol 1e-6 (grad, confidence: atol 1e-6). float16 / bfloat16 / float64 logits are
upcast to float32 on load and all arithmetic is float32, so they are compared with the reference evaluated on the
same values in float32 (``logits.float()``) at the same tolerance: the kernels add no error of their own on top of
the input rounding. Impute masks are compared exactly, with thresholds chosen away (> 1e-4) from every confidence.
"""
from __future__ import annotations

import itertools
import os

import pytest
import torch

from simlabel_ext.kernels import NO_ERROR, KernelFlag, triton_available
from simlabel_ext.ops import SimLabelOptions, simlabel_loss_reference, soft_labels

pytestmark = pytest.mark.skipif(not triton_available(), reason="triton is not installed (pip install 'simlabel[triton]')")

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cpu" if INTERPRET else "cuda"
if not INTERPRET and not torch.cuda.is_available():
    pytestmark = [pytestmark, pytest.mark.skip(reason="TRITON_INTERPRET=0 and no CUDA device")]

RTOL, ATOL = 1e-5, 1e-6

# mode × kl_direction × (contributors, soft_source) × kl_weight; reduction / lam do not reach the kernels
OPTIONS = [
    SimLabelOptions(mode=m, kl_direction=d, contributors=c, soft_source=s, kl_weight=w)
    for m, d, (c, s), w in itertools.product(
        ("skip", "simlabel", "simlabel+confidence"),
        ("reverse", "forward"),
        (("labelled", "predictions"), ("all", "predictions"), ("labelled", "labels")),
        ("uniform", "evidence"),
    )
]


def oid(o: SimLabelOptions) -> str:
    return f"{o.mode}-{o.kl_direction}-{o.contributors}-{o.soft_source}-{o.kl_weight}"


def make_case(seed, B, A, C, scale=2.0, missing=0.5, sim_scale=0.5):
    """Random inputs: row 0 has no label, row 1 all labels, the last annotator has zero similarity to all."""
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(B, A, C, generator=g)
    labels = torch.randint(0, C, (B, A), generator=g)
    labels[torch.rand(B, A, generator=g) < missing] = -1
    labels[0] = -1
    if B > 1:
        labels[1] = torch.randint(0, C, (A,), generator=g)
    similarity = sim_scale * torch.rand(A, A, generator=g)
    similarity = (similarity + similarity.T) / 2
    similarity[A - 1, :] = 0
    similarity[:, A - 1] = 0
    return logits, labels, similarity


def reference(logits, labels, similarity, options):
    """Reference outputs and the autograd gradients of ce_sum and kl_sum (float32)."""
    x = logits.detach().float().requires_grad_()
    out = simlabel_loss_reference(x, labels, similarity.float(), options)
    grad = torch.zeros_like(x)
    for part in (out.ce_sum, out.kl_sum):
        if part.requires_grad:
            (g,) = torch.autograd.grad(part, x, retain_graph=True)
            grad = grad + g
    return out, grad


def safe_threshold(conf: torch.Tensor, soft: torch.Tensor) -> float:
    """A threshold near the median soft confidence with no confidence within 1e-4 of it."""
    values = sorted(set(conf[soft].tolist()))
    if len(values) < 2:
        return 0.5
    mid = len(values) // 2
    for i in list(range(mid, len(values))) + list(range(mid - 1, 0, -1)):
        lo, hi = values[i - 1], values[i]
        if hi - lo > 2e-4:
            return (lo + hi) / 2
    return 0.5


def run_kernel(logits, labels, similarity, o: SimLabelOptions, **kw):
    from simlabel_ext.kernels.simlabel_triton import fused_loss_forward

    return fused_loss_forward(
        logits.to(DEVICE),
        labels.to(DEVICE),
        similarity.float().to(DEVICE),
        int(o.kernel_flags),
        o.threshold,
        **kw,
    )


def check(logits, labels, similarity, o: SimLabelOptions, rtol=RTOL, atol=ATOL, kernel_logits=None, **kw):
    ref, ref_grad = reference(logits, labels, similarity, o)
    if o.imputes:
        o = SimLabelOptions(**{**o.__dict__, "threshold": safe_threshold(ref.confidence, ref.soft_argmax >= 0)})
        ref, ref_grad = reference(logits, labels, similarity, o)
    kernel_logits = logits if kernel_logits is None else kernel_logits
    out = [t.cpu() for t in run_kernel(kernel_logits, labels, similarity, o, **kw)]
    ce_sum, kl_sum, n_ce, n_kl, conf, argmax, impute, grad, errors = out
    assert errors.tolist() == [NO_ERROR, NO_ERROR]
    B, A, C = logits.shape
    assert ce_sum.shape == () and ce_sum.dtype == torch.float32
    assert kl_sum.shape == () and kl_sum.dtype == torch.float32
    assert n_ce.dtype == torch.int64 and n_kl.dtype == torch.int64
    assert conf.shape == (B, A) and conf.dtype == torch.float32
    assert argmax.shape == (B, A) and argmax.dtype == torch.int64
    assert impute.shape == (B, A) and impute.dtype == torch.bool
    assert grad.shape == (B, A, C) and grad.dtype == torch.float32
    assert (n_ce.item(), n_kl.item()) == (ref.n_ce.item(), ref.n_kl.item())
    torch.testing.assert_close(ce_sum, ref.ce_sum.float(), rtol=rtol, atol=atol)
    torch.testing.assert_close(kl_sum, ref.kl_sum.float(), rtol=rtol, atol=atol)
    torch.testing.assert_close(conf, ref.confidence.float(), rtol=rtol, atol=atol)
    assert torch.equal(argmax, ref.soft_argmax)
    assert torch.equal(impute, ref.impute_mask)
    torch.testing.assert_close(grad, ref_grad, rtol=rtol, atol=atol)
    assert torch.isfinite(grad).all() and torch.isfinite(conf).all()
    if o.kl_weight == "evidence" and ref.n_kl > 0:
        # the case must make the evidence weight min(1, mass) matter: some soft entry with mass < 1
        probs = torch.softmax(logits.float(), -1)
        _, mass = soft_labels(probs, labels, similarity.float(), contributors=o.contributors, soft_source=o.soft_source)
        assert (mass[ref.soft_argmax >= 0] < 1).any()
    return ref


# --------------------------------------------------------------------------------------------------------------
# Every option on both paths
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("o", OPTIONS, ids=oid)
def test_grouped_path_all_options(o):
    # C = 5 (not a power of two), A = 5 (both padded to 16 for tl.dot); 7 items on 3 persistent programs: items
    # 0, 3, 6 / 1, 4 / 2, 5 (the strided loop)
    logits, labels, similarity = make_case(len(oid(o)), B=7, A=5, C=5)
    ref = check(logits, labels, similarity, o, path="grouped", programs=3)
    if o.uses_soft_labels:
        assert ref.n_kl > 0, "the case must exercise the KL term"
        if o.imputes:
            assert 0 < ref.impute_mask.sum() < ref.n_kl


@pytest.mark.parametrize("o", [OPTIONS[i] for i in (0, 15, 22, 27, 30)], ids=oid)
def test_grouped_path_wide_tiles_and_one_program(o):
    # A = 40 (padded to 64), C = 10 (16): 5 items on one program; and A = 3, C = 2, the smallest tiles
    logits, labels, similarity = make_case(len(oid(o)) + 400, B=5, A=40, C=10, missing=0.6, sim_scale=0.05)
    ref = check(logits, labels, similarity, o, path="grouped", programs=1)
    logits, labels, similarity = make_case(len(oid(o)) + 401, B=7, A=3, C=2, missing=0.4)
    check(logits, labels, similarity, o, path="grouped", programs=2)
    if o.uses_soft_labels:
        assert ref.n_kl > 0


@pytest.mark.parametrize("o", [o for o in OPTIONS if o.contributors == "labelled"], ids=oid)
def test_sparse_path_mixes_the_labelled_contributors_only(o):
    # A = 70 (3 n-tiles of 32): item 0 has no label, item 1 all, item 2 a few (the compact list shorter than one
    # k-tile of 16), item 3 about half (several k-tiles, the last partial)
    logits, labels, similarity = make_case(len(oid(o)) + 500, B=4, A=70, C=5, missing=0.5, sim_scale=0.05)
    g = torch.Generator().manual_seed(len(oid(o)))
    labels[2] = -1
    labels[2, torch.randperm(70, generator=g)[:5]] = torch.randint(0, 5, (5,), generator=g)
    ref = check(logits, labels, similarity, o, path="sparse", block_n=32, block_k=16, block_c=16)
    if o.uses_soft_labels:
        assert ref.n_kl > 0


@pytest.mark.parametrize("o", [o for o in OPTIONS if o.contributors == "labelled" and o.uses_soft_labels][1::3],
                         ids=oid)
def test_sparse_path_class_chunks_and_wide_k_tiles(o):
    # C = 37 in chunks of 16 (row statistics kernel, two-sweep gradient); k-tiles of 32
    logits, labels, similarity = make_case(len(oid(o)) + 600, B=3, A=40, C=37, missing=0.6, sim_scale=0.05)
    ref = check(logits, labels, similarity, o, path="sparse", block_n=16, block_k=32, block_c=16)
    assert ref.n_kl > 0


@pytest.mark.parametrize("o", OPTIONS, ids=oid)
def test_tiled_path_all_options_several_k_tiles(o):
    # A = 40: one n-tile of 64 × 3 k-tiles of 16 (the last partial); item 0 has no label, item 1 some, and
    # annotators 16..31 are blank there, so with contributors="labelled" a whole k-tile carries no similarity
    # mass (the skipped-tile branch). (A fully labelled item is in the n-tile and class-chunk tests.)
    logits, labels, similarity = make_case(len(oid(o)) + 100, B=2, A=40, C=5, missing=0.7, sim_scale=0.05)
    g = torch.Generator().manual_seed(len(oid(o)))
    labels[1] = torch.where(torch.rand(40, generator=g) < 0.5, labels[1], -1)
    labels[1, 16:32] = -1
    ref = check(logits, labels, similarity, o, path="tiled", block_n=64, block_k=16, block_c=16)
    if o.uses_soft_labels:
        assert ref.n_kl > 0


@pytest.mark.parametrize("o", [OPTIONS[i] for i in (24, 29, 33)], ids=oid)
def test_tiled_path_several_n_tiles(o):
    # A = 40: 3 n-tiles of 16 (the last partial) × 2 k-tiles of 32; BLOCK_N != BLOCK_K
    logits, labels, similarity = make_case(len(oid(o)) + 300, B=3, A=40, C=5, missing=0.6, sim_scale=0.05)
    ref = check(logits, labels, similarity, o, path="tiled", block_n=16, block_k=32, block_c=16)
    assert ref.n_kl > 0


@pytest.mark.parametrize("o", [OPTIONS[i] for i in (25, 26, 31, 34)], ids=oid)
def test_tiled_path_class_chunks(o):
    # C = 37 in chunks of 16: three chunks, two-sweep gradient
    logits, labels, similarity = make_case(len(oid(o)) + 200, B=3, A=6, C=37)
    ref = check(logits, labels, similarity, o, path="tiled", block_n=16, block_k=16, block_c=16)
    if o.uses_soft_labels:
        assert ref.n_kl > 0


@pytest.mark.parametrize("o", OPTIONS[6::8], ids=oid)
def test_auto_path_default_blocks(o):
    # the heuristic configuration of each path as it would run on a GPU
    for B, A, C in ((5, 3, 4), (2, 19, 7)):
        logits, labels, similarity = make_case(A * C, B=B, A=A, C=C)
        check(logits, labels, similarity, o)


# --------------------------------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["grouped", "sparse", "tiled"])
def test_single_annotator_has_no_soft_labels(path):
    logits, labels, similarity = make_case(3, B=4, A=1, C=3)
    labels[2, 0] = 2
    for o in (OPTIONS[12], OPTIONS[26]):
        if path == "sparse" and o.contributors == "all":
            continue
        ref = check(logits, labels, similarity, o, path=path)
        assert ref.n_kl == 0


@pytest.mark.parametrize("path, C, classes", [("grouped", 5, (3, 1)), ("sparse", 37, (20, 3)),
                                              ("tiled", 37, (20, 3))])
def test_argmax_ties_pick_the_first_class(path, C, classes):
    # two equally similar contributors with different labels: q = 0.5 / 0.5, argmax must be the smaller class
    # (on the tiled path with 16-class chunks the two classes lie in different chunks)
    logits = torch.randn(1, 3, C, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[classes[0], classes[1], -1]])
    similarity = torch.tensor([[0.0, 0.3, 0.5], [0.3, 0.0, 0.5], [0.5, 0.5, 0.0]])
    o = SimLabelOptions(mode="simlabel", soft_source="labels")
    ref = check(logits, labels, similarity, o, path=path, **({} if path == "grouped" else {"block_c": 16}))
    assert ref.soft_argmax[0, 2] == min(classes)


@pytest.mark.parametrize("path", ["grouped", "sparse", "tiled"])
@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_extreme_logits_stay_finite(path, direction):
    logits, labels, similarity = make_case(1, B=5, A=6, C=5, scale=1.0)
    logits = torch.sign(logits) * 1e4
    logits[2, 1, 3] = -1e4 + 0.5  # not every value saturated
    for source in ("predictions", "labels"):
        o = SimLabelOptions(mode="simlabel+confidence", kl_direction=direction, soft_source=source)
        ref = check(logits, labels, similarity, o, path=path, **({} if path == "grouped" else {"block_c": 16}))
        assert torch.isfinite(ref.kl_sum) and ref.n_kl > 0


@pytest.mark.parametrize("path", ["grouped", "sparse", "tiled"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_logit_dtypes_compute_in_float32(path, dtype):
    logits, labels, similarity = make_case(2, B=5, A=5, C=5)
    low = logits.to(dtype)
    if path == "sparse":  # labelled contributors
        o = OPTIONS[25] if dtype == torch.float16 else OPTIONS[30]
    else:
        o = OPTIONS[14] if dtype == torch.float16 else OPTIONS[33]
    # expected: the reference on the same values in float32 (the kernel's arithmetic after the load)
    check(low.float(), labels, similarity, o, kernel_logits=low, path=path)


def test_float64_logits_against_the_float64_reference():
    # float64 logits are computed in float32: the outputs are float32 and agree with the float64 oracle to
    # float32 accuracy
    logits, labels, similarity = make_case(4, B=4, A=5, C=5)
    o = OPTIONS[13]
    x = logits.double().requires_grad_()
    ref = simlabel_loss_reference(x, labels, similarity.double(), o)
    grad = sum(torch.autograd.grad(p, x, retain_graph=True)[0] for p in (ref.ce_sum, ref.kl_sum))
    out = run_kernel(logits.double(), labels, similarity, o)
    torch.testing.assert_close(out[0].cpu().double(), ref.ce_sum.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[1].cpu().double(), ref.kl_sum.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[7].cpu().double(), grad, rtol=1e-5, atol=1e-6)


def test_empty_batch():
    o = OPTIONS[13]
    out = run_kernel(torch.zeros(0, 3, 4), torch.zeros(0, 3, dtype=torch.long), torch.rand(3, 3), o)
    assert out[0].item() == 0 and out[1].item() == 0 and out[2].item() == 0 and out[3].item() == 0
    assert out[7].shape == (0, 3, 4)


def test_bad_arguments_are_refused():
    logits, labels, similarity = make_case(0, B=2, A=3, C=4)
    from simlabel_ext.kernels.simlabel_triton import fused_loss_forward

    F = KernelFlag
    with pytest.raises(ValueError, match="LABEL_SOURCE flag needs ALL_CONTRIBUTORS off"):
        fused_loss_forward(logits, labels, similarity, F.SOFT | F.REVERSE_KL | F.ALL_CONTRIBUTORS | F.LABEL_SOURCE, 0.6)
    with pytest.raises(ValueError, match="BLOCK_K"):
        fused_loss_forward(logits, labels, similarity, F.SOFT | F.REVERSE_KL, 0.6, path="tiled", block_k=8)


def test_path_heuristics():
    from simlabel_ext.kernels.simlabel_triton import (
        choose_path,
        grouped_config,
        tiled_config,
    )

    assert choose_path(5, 10) == "grouped" and choose_path(44, 10) == "grouped" and choose_path(64, 16) == "grouped"
    assert choose_path(128, 16) == "grouped" and choose_path(32, 32) == "grouped" and choose_path(64, 32) == "sparse"
    assert choose_path(1000, 10) == "sparse" and choose_path(1000, 10, all_contributors=True) == "tiled"
    assert choose_path(3, 5000) == "sparse"
    cfg = grouped_config(5, 10)
    assert (cfg["A_PAD"], cfg["C_PAD"], cfg["BLOCK_K"]) == (16, 16, 16)
    for A, C in ((1, 2), (40, 5), (2571, 10), (8, 1000)):
        cfg = tiled_config(A, C)
        assert min(cfg["BLOCK_N"], cfg["BLOCK_K"], cfg["BLOCK_C"]) >= 16


# --------------------------------------------------------------------------------------------------------------
# Errors are recorded, not raised (no host synchronisation), and the op turns them into the named ValueError
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["grouped", "sparse", "tiled"])
def test_bad_input_is_recorded_in_the_errors_word(path):
    logits, labels, similarity = make_case(9, B=4, A=40, C=5)
    labels[3, 1] = -4
    labels[2, 7] = 9       # the first bad label in row-major order is [2, 7]
    similarity[9, 30] = -2.0
    similarity[7, 2] = -1.0  # the first bad similarity entry is [7, 2]
    o = OPTIONS[27] if path == "tiled" else OPTIONS[24]  # all / labelled contributors
    for options in (o, OPTIONS[0]):  # and in Skip mode, where S is not used but still checked
        out = run_kernel(logits, labels, similarity, options, path=path)
        assert out[8].cpu().tolist() == [2 * 40 + 7, 7 * 40 + 2]
    good = make_case(9, B=4, A=40, C=5)
    assert run_kernel(*good, o, path=path)[8].cpu().tolist() == [NO_ERROR, NO_ERROR]


def test_check_errors_raises_what_the_host_check_raises():
    from simlabel_ext.ops import check_errors
    from simlabel_ext.ops.validation import check_values

    logits, labels, similarity = make_case(3, B=3, A=6, C=4)
    labels[1, 4] = 7
    similarity[2, 5] = float("inf")
    with pytest.raises(ValueError) as host:
        check_values(labels, similarity, 4)
    with pytest.raises(ValueError) as recorded:
        check_errors(torch.tensor([1 * 6 + 4, 2 * 6 + 5]), labels, similarity, 4)
    assert str(recorded.value) == str(host.value) == "labels[1, 4] = 7 is outside 0..3 (or -1 for missing)"
    with pytest.raises(ValueError, match=r"^similarity\[2, 5\] = inf must be finite and >= 0$"):
        check_errors([NO_ERROR, 2 * 6 + 5], labels, similarity, 4)
    check_errors([NO_ERROR, NO_ERROR], labels, similarity, 4)


def test_backward_kernel_scales_the_stored_gradient():
    from simlabel_ext.kernels.simlabel_triton import scale_grad

    g = torch.Generator().manual_seed(5)
    grad = torch.randn(4, 7, 37, generator=g)
    labels = torch.randint(-1, 3, (4, 7), generator=g)
    g_ce, g_kl = torch.tensor(0.7), torch.tensor(-1.3)
    expected = grad * torch.where(labels >= 0, g_ce, g_kl)[..., None]
    out = scale_grad(grad.to(DEVICE), labels.to(DEVICE), g_ce.to(DEVICE), g_kl.to(DEVICE), torch.float32).cpu()
    assert out.dtype == torch.float32 and torch.equal(out, expected)
    out = scale_grad(grad.to(DEVICE), labels.to(DEVICE), g_ce.to(DEVICE), g_kl.to(DEVICE), torch.bfloat16).cpu()
    assert out.dtype == torch.bfloat16  # rounded once, from the float32 product (within one bf16 step)
    torch.testing.assert_close(out.float(), expected, rtol=2**-7, atol=0)


# --------------------------------------------------------------------------------------------------------------
# GPU compilation without a GPU (opt-in: ~1 min of ptxas): the interpreter does not check what only the compiler
# rejects (e.g. non-constexpr globals, unsupported tensor ranks) nor register spills
# --------------------------------------------------------------------------------------------------------------
_COMPILE_SCRIPT = r"""
import os, re, subprocess, sys, tempfile
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import simlabel_ext.kernels.simlabel_triton as K

ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
types = dict(logits_ptr="*bf16", labels_ptr="*i64", sim_ptr="*fp32", simt_ptr="*fp32", list_ptr="*i32",
             count_ptr="*i32", grad_ptr="*fp32", conf_ptr="*fp32", arg_ptr="*i64", imp_ptr="*u8",
             part_f_ptr="*fp32", part_i_ptr="*i64", err_ptr="*i64", m_ptr="*fp32", logs_ptr="*fp32", B="i32",
             A="i32", C="i32", threshold="fp32", log_c="fp32", n_rows="i32", n_parts="i32", ce_ptr="*fp32",
             kl_ptr="*fp32", nce_ptr="*i64", nkl_ptr="*i64", g_ptr="*fp32", out_ptr="*bf16")
flags = dict(SOFT=True, IMPUTE=True, REVERSE=False, ALL_CONTRIB=False, LABEL_SOURCE=False, EVIDENCE=True)

def build(fn, constexprs, num_warps):
    sig = {n: ("constexpr" if n in constexprs else types[n]) for n in fn.arg_names}
    # PTX 8.8: what the ptxas bundled with triton reads (triton's own default may be newer)
    k = triton.compile(ASTSource(fn, sig, constexprs=constexprs), target=GPUTarget("cuda", 90, 32),
                       options={"num_warps": num_warps, "ptx_version": 88})
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(k.asm["ptx"])
    log = subprocess.run([ptxas, "-v", "--gpu-name=sm_90a", f.name, "-o", os.devnull],
                         capture_output=True, text=True, check=True).stderr
    spills = [int(v) for v in re.findall(r"(\d+) bytes spill stores", log)]
    registers = [int(v) for v in re.findall(r"Used (\d+) registers", log)]
    print(fn.__name__, constexprs, "registers", registers, "spill stores", spills)
    assert not any(spills), (fn.__name__, constexprs, log)

for A, C in ((10, 8), (44, 10), (64, 16), (128, 16), (32, 32), (16, 64)):
    cfg = K.grouped_config(A, C)
    nw = cfg.pop("num_warps")
    build(K._grouped_kernel, {**cfg, **flags}, nw)
build(K._row_stats_kernel, dict(BLOCK_R=16, BLOCK_C=256), 4)
build(K._prepare_kernel, dict(BLOCK_A=1024, COMPACT=True), 4)
build(K._sum_parts_kernel, dict(BLOCK=1024), 4)
build(K._scale_grad_kernel, dict(BLOCK_R=256, BLOCK_C=16), 4)
for A, C, sparse in ((1000, 10, True), (2571, 10, True), (2571, 1000, True), (1000, 10, False)):
    cfg = K.tiled_config(A, C)
    nw = cfg.pop("num_warps")
    build(K._tiled_kernel, {**cfg, "SINGLE_CHUNK": C <= cfg["BLOCK_C"], "SPARSE": sparse,
                            **flags, "ALL_CONTRIB": not sparse}, nw)
print("OK")
"""


@pytest.mark.skipif(
    os.environ.get("SIMLABEL_TRITON_COMPILE_CHECK") != "1", reason="opt-in: set SIMLABEL_TRITON_COMPILE_CHECK=1"
)
def test_kernels_compile_for_sm90_without_spills():
    import subprocess
    import sys

    import triton

    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    if not os.path.exists(ptxas):
        pytest.skip("triton's bundled ptxas is not available")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], env=env, cwd=root, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip().endswith("OK"), res.stdout[-3000:] + res.stderr[-5000:]
