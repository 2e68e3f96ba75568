"""The registered op ``simlabel::fused_forward``: dispatch, closed-form fallback, autograd, fake impl, compile."""
from __future__ import annotations

import pytest
import torch
from test_reference_loss import ALL_OPTIONS, option_id, random_case

from simlabel_ext import simlabel_loss
from simlabel_ext.ops import (
    SimLabelOptions,
    closed_form_forward,
    simlabel_loss_reference,
)
from simlabel_ext.ops.fused import fused_forward

#: The op always returns sums; ``reduction`` and ``lam`` only combine them afterwards.
OP_OPTIONS = [o for o in ALL_OPTIONS if o.reduction == "mean"]


def flags(o: SimLabelOptions):
    """The op's and the kernels' option arguments: the switches and the threshold."""
    return int(o.kernel_flags), o.threshold


def assert_matches_reference(outputs, logits, labels, similarity, options, rtol, atol):
    """Every output of the op against the reference's values and its autograd gradients of ce_sum / kl_sum."""
    x = logits.detach().float() if logits.dtype in (torch.float16, torch.bfloat16) else logits.detach()
    x = x.requires_grad_()
    ref = simlabel_loss_reference(x, labels, similarity.to(x.dtype), SimLabelOptions(**{**options.__dict__, "reduction": "sum"}))
    ce_sum, kl_sum, n_ce, n_kl, conf, argmax, impute, grad = outputs
    torch.testing.assert_close(ce_sum, ref.ce_sum.detach(), rtol=rtol, atol=atol)
    torch.testing.assert_close(kl_sum, ref.kl_sum.detach().to(kl_sum.dtype), rtol=rtol, atol=atol)
    assert (int(n_ce), int(n_kl)) == (int(ref.n_ce), int(ref.n_kl))
    torch.testing.assert_close(conf, ref.confidence, rtol=rtol, atol=atol)
    assert torch.equal(argmax, ref.soft_argmax)
    assert torch.equal(impute, ref.impute_mask)
    parts = [p for p in (ref.ce_sum, ref.kl_sum) if p.requires_grad]
    expected = sum(torch.autograd.grad(p, x, retain_graph=True)[0] for p in parts) if parts else torch.zeros_like(x)
    torch.testing.assert_close(grad, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("options", OP_OPTIONS, ids=option_id)
def test_closed_form_fallback_equals_reference_autograd(options):
    logits, labels, similarity = random_case(seed=11)
    options = SimLabelOptions(**{**options.__dict__, "threshold": 0.05})
    out = closed_form_forward(logits.detach(), labels, similarity, options)
    assert_matches_reference(out, logits, labels, similarity, options, rtol=1e-10, atol=1e-12)


def test_opcheck_fake_impl_and_autograd_registration():
    logits, labels, similarity = random_case(seed=4)
    for o in (ALL_OPTIONS[0], SimLabelOptions(mode="simlabel", kl_direction="forward", kl_weight="evidence")):
        torch.library.opcheck(
            fused_forward,
            (logits.detach().float().requires_grad_(), labels, similarity.float(), *flags(o)),
            test_utils=("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic"),
        )


@pytest.mark.parametrize("reduction", ["mean", "flat", "sum"])
def test_op_loss_and_gradient_equal_reference(reduction):
    logits, labels, similarity = random_case(seed=5)
    x = logits.detach().float().requires_grad_()
    out = simlabel_loss(x, labels, similarity.float(), reduction=reduction, lam=0.3)
    out.loss.backward()
    y = logits.detach().float().requires_grad_()
    ref = simlabel_loss(y, labels, similarity.float(), reduction=reduction, lam=0.3, backend="reference")
    ref.loss.backward()
    torch.testing.assert_close(out.loss, ref.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-5, atol=1e-6)


def test_compile_fullgraph_matches_eager():
    logits, labels, similarity = random_case(seed=6)
    x = logits.detach().float()

    def step(logits, labels, similarity):
        out = simlabel_loss(logits, labels, similarity, kl_weight="evidence")
        return out.loss, out.confidence, out.impute_mask

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    xc = x.clone().requires_grad_()
    loss_c, conf_c, imp_c = compiled(xc, labels, similarity.float())
    loss_c.backward()
    xe = x.clone().requires_grad_()
    loss_e, conf_e, imp_e = step(xe, labels, similarity.float())
    loss_e.backward()
    torch.testing.assert_close(loss_c, loss_e)
    torch.testing.assert_close(conf_c, conf_e)
    assert torch.equal(imp_c, imp_e)
    torch.testing.assert_close(xc.grad, xe.grad)


def test_backend_switch_is_validated():
    logits, labels, similarity = random_case(seed=7)
    with pytest.raises(ValueError, match=r"backend='triton'"):
        simlabel_loss(logits, labels, similarity, backend="triton")


def test_value_errors_come_from_inside_the_op():
    with pytest.raises(ValueError, match=r"labels\[0, 2\] = 7"):
        simlabel_loss(torch.randn(2, 3, 4), torch.tensor([[0, 1, 7], [0, 0, 0]]), torch.zeros(3, 3))
