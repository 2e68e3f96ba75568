"""The reference SimLabel math against hand-computed cases, a naive per-entry loop, and finite differences."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from simlabel_ext.ops import (
    SimLabelOptions,
    confidence,
    simlabel_loss,
    simlabel_loss_reference,
    soft_labels,
)
from simlabel_ext.ops.options import LOG_Q_FLOOR

SOFT_LABEL_OPTIONS = [
    dict(mode=m, kl_direction=d, contributors=c, soft_source=s, kl_weight=w)
    for m, d, c, s, w in itertools.product(
        ("skip", "simlabel", "simlabel+confidence"),
        ("reverse", "forward"),
        ("labelled", "all"),
        ("predictions", "labels"),
        ("uniform", "evidence"),
    )
    if not (s == "labels" and c == "all")
]
#: Every combination of the options that shape the soft labels and the loss terms (reduction "mean"), plus the
#: other reductions, which only combine the sums, on a few of them.
ALL_OPTIONS = [SimLabelOptions(reduction="mean", lam=0.7, **o) for o in SOFT_LABEL_OPTIONS] + [
    SimLabelOptions(reduction=r, lam=0.7, **o) for r in ("flat", "sum") for o in SOFT_LABEL_OPTIONS[::7]
]


def option_id(o: SimLabelOptions) -> str:
    return f"{o.mode}-{o.kl_direction}-{o.reduction}-{o.contributors}-{o.soft_source}-{o.kl_weight}"


# --------------------------------------------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------------------------------------------
def _two_annotator_case():
    # annotator 0 labelled class 0 with p0 = [3/4, 1/4]; annotator 1 is missing, p1 = [1/2, 1/2]; S = 0.5.
    logits = torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0]]], dtype=torch.float64)
    labels = torch.tensor([[0, -1]])
    similarity = torch.tensor([[0.0, 0.5], [0.5, 0.0]], dtype=torch.float64)
    return logits, labels, similarity


def test_hand_case_reverse_kl_mean():
    out = simlabel_loss(*_two_annotator_case(), mode="simlabel+confidence", threshold=0.1)
    ce = -math.log(0.75)  # 0.2876820724...
    kl = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # KL(p1 || q), q = p0
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    conf = 0.75 * (1 - entropy / math.log(2))  # 0.14154...
    assert out.ce_sum.item() == pytest.approx(ce, abs=1e-12)
    assert out.kl_sum.item() == pytest.approx(kl, abs=1e-12)
    assert out.loss.item() == pytest.approx(ce + kl, abs=1e-12)
    assert (out.n_ce.item(), out.n_kl.item()) == (1, 1)
    assert out.confidence[0].tolist() == pytest.approx([0.0, conf], abs=1e-12)
    assert conf == pytest.approx(0.141541, abs=1e-6)
    assert out.soft_argmax.tolist() == [[-1, 0]]
    assert out.impute_mask.tolist() == [[False, True]]  # conf 0.1415 >= T = 0.1


def test_hand_case_forward_kl_flat_evidence_and_threshold():
    out = simlabel_loss(
        *_two_annotator_case(), kl_direction="forward", reduction="flat", lam=2.0, kl_weight="evidence"
    )
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(q || p1) = 0.130812...
    ce = -math.log(0.75)
    evidence = min(1.0, 0.5)
    assert out.kl_sum.item() == pytest.approx(evidence * kl, abs=1e-12)
    assert out.loss.item() == pytest.approx((ce + 2.0 * evidence * kl) / 2, abs=1e-12)
    assert out.impute_mask.tolist() == [[False, False]]  # conf 0.14 < default T = 0.6


def test_hand_case_weights_are_renormalised_similarities():
    # Annotator 2 is missing; annotators 0 and 1 labelled classes 0 and 1; S[2, 0] = 0.3, S[2, 1] = 0.1,
    # so the weights are 3/4 and 1/4 and the label-sourced soft label is [3/4, 1/4, 0].
    labels = torch.tensor([[0, 1, -1]])
    similarity = torch.tensor([[0.0, 0.2, 0.3], [0.2, 0.0, 0.1], [0.3, 0.1, 0.0]], dtype=torch.float64)
    probs = torch.full((1, 3, 3), 1 / 3, dtype=torch.float64)
    q, mass = soft_labels(probs, labels, similarity, soft_source="labels")
    assert q[0, 2].tolist() == pytest.approx([0.75, 0.25, 0.0], abs=1e-15)
    assert mass[0].tolist() == pytest.approx([0.2, 0.2, 0.4], abs=1e-15)
    # confidence of [3/4, 1/4, 0]: entropy normalised by log 3, 0 log 0 = 0
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert confidence(q[0, 2]).item() == pytest.approx(0.75 * (1 - entropy / math.log(3)), abs=1e-12)


def test_skip_mode_is_cross_entropy_on_observed_only():
    torch.manual_seed(0)
    logits = torch.randn(5, 4, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[0, -1, 2, -1], [-1, -1, -1, -1], [1, 1, 1, 1], [2, -1, -1, 0], [-1, 0, -1, -1]])
    out = simlabel_loss(logits, labels, torch.rand(4, 4, dtype=torch.float64), mode="skip")
    observed = labels >= 0
    expected = torch.nn.functional.cross_entropy(logits[observed], labels[observed])
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-12)
    assert out.kl_sum.item() == 0 and out.n_kl.item() == 0
    out.loss.backward()
    assert torch.all(logits.grad[~observed] == 0), "Skip must not train on missing entries"
    assert torch.all(out.soft_argmax == -1) and not out.impute_mask.any()


# --------------------------------------------------------------------------------------------------------------
# Second oracle: a naive loop over entries (scalar torch ops, float64, autograd for the gradients)
# --------------------------------------------------------------------------------------------------------------
def naive_loss(logits, labels, similarity, o: SimLabelOptions):
    B, A, C = logits.shape
    log_p = [[logits[i, a] - torch.logsumexp(logits[i, a], 0) for a in range(A)] for i in range(B)]
    lab = labels.tolist()
    S = similarity.tolist()
    ce_sum, kl_sum = logits.new_zeros(()), logits.new_zeros(())
    n_ce = n_kl = 0
    conf = [[0.0] * A for _ in range(B)]
    argmax = [[-1] * A for _ in range(B)]
    impute = [[False] * A for _ in range(B)]
    for i in range(B):
        for n in range(A):
            if lab[i][n] >= 0:
                ce_sum = ce_sum - log_p[i][n][lab[i][n]]
                n_ce += 1
                continue
            if o.mode == "skip":
                continue
            contributors = [k for k in range(A) if k != n and (o.contributors == "all" or lab[i][k] >= 0)]
            mass = sum(S[n][k] for k in contributors)
            if mass <= 0:
                continue
            q = [0.0] * C
            for k in contributors:
                for c in range(C):
                    src = float(lab[i][k] == c) if o.soft_source == "labels" else math.exp(log_p[i][k][c].item())
                    q[c] += S[n][k] / mass * src
            log_q = [math.log(max(v, LOG_Q_FLOOR)) for v in q]
            lp = log_p[i][n]
            if o.kl_direction == "reverse":
                kl = sum(lp[c].exp() * (lp[c] - log_q[c]) for c in range(C))
            else:
                kl = sum(q[c] * (log_q[c] - lp[c]) for c in range(C))
            if o.kl_weight == "evidence":
                kl = kl * min(1.0, mass)
            kl_sum = kl_sum + kl
            n_kl += 1
            entropy = -sum(v * math.log(v) for v in q if v > 0)
            conf[i][n] = max(q) * (1 - entropy / math.log(C))
            argmax[i][n] = max(range(C), key=lambda c: (q[c], -c))
            impute[i][n] = o.mode == "simlabel+confidence" and conf[i][n] >= o.threshold
    if o.reduction == "sum":
        loss = ce_sum + o.lam * kl_sum
    elif o.reduction == "flat":
        loss = (ce_sum + o.lam * kl_sum) / max(n_ce + n_kl, 1)
    else:
        loss = ce_sum / max(n_ce, 1) + o.lam * kl_sum / max(n_kl, 1)
    return loss, ce_sum, kl_sum, n_ce, n_kl, conf, argmax, impute


def random_case(seed: int, B=6, A=5, C=3, scale=2.0):
    """Random inputs with a fully missing row, a fully labelled row and an annotator similar to nobody."""
    g = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(B, A, C, generator=g, dtype=torch.float64)).requires_grad_()
    labels = torch.randint(0, C, (B, A), generator=g)
    labels[torch.rand(B, A, generator=g) < 0.5] = -1
    labels[0] = -1
    labels[1] = torch.randint(0, C, (A,), generator=g)
    similarity = torch.rand(A, A, generator=g, dtype=torch.float64)
    similarity = (similarity + similarity.T) / 2
    similarity[A - 1, :] = 0
    similarity[:, A - 1] = 0
    return logits, labels, similarity


@pytest.mark.parametrize("options", ALL_OPTIONS, ids=option_id)
def test_reference_equals_naive_loop(options):
    logits, labels, similarity = random_case(seed=len(option_id(options)))
    options = SimLabelOptions(**{**options.__dict__, "threshold": 0.05})
    out = simlabel_loss_reference(logits, labels, similarity, options)
    loss, ce, kl, n_ce, n_kl, conf, argmax, impute = naive_loss(logits, labels, similarity, options)
    assert out.loss.item() == pytest.approx(loss.item(), rel=1e-12, abs=1e-12)
    assert out.ce_sum.item() == pytest.approx(ce.item(), rel=1e-12, abs=1e-12)
    assert out.kl_sum.item() == pytest.approx(float(torch.as_tensor(kl).detach()), rel=1e-12, abs=1e-12)
    assert (out.n_ce.item(), out.n_kl.item()) == (n_ce, n_kl)
    torch.testing.assert_close(out.confidence, torch.tensor(conf, dtype=out.confidence.dtype), rtol=0, atol=1e-12)
    assert out.soft_argmax.tolist() == argmax
    assert out.impute_mask.tolist() == impute
    if options.mode != "skip":
        assert n_kl > 0, "the case must exercise the KL term"
    (grad,) = torch.autograd.grad(out.loss, logits)
    (naive_grad,) = torch.autograd.grad(loss, logits)
    torch.testing.assert_close(grad, naive_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("options", ALL_OPTIONS[::5], ids=option_id)
def test_reference_gradcheck(options):
    # The soft labels are gradient-stopped, so finite differences must hold them fixed: pass the
    # contributors' distributions at the evaluation point explicitly.
    logits, labels, similarity = random_case(seed=3, B=3, A=4, C=3)
    fixed = torch.softmax(logits.detach(), -1)
    for part in ("loss", "ce_sum", "kl_sum"):
        assert torch.autograd.gradcheck(
            lambda x: getattr(simlabel_loss_reference(x, labels, similarity, options, source_probs=fixed), part),
            (logits,),
            eps=1e-6,
            atol=1e-7,
        )


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_extreme_logits_stay_finite(direction):
    logits, labels, similarity = random_case(seed=1, scale=1.0)
    with torch.no_grad():
        logits.copy_(torch.sign(logits) * 1e4)
    out = simlabel_loss(logits.float().detach().requires_grad_(), labels, similarity.float(), kl_direction=direction)
    assert torch.isfinite(out.loss) and torch.isfinite(out.kl_sum) and out.n_kl > 0
    assert torch.isfinite(out.confidence).all()
    x = logits.float().detach().requires_grad_()
    simlabel_loss(x, labels, similarity.float(), kl_direction=direction).loss.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_logits_accumulate_in_float32(dtype):
    logits, labels, similarity = random_case(seed=2)
    low = logits.detach().to(dtype)
    out = simlabel_loss(low, labels, similarity.float())
    ref = simlabel_loss(low.float(), labels, similarity.float())
    assert out.loss.dtype == torch.float32
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-6)


def test_no_labels_and_single_annotator_give_zero_loss_terms():
    out = simlabel_loss(torch.randn(3, 1, 4), torch.full((3, 1), -1), torch.zeros(1, 1))
    assert out.loss.item() == 0 and out.n_ce.item() == 0 and out.n_kl.item() == 0


# --------------------------------------------------------------------------------------------------------------
# Bad input names the culprit
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "logits, labels, similarity, error, match",
    [
        (torch.randn(2, 3), torch.zeros(2, 3), torch.zeros(3, 3), ValueError, r"shape \[B, A, C\]"),
        (torch.randn(2, 3, 4), torch.zeros(2, 2, dtype=torch.long), torch.zeros(3, 3), ValueError, r"labels"),
        (torch.randn(2, 3, 4), torch.zeros(2, 3), torch.zeros(3, 3), TypeError, r"integer"),
        (torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 2), ValueError, r"\[3, 3\]"),
        (torch.randn(2, 3, 1), torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 3), ValueError, r"C=1"),
        (
            torch.randn(2, 3, 4),
            torch.tensor([[0, 1, 2], [3, 4, -1]]),
            torch.zeros(3, 3),
            ValueError,
            r"labels\[1, 1\] = 4 is outside 0\.\.3",
        ),
        (
            torch.randn(2, 3, 4),
            torch.tensor([[0, -2, 2], [3, 1, -1]]),
            torch.zeros(3, 3),
            ValueError,
            r"labels\[0, 1\] = -2",
        ),
        (
            torch.randn(2, 3, 4),
            torch.zeros(2, 3, dtype=torch.long),
            torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, float("nan")], [0.0, 0.0, 0.0]]),
            ValueError,
            r"similarity\[1, 2\] = nan",
        ),
        (
            torch.randn(2, 3, 4),
            torch.zeros(2, 3, dtype=torch.long),
            torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [-0.5, 0.0, 0.0]]),
            ValueError,
            r"similarity\[2, 0\] = -0\.5",
        ),
    ],
)
def test_bad_inputs_name_the_culprit(logits, labels, similarity, error, match):
    with pytest.raises(error, match=match):
        simlabel_loss(logits, labels, similarity)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "simlable"}, r"mode='simlable'"),
        ({"kl_direction": "both"}, r"kl_direction='both'"),
        ({"reduction": "avg"}, r"reduction='avg'"),
        ({"threshold": 1.5}, r"threshold=1\.5"),
        ({"lam": -1.0}, r"lam=-1\.0"),
        ({"soft_source": "labels", "contributors": "all"}, r'contributors="labelled"'),
    ],
)
def test_bad_options_name_the_option(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simlabel_loss(torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 3), **kwargs)
