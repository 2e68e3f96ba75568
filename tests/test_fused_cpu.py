"""The fused CPU kernel ``simlabel_ext._C.fused_loss_forward`` against the pure-PyTorch reference (its oracle).

For every combination of options the kernel's sums, counts, confidence, soft-label argmax and impute mask must
equal ``simlabel_loss_reference``'s, and its gradient buffer must equal the reference's autograd gradients of
``ce_sum`` (on observed entries) and ``kl_sum`` (on soft entries). Tolerances: float32 rtol 1e-5 / atol 1e-6,
float64 rtol 1e-10; float16/bfloat16 logits see ``test_low_precision_logits``.
"""
from __future__ import annotations

import pytest
import torch
from test_fused_op import flags
from test_reference_loss import SOFT_LABEL_OPTIONS

from simlabel_ext.ops import KernelFlag, SimLabelOptions, simlabel_loss_reference

try:
    from simlabel_ext import _C
except ImportError:  # a source checkout that was never built
    _C = None

pytestmark = pytest.mark.skipif(
    _C is None or not hasattr(_C, "fused_loss_forward"),
    reason="simlabel_ext._C is not built or lacks fused_loss_forward; build it with "
    "`pip install --no-build-isolation -e .` (or `python setup.py build_ext --inplace`)",
)

ALL_OPTIONS = [SimLabelOptions(threshold=0.05, **o) for o in SOFT_LABEL_OPTIONS]


def option_id(o: SimLabelOptions) -> str:
    return f"{o.mode}-{o.kl_direction}-{o.contributors}-{o.soft_source}-{o.kl_weight}"


def fused(logits, labels, similarity, o: SimLabelOptions):
    return _C.fused_loss_forward(logits, labels, similarity, *flags(o))


def random_case(seed: int, B=7, A=5, C=5, scale=2.0, dtype=torch.float64, extreme=False):
    """Random inputs with a fully missing row, a fully labelled row and an annotator similar to nobody."""
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(B, A, C, generator=g, dtype=torch.float64)
    if extreme:  # saturated rows (ties at +1e4) beside ordinary ones
        rows = torch.rand(B, A, generator=g) < 0.5
        logits = torch.where(rows[..., None], torch.sign(logits) * 1e4, logits)
    labels = torch.randint(0, C, (B, A), generator=g)
    labels[torch.rand(B, A, generator=g) < 0.5] = -1
    labels[0] = -1
    if B > 1:
        labels[1] = torch.randint(0, C, (A,), generator=g)
    similarity = torch.rand(A, A, generator=g, dtype=torch.float64)
    similarity = (similarity + similarity.T) / 2
    similarity[A - 1, :] = 0
    similarity[:, A - 1] = 0
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    return logits.to(dtype), labels, similarity.to(acc)


def reference(logits, labels, similarity, o: SimLabelOptions):
    """The reference's outputs and the gradient the kernel must write: d ce_sum on observed, d kl_sum on soft."""
    x = logits.detach().clone().requires_grad_()
    out = simlabel_loss_reference(x, labels, similarity, o)
    (g_ce,) = torch.autograd.grad(out.ce_sum, x, retain_graph=True)
    if out.kl_sum.requires_grad:
        (g_kl,) = torch.autograd.grad(out.kl_sum, x)
    else:
        g_kl = torch.zeros_like(x)
    grad = torch.where((labels >= 0)[..., None], g_ce, g_kl)
    return out, grad


def assert_matches(got, out, grad, *, rtol, atol):
    ce_sum, kl_sum, n_ce, n_kl, conf, argmax, impute, g = got
    acc = out.ce_sum.dtype
    assert ce_sum.dtype == kl_sum.dtype == conf.dtype == g.dtype == acc
    assert n_ce.dtype == n_kl.dtype == argmax.dtype == torch.int64 and impute.dtype == torch.bool
    assert ce_sum.shape == kl_sum.shape == n_ce.shape == n_kl.shape == ()
    assert (n_ce.item(), n_kl.item()) == (out.n_ce.item(), out.n_kl.item())
    torch.testing.assert_close(ce_sum, out.ce_sum.detach(), rtol=rtol, atol=atol)
    torch.testing.assert_close(kl_sum, out.kl_sum.detach(), rtol=rtol, atol=atol)
    torch.testing.assert_close(conf, out.confidence.detach(), rtol=rtol, atol=atol)
    assert torch.equal(argmax, out.soft_argmax)
    assert torch.equal(impute, out.impute_mask)
    torch.testing.assert_close(g, grad.to(g.dtype), rtol=rtol, atol=atol)
    assert torch.isfinite(g).all() and torch.isfinite(ce_sum) and torch.isfinite(kl_sum)


TOLERANCES = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}
# (B, A, C): C = 5 is not a power of two; A = 37 spans three 16-lane blocks (a two-block and a one-block S^T
# tile); C = 8 gives 9 mixed rows (a full 6-row tile and a 3-row one); A = 1 has no contributors at all.
SHAPES = [(7, 5, 5), (6, 37, 8), (4, 1, 3)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("options", ALL_OPTIONS, ids=option_id)
def test_matches_reference(options, dtype):
    n_kl = 0
    for seed, (B, A, C) in enumerate(SHAPES):
        for extreme in (False, True):
            logits, labels, similarity = random_case(seed, B, A, C, dtype=dtype, extreme=extreme)
            out, grad = reference(logits, labels, similarity, options)
            assert_matches(fused(logits, labels, similarity, options), out, grad, **TOLERANCES[dtype])
            n_kl += out.n_kl.item()
    if options.mode != "skip":
        assert n_kl > 0, "the cases must exercise the KL term"


def test_imputation_and_confidence_are_exercised():
    # With a low threshold some soft entries are imputed and some are not (so the mask comparison means something).
    options = SimLabelOptions(threshold=0.05)
    logits, labels, similarity = random_case(0, 64, 12, 4, dtype=torch.float32)
    *_, conf, argmax, impute, _ = fused(logits, labels, similarity, options)
    assert impute.any() and (~impute & (argmax >= 0)).any()
    assert ((conf > 0) == (argmax >= 0)).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("options", ALL_OPTIONS[12::5], ids=option_id)
def test_low_precision_logits(options, dtype):
    """Low-precision logits are read in their dtype and accumulated in float32.

    Against the reference on the same logits upcast to float32 (identical math): float32 tolerances
    (rtol 1e-5, atol 1e-6). Against the reference on the low-precision logits themselves, whose autograd gradient
    is rounded to the logits' dtype: the same outputs, and gradients within that dtype's rounding (float16:
    rtol 2e-3, bfloat16: rtol 1.6e-2, both atol 1e-5).
    """
    logits, labels, similarity = random_case(5, 9, 6, 5, dtype=dtype)
    got = fused(logits, labels, similarity, options)
    out32, grad32 = reference(logits.float(), labels, similarity, options)
    assert_matches(got, out32, grad32, rtol=1e-5, atol=1e-6)
    out, grad = reference(logits, labels, similarity, options)
    assert grad.dtype == dtype
    torch.testing.assert_close(got[0], out.ce_sum.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], out.kl_sum.detach(), rtol=1e-5, atol=1e-6)
    rtol = 2e-3 if dtype == torch.float16 else 1.6e-2
    torch.testing.assert_close(got[7], grad.float(), rtol=rtol, atol=1e-5)


def test_diagonal_of_similarity_is_ignored():
    options = SimLabelOptions(threshold=0.05)
    logits, labels, similarity = random_case(3, dtype=torch.float32)
    noisy = similarity.clone()
    noisy.fill_diagonal_(float("nan"))
    for a, b in zip(fused(logits, labels, similarity, options), fused(logits, labels, noisy, options)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("options", [SimLabelOptions(threshold=0.05), SimLabelOptions(kl_direction="forward")],
                         ids=option_id)
def test_nan_logits_propagate_like_the_reference(options):
    logits, labels, similarity = random_case(2, B=8, A=6, C=4, dtype=torch.float32)
    i, a = next((i, a) for i in range(2, 8) for a in range(6) if labels[i, a] >= 0 and (labels[i] < 0).any())
    logits[i, a, 1] = float("nan")  # an observed contributor: its CE and the soft labels it feeds are NaN
    out, _ = reference(logits, labels, similarity, options)
    ce_sum, kl_sum, _, _, conf, _, impute, grad = fused(logits, labels, similarity, options)
    assert torch.isnan(ce_sum) and torch.isnan(out.ce_sum)
    assert torch.isnan(kl_sum) == torch.isnan(out.kl_sum) and torch.isnan(kl_sum)
    assert torch.equal(torch.isnan(conf), torch.isnan(out.confidence))
    assert torch.equal(impute, out.impute_mask)
    assert torch.isnan(grad[i, a]).all() and torch.isfinite(grad[:i]).all()


def test_empty_batch():
    options = SimLabelOptions()
    ce, kl, n_ce, n_kl, conf, argmax, impute, grad = fused(
        torch.zeros(0, 3, 4), torch.zeros(0, 3, dtype=torch.long), torch.ones(3, 3), options
    )
    assert (ce.item(), kl.item(), n_ce.item(), n_kl.item()) == (0, 0, 0, 0)
    assert conf.shape == argmax.shape == impute.shape == (0, 3) and grad.shape == (0, 3, 4)


# --------------------------------------------------------------------------------------------------------------
# Determinism: thread count and instruction set
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", ALL_OPTIONS[12:16], ids=option_id)
def test_result_does_not_depend_on_thread_count(options):
    logits, labels, similarity = random_case(7, 700, 24, 6, dtype=torch.float32)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fused(logits, labels, similarity, options)
        torch.set_num_threads(max(2, before))
        many = fused(logits, labels, similarity, options)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, many):
        assert torch.equal(a, b)


@pytest.mark.parametrize("isa", ["default", "avx2"])
@pytest.mark.parametrize("options", ALL_OPTIONS[12::3], ids=option_id)
def test_every_instruction_set_path_matches_reference(options, isa, monkeypatch):
    # SIMLABEL_CPU_ISA lowers the kernel's code path (the best the CPU has is the one the other tests use).
    monkeypatch.setenv("SIMLABEL_CPU_ISA", isa)
    for dtype in (torch.float32, torch.float64):
        logits, labels, similarity = random_case(11, 6, 37, 8, dtype=dtype)
        out, grad = reference(logits, labels, similarity, options)
        assert_matches(fused(logits, labels, similarity, options), out, grad, **TOLERANCES[dtype])
    assert _C.fused_loss_cpu_isa() in (isa, "default")


def test_unknown_isa_is_named(monkeypatch):
    monkeypatch.setenv("SIMLABEL_CPU_ISA", "sse9")
    with pytest.raises(ValueError, match="SIMLABEL_CPU_ISA.*sse9"):
        fused(*random_case(0, dtype=torch.float32), SimLabelOptions())


# --------------------------------------------------------------------------------------------------------------
# gradcheck: the grad buffer is the backward
# --------------------------------------------------------------------------------------------------------------
class FusedSimLabel(torch.autograd.Function):
    """(ce_sum, kl_sum) of the kernel; backward scales the kernel's grad rows per entry (the caller's recipe)."""

    @staticmethod
    def forward(ctx, logits, labels, similarity, kernel_flags):
        ce_sum, kl_sum, *_, grad = _C.fused_loss_forward(logits.detach(), labels, similarity, *kernel_flags)
        ctx.save_for_backward(grad, labels)
        return ce_sum, kl_sum

    @staticmethod
    def backward(ctx, g_ce, g_kl):
        grad, labels = ctx.saved_tensors
        scale = torch.where(labels >= 0, g_ce, g_kl)[..., None]
        return grad * scale, None, None, None


@pytest.mark.parametrize("options", [o for o in ALL_OPTIONS if o.soft_source == "labels"], ids=option_id)
def test_gradcheck_label_source(options):
    # Soft labels made of observed labels do not depend on the logits: the whole step is differentiable as is.
    logits, labels, similarity = random_case(3, B=3, A=4, C=3)
    x = logits.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: FusedSimLabel.apply(t, labels, similarity, flags(options)), (x,), eps=1e-6, atol=1e-7
    )


@pytest.mark.parametrize(
    "options",
    [o for o in ALL_OPTIONS if o.soft_source == "predictions" and o.contributors == "labelled"],
    ids=option_id,
)
def test_gradcheck_prediction_source_with_contributors_fixed(options):
    # With contributors = labelled the soft labels are made of the observed entries' predictions (gradient
    # stopped). Finite differences hold them fixed by varying one side at a time: kl_sum w.r.t. the missing
    # entries' logits (the soft labels do not move), ce_sum w.r.t. the observed entries' logits.
    logits, labels, similarity = random_case(4, B=3, A=4, C=3)
    observed = labels >= 0

    def build(missing, seen):
        full = torch.zeros_like(logits)
        full = full.masked_scatter(~observed[..., None].expand_as(full), missing)
        return full.masked_scatter(observed[..., None].expand_as(full), seen)

    missing = logits[~observed].clone().requires_grad_()
    seen = logits[observed].clone().requires_grad_()
    f = flags(options)
    assert torch.autograd.gradcheck(
        lambda m: FusedSimLabel.apply(build(m, seen.detach()), labels, similarity, f)[1], (missing,), eps=1e-6,
        atol=1e-7,
    )
    assert torch.autograd.gradcheck(
        lambda s: FusedSimLabel.apply(build(missing.detach(), s), labels, similarity, f)[0], (seen,), eps=1e-6,
        atol=1e-7,
    )
    if options.mode != "skip":
        assert FusedSimLabel.apply(logits, labels, similarity, f)[1] > 0


# --------------------------------------------------------------------------------------------------------------
# The kernel's own input errors name what is wrong
# --------------------------------------------------------------------------------------------------------------
def _ok():
    return torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.rand(3, 3)


DEFAULT_FLAGS = flags(SimLabelOptions())


def _transposed(t):
    """Same values and shape, not contiguous."""
    return t.transpose(0, 1).contiguous().transpose(0, 1)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda x, y, s: (x[0], y, s), ValueError, r"logits must have shape \[B, A, C\]; got \[3, 4\]"),
        (lambda x, y, s: (x.long(), y, s), TypeError,
         r"logits must be float16, bfloat16, float32 or float64; got int64"),
        (lambda x, y, s: (x[..., :1].contiguous(), y, s), ValueError, r"C=1"),
        (lambda x, y, s: (x, y[:, :2], s), ValueError, r"labels must have shape \[B, A\] = \[2, 3\].*got \[2, 2\]"),
        (lambda x, y, s: (x, y.int(), s), TypeError, r"labels must be int64; got int32"),
        (lambda x, y, s: (x, y, s[:2]), ValueError, r"similarity must have shape \[A, A\] = \[3, 3\]; got \[2, 3\]"),
        (lambda x, y, s: (x, y, s.double()), TypeError, r"similarity must be float32 .*float32 logits.*got float64"),
        (lambda x, y, s: (x.double(), y, s), TypeError, r"similarity must be float64 .*got float32"),
        (lambda x, y, s: (_transposed(x), y, s), ValueError, r"logits must be contiguous"),
        (lambda x, y, s: (x, _transposed(y), s), ValueError, r"labels must be contiguous"),
        (lambda x, y, s: (x, y.index_fill(1, torch.tensor([2]), 4), s), ValueError,
         r"labels\[0, 2\] = 4 is outside 0\.\.3"),
        (lambda x, y, s: (x, y.index_fill(1, torch.tensor([1]), -2), s), ValueError, r"labels\[0, 1\] = -2"),
        (lambda x, y, s: (x, y, s.index_fill(1, torch.tensor([2]), -0.5)), ValueError,
         r"similarity\[0, 2\] = -0\.5 must be finite and >= 0"),
        (lambda x, y, s: (x, y, s.index_fill(0, torch.tensor([1]), float("inf"))), ValueError, r"similarity\[1, 0\]"),
    ],
)
def test_bad_inputs_name_the_culprit(make, error, match):
    with pytest.raises(error, match=match):
        _C.fused_loss_forward(*make(*_ok()), *DEFAULT_FLAGS)


def test_label_source_needs_labelled_contributors():
    flags, threshold = DEFAULT_FLAGS
    both = flags | KernelFlag.ALL_CONTRIBUTORS | KernelFlag.LABEL_SOURCE
    with pytest.raises(ValueError, match="the LABEL_SOURCE flag needs ALL_CONTRIBUTORS off"):
        _C.fused_loss_forward(*_ok(), int(both), threshold)


def test_unknown_flag_bits_are_refused():
    with pytest.raises(ValueError, match="flags = 64 holds bits that are no KernelFlag"):
        _C.fused_loss_forward(*_ok(), 64, 0.6)


def test_kernel_flags_agree_with_the_cpp_kernel():
    assert _C.KERNEL_FLAGS == {flag.name: flag.value for flag in KernelFlag}
