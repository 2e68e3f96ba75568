"""The built-in annotator models (``heads``, ``padl``, ``madl``, ``qumatl``) and the shared encoders.

For every model: the hook registers a well-formed ``ModelSpec``; outputs have shape ``[B, A, C]`` and are finite
with a finite scalar ``aux_loss`` for feature and image inputs; gradients reach every parameter; the model
overfits a tiny synthetic set (random labels of 4 annotators, 30 % missing) to >= 95 % per-annotator training
accuracy; its documented structure holds; ``build`` rejects bad options and unsupported input specs.

The plugin modules are imported as ``simlabel_plugins.models.<name>`` (the installed package); only when
``simlabel_plugins`` itself is not importable (the project not yet installed) are they loaded from
``plugins/models/<name>.py`` by file path under the same module name.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from simlabel_ext.models import (
    AnnotatorLinear,
    AnnotatorModel,
    InputSpec,
    ModelOutput,
    build_encoder,
    build_token_encoder,
)
from simlabel_ext.registry import ModelSpec, OptionSpec, Registry, resolve_options

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("heads", "padl", "madl", "qumatl")
A, C, D = 4, 3, 12
FEATURES = InputSpec("features", (D,))
IMAGE = InputSpec("image", (1, 8, 8))
#: Small configurations for the shape / gradient / structure tests (defaults are used for overfitting).
SMALL = {
    "heads": {"hidden": 16},
    "padl": {"hidden": 16},
    "madl": {"hidden": 16, "ap_hidden": 16, "embed_dim": 8},
    "qumatl": {"hidden": 16, "d_model": 16, "num_heads": 2, "num_tokens": 4, "ffn_dim": 32},
}


def _load(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"simlabel_plugins.models.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != "simlabel_plugins":
            raise
    spec = importlib.util.spec_from_file_location(
        f"simlabel_plugins.models.{name}", ROOT / "plugins" / "models" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODULES = {name: _load(name) for name in NAMES}


@pytest.fixture(autouse=True)
def _seed_and_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest and keeps runs reproducible
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _build(name: str, spec: InputSpec = FEATURES, num_annotators: int = A, num_classes: int = C, **options):
    return MODULES[name].build(spec, num_annotators, num_classes, {**SMALL[name], **options})


def _data(n: int, spec: InputSpec, seed: int = 0, missing: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *spec.shape, generator=g)
    y = torch.randint(0, C, (n, A), generator=g)
    y[torch.rand(n, A, generator=g) < missing] = -1
    y[0] = torch.arange(A) % C  # every annotator labels at least one item
    return x, y


def _close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """``torch.testing.assert_close`` without its first-call import of sympy (seconds on a loaded machine)."""
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert torch.allclose(actual, expected, atol=atol, rtol=rtol), f"max abs difference {diff:.3g}"


def _observed_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    mask = labels >= 0
    return F.cross_entropy(logits[mask], labels[mask])


# ---------------------------------------------------------------------------------------------- registration


@pytest.mark.parametrize("name", NAMES)
def test_hook_registers_a_well_formed_model_spec(name):
    module = MODULES[name]
    assert hasattr(module.simlabel_models, "simlabel_impl"), "simlabel_models must carry the @hookimpl marker"
    specs = module.simlabel_models()
    assert len(specs) == 1 and isinstance(specs[0], ModelSpec)
    spec = specs[0]
    assert spec.name == name and spec.build is module.build and spec.description
    assert set(spec.input_kinds) == {"features", "image"}
    assert spec.option_specs and all(isinstance(o, OptionSpec) for o in spec.option_specs)
    assert len({o.name for o in spec.option_specs}) == len(spec.option_specs)
    for option in spec.option_specs:
        assert option.help, f"{name}.{option.name} has no help"
        assert option.parse(option.default) == option.default  # default has the declared type
    # The registry resolves options before calling build: a resolved dict must be accepted as is.
    model = spec.build(FEATURES, A, C, resolve_options(spec.option_specs, {}, name))
    assert isinstance(model, AnnotatorModel)
    assert (model.num_annotators, model.num_classes, model.input_spec) == (A, C, FEATURES)


def test_registry_builds_every_builtin_model_by_name():
    registry = Registry()
    for name in NAMES:
        registry.register(MODULES[name], name=name, distribution="simlabel")
    assert list(registry.models()) == sorted(NAMES)
    for name in NAMES:
        model = registry.build_model(name, IMAGE, A, C, **{k: str(v) for k, v in SMALL[name].items()})
        assert model.predict(torch.randn(2, *IMAGE.shape)).shape == (2, A)
    # A value only the build can rule out (no conv block for an image) is reported with the model's name, once.
    for name in NAMES:
        with pytest.raises(ValueError, match=rf"^model '{name}': depth \(conv blocks of an image encoder\) must"):
            registry.build_model(name, IMAGE, A, C, depth="0")
    with pytest.raises(ValueError, match=r"^model 'qumatl': d_model=10 must be divisible by num_heads=4$"):
        registry.build_model("qumatl", FEATURES, A, C, d_model="10")  # qumatl names itself: not named twice


# ------------------------------------------------------------------------------------------ shape & finiteness


@pytest.mark.parametrize("kind", ["features", "image"])
@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_finiteness(name, kind):
    spec = FEATURES if kind == "features" else IMAGE
    model = _build(name, spec)
    x, y = _data(5, spec)
    for training in (True, False):
        model.train(training)
        for labels in (None, y):
            out = model(x, labels)
            assert isinstance(out, ModelOutput)
            assert out.logits.shape == (5, A, C) and out.logits.dtype == torch.float32
            assert torch.isfinite(out.logits).all()
            assert out.aux_loss.dim() == 0 and torch.isfinite(out.aux_loss)
    model.train()
    assert model.predict(x).shape == (5, A) and model.training  # predict evaluates, then restores the mode


# ------------------------------------------------------------------------------------------------- gradients

#: Annotator-specific parameters: every annotator's slice (dim 0) must receive a nonzero gradient.
PER_ANNOTATOR = {
    "heads": ["heads.weight", "heads.bias"],
    "padl": ["residual_out.weight", "residual_out.bias", "sigma_out.weight", "sigma_out.bias"],
    "madl": ["annotator_embed.weight"],
    "qumatl": ["queries", "head.weight", "head.bias"],
}


@pytest.mark.parametrize("kind", ["features", "image"])
@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name, kind):
    """After ``backward(CE on observed entries + aux_loss)`` in training mode every parameter has a finite grad
    with nonzero entries. Exactly-zero entries are legitimate only for units a ReLU switches off on the whole
    batch (and, up to rounding, attention's key bias: softmax is invariant to a per-query shift); they must stay
    a minority (PADL's C-wide reduction layers make it the largest: ~8 % of its entries on this batch), and
    every annotator's slice of the annotator-specific parameters is reached."""
    spec = FEATURES if kind == "features" else IMAGE
    model = _build(name, spec).train()
    x, y = _data(32, spec)
    out = model(x, y)
    (_observed_ce(out.logits, y) + out.aux_loss).backward()
    params = dict(model.named_parameters())
    total = nonzero = 0
    for pname, p in params.items():
        assert p.requires_grad
        assert p.grad is not None, f"{name}/{kind}: no gradient reaches {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}/{kind}: non-finite gradient in {pname}"
        assert (p.grad != 0).any(), f"{name}/{kind}: gradient of {pname} is identically zero"
        total += p.numel()
        nonzero += int((p.grad != 0).sum())
    assert nonzero / total > 0.85, f"{name}/{kind}: only {nonzero}/{total} gradient entries are nonzero"
    for pname in PER_ANNOTATOR[name]:
        grad = params[pname].grad
        assert grad.shape[0] == A
        assert (grad.reshape(A, -1).abs().sum(1) > 0).all(), f"{name}: some annotator's {pname} gets no gradient"


def test_padl_sigma_branches_get_gradients_only_when_sampling():
    """PADL's σ heads are trained through the reparameterised samples; in eval mode (or sample=false) the
    outputs are the means and σ gets no gradient — the documented behaviour, not a broken graph."""
    x, y = _data(16, FEATURES)
    for model, expect in ((_build("padl").train(), True), (_build("padl", sample=False).train(), False)):
        out = model(x, y)
        (_observed_ce(out.logits, y) + out.aux_loss).backward()
        for pname in ("sigma_out.weight", "global_sigma_out.weight"):
            grad = dict(model.named_parameters())[pname].grad
            assert (grad is not None and bool((grad != 0).any())) is expect, pname


# ------------------------------------------------------------------------------------------------ overfitting


class _Adam:
    """Adam with torch.optim.Adam's default update (betas 0.9/0.999, eps 1e-8, bias correction).

    Hand-rolled only because ``torch.optim``'s first ``step()`` imports ``torch._dynamo`` (5-10 s of this
    file's otherwise ~15 s runtime on 2 cores); the update is the textbook one.
    """

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, (self.b1, self.b2), self.eps, self.t = lr, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            m.mul_(self.b1).add_(p.grad, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
            p.addcdiv_(m / c1, (v / c2).sqrt_().add_(self.eps), value=-self.lr)


def _overfit(model: AnnotatorModel, x: torch.Tensor, y: torch.Tensor, max_steps: int, lr: float = 3e-3):
    """Full-batch Adam on CE(observed) + aux until every annotator's eval-mode training accuracy is >= 95 %."""
    opt = _Adam(model.parameters(), lr=lr)
    mask = y >= 0
    acc = torch.zeros(A)
    for step in range(1, max_steps + 1):
        model.train()
        out = model(x, y)
        loss = _observed_ce(out.logits, y) + out.aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            pred = model.predict(x)
            acc = ((pred == y) & mask).sum(0).float() / mask.sum(0).float()
            if bool((acc >= 0.95).all()):
                return step, acc
    return None, acc


@pytest.mark.parametrize("name", NAMES)
def test_overfits_tiny_synthetic_set(name):
    x, y = _data(64, FEATURES)
    torch.manual_seed(0)
    model = MODULES[name].build(FEATURES, A, C, {})  # default options
    steps, acc = _overfit(model, x, y, max_steps=300)
    assert steps is not None, f"{name}: per-annotator training accuracy {acc.tolist()} after 300 steps"


@pytest.mark.parametrize("name", ["heads"])
def test_overfits_tiny_image_set(name):
    x, y = _data(64, IMAGE)
    torch.manual_seed(0)
    steps, acc = _overfit(_build(name, IMAGE), x, y, max_steps=300)
    assert steps is not None, f"{name}: per-annotator training accuracy {acc.tolist()} after 300 steps"


def test_training_is_deterministic_under_a_seed():
    x, y = _data(16, FEATURES)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = _build("padl")
        _overfit(model, x, y, max_steps=5)
        runs.append(model.eval()(x).logits)
    _close(runs[0], runs[1], atol=0, rtol=0)


# ----------------------------------------------------------------------------------------- documented structure


def test_heads_has_one_linear_head_per_annotator():
    model = _build("heads", hidden=16)
    assert isinstance(model.heads, AnnotatorLinear)
    assert model.heads.weight.shape == (A, 16, C) and model.heads.bias.shape == (A, C)
    x, _ = _data(6, FEATURES)
    h = model.encoder(x)
    expected = torch.stack([h @ model.heads.weight[a] + model.heads.bias[a] for a in range(A)], 1)
    _close(model(x).logits, expected)
    assert model(x, None).aux_loss.item() == 0.0


def test_padl_sigma_nonnegative_and_modes():
    model = _build("padl")
    with torch.no_grad():  # push weights negative: σ = |.| must stay >= 0 regardless
        for p in model.parameters():
            p.sub_(1.0)
    x, y = _data(8, FEATURES)
    comp = model.components(x)
    assert (comp.global_sigma >= 0).all() and (comp.annotator_sigma >= 0).all()
    assert comp.global_sigma.shape == (8, C) and comp.annotator_sigma.shape == (8, A, C)
    _close(comp.annotator_mu, comp.global_mu.unsqueeze(1) + comp.residual)
    assert ((comp.entropy >= 0) & (comp.entropy <= 1 + 1e-6)).all() and not comp.entropy.requires_grad

    model.eval()
    first, second = model(x, y), model(x, y)
    _close(first.logits, second.logits, atol=0, rtol=0)  # deterministic
    _close(first.logits, comp.annotator_mu)  # prediction uses μ_k
    _close(first.aux_loss, second.aux_loss, atol=0, rtol=0)

    model.train()
    a, b = model(x, y), model(x, y)
    assert not torch.equal(a.logits, b.logits), "training-mode logits must be sampled"
    assert not torch.equal(a.aux_loss, b.aux_loss), "the global branch must be sampled in training mode"


def test_padl_aux_loss_is_the_weighted_global_cross_entropy():
    x, y = _data(8, FEATURES)
    model = _build("padl", global_weight=0.5).eval()
    mu_g = model.components(x).global_mu.unsqueeze(1).expand(-1, A, -1)
    expected = 0.5 * _observed_ce(mu_g, y)
    _close(model(x, y).aux_loss, expected)
    assert model(x, None).aux_loss.item() == 0.0  # no labels
    assert model(x, torch.full_like(y, -1)).aux_loss.item() == 0.0  # nothing observed
    assert _build("padl", global_weight=0.0)(x, y).aux_loss.item() == 0.0
    with pytest.raises(ValueError, match=r"labels must have shape \[B, A\]"):
        model(x, y[:, :2])


def test_madl_confusion_rows_sum_to_one_and_initial_accuracy_is_eta():
    x, y = _data(32, FEATURES)
    model = _build("madl").eval()
    conf = model.confusion_matrices(x)
    assert conf.shape == (32, A, C, C) and (conf >= 0).all()
    _close(conf.sum(-1), torch.ones(32, A, C), atol=1e-5, rtol=0)
    p_correct = model.correct_probability(x)
    assert p_correct.shape == (32, A)
    assert abs(p_correct.mean().item() - 0.8) < 0.02 and ((p_correct - 0.8).abs() < 0.05).all()
    # The logits are the annotator distribution: logsumexp over true classes, i.e. log Σ_c p(c|x) P[c, k].
    p_y = model.ground_truth_logits(x).softmax(-1)
    expected = torch.log(torch.einsum("bc,back->bak", p_y, conf))
    logits = model(x, y).logits
    _close(logits, expected, atol=1e-5, rtol=1e-5)
    _close(logits.logsumexp(-1), torch.zeros(32, A), atol=1e-5, rtol=0)
    assert model(x, y).aux_loss.item() == 0.0


@pytest.mark.parametrize("confusion", ["full", "diagonal", "isotropic"])
@pytest.mark.parametrize("eta", [0.6, 0.9])
def test_madl_prior_eta_for_every_confusion_type(confusion, eta):
    x, _ = _data(16, FEATURES)
    model = _build("madl", confusion=confusion, eta=eta, num_classes=4).eval()
    conf = model.confusion_matrices(x)
    _close(conf.sum(-1), torch.ones(16, A, 4), atol=1e-5, rtol=0)
    assert abs(model.correct_probability(x).mean().item() - eta) < 0.03


def test_madl_instance_features_are_detached_and_optional():
    x, y = _data(16, FEATURES)
    model = _build("madl").train()
    # Gradients of the confusion matrices alone must not reach the encoder (instance features are detached).
    conf = model.confusion_matrices(x)
    (conf * torch.randn_like(conf)).sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in model.encoder.parameters())
    assert model.instance_embed.weight.grad is not None and model.instance_embed.weight.grad.any()
    per_annotator = _build("madl", instance=False).eval()
    conf = per_annotator.confusion_matrices(x)
    _close(conf, conf[:1].expand_as(conf))  # independent of the item


def test_qumatl_has_exactly_one_query_per_annotator():
    for num_annotators in (1, 4, 7):
        model = _build("qumatl", num_annotators=num_annotators, d_model=16)
        assert model.queries.shape == (num_annotators, 16)
        assert model.head.weight.shape == (num_annotators, 16, C)
        assert [n for n, _ in model.named_parameters() if n == "queries"] == ["queries"]
    model = _build("qumatl", num_layers=2)
    assert len(model.layers) == 2
    assert all(isinstance(layer.self_attn, torch.nn.MultiheadAttention) for layer in model.layers)
    assert all(layer.cross_attn.batch_first and layer.self_attn.batch_first for layer in model.layers)
    x, _ = _data(5, FEATURES)
    attn = model.attention_maps(x)
    assert attn.shape == (5, A, model.num_tokens) == (5, A, 4)
    _close(attn.sum(-1), torch.ones(5, A))
    img = _build("qumatl", IMAGE, num_tokens=4)  # 8x8 -> 2x2 map after two conv blocks -> 4 patch tokens
    assert img.num_tokens == 4 and img.attention_maps(_data(3, IMAGE)[0]).shape == (3, A, 4)


def test_qumatl_queries_interact_through_self_attention():
    """Annotator correlation: changing one annotator's query changes the other annotators' outputs."""
    model = _build("qumatl").eval()
    x, _ = _data(4, FEATURES)
    before = model(x).logits
    with torch.no_grad():
        model.queries[0].add_(1.0)
    after = model(x).logits
    assert not torch.allclose(before[:, 1:], after[:, 1:])


def _qumatl_per_item(model, x):
    """QuMATL's forward written out with the first layer's queries repeated per item (the paper's form)."""
    tokens = model.tokens(x)
    q = model.queries.unsqueeze(0).expand(len(x), -1, -1)
    for layer in model.layers:
        q = layer.norm1(q + layer.drop(layer.self_attn(q, q, q, need_weights=False)[0]))
        q = layer.norm2(q + layer.drop(layer.cross_attn(q, tokens, tokens, need_weights=False)[0]))
        q = layer.norm3(q + layer.drop(layer.ffn(q)))
    return model.head(q)


def test_qumatl_first_layer_self_attention_once_per_batch_equals_the_per_item_form():
    model = _build("qumatl", num_layers=2)
    x, _ = _data(6, FEATURES)
    _close(model(x).logits, _qumatl_per_item(model, x))                 # training mode, no dropout
    grads = torch.autograd.grad(model(x).logits.square().sum(), model.queries)[0]
    expected = torch.autograd.grad(_qumatl_per_item(model, x).square().sum(), model.queries)[0]
    _close(grads, expected, atol=1e-5, rtol=1e-4)
    # with dropout, items draw their own masks: the per-item form is kept (same draws under the same seed)
    noisy = _build("qumatl", num_layers=2, dropout=0.3)
    torch.manual_seed(5)
    got = noisy(x).logits
    torch.manual_seed(5)
    _close(got, _qumatl_per_item(noisy, x))


# ----------------------------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("name", NAMES)
def test_build_rejects_unknown_and_ill_typed_options(name):
    build = MODULES[name].build
    with pytest.raises(ValueError, match=rf"model '{name}' has no option 'no_such_option'; its options are: hidden"):
        build(FEATURES, A, C, {"no_such_option": 1})
    owner = f"model '{name}': option"
    with pytest.raises(ValueError, match=rf"^{owner} 'hidden' expects int; got 'wide'$"):
        build(FEATURES, A, C, {"hidden": "wide"})
    with pytest.raises(ValueError, match=rf"^{owner} 'hidden' expects int; got True$"):
        build(FEATURES, A, C, {"hidden": True})
    with pytest.raises(ValueError, match=rf"^{owner} 'dropout' expects float; got 'x'$"):
        build(FEATURES, A, C, {"dropout": "x"})
    for dropout in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=rf"^{owner} 'dropout' must lie in \[0, 1\); got {dropout}$"):
            build(FEATURES, A, C, {"dropout": dropout})
    with pytest.raises(ValueError, match=rf"^{owner} 'hidden' must be >= 1; got 0$"):
        build(FEATURES, A, C, {"hidden": 0})
    with pytest.raises(ValueError, match=rf"^{owner} 'depth' must be >= 0; got -1$"):
        build(FEATURES, A, C, {"depth": "-1"})
    assert isinstance(build(FEATURES, A, C, {"hidden": 1, "depth": 0, "dropout": 0.0}), AnnotatorModel)  # edges
    # Command-line strings are parsed to the declared types.
    assert isinstance(build(FEATURES, A, C, {"hidden": "8", "dropout": "0.1"}), AnnotatorModel)


@pytest.mark.parametrize("name, option, value, bound", [
    ("madl", "confusion", "weird", "be one of full, diagonal, isotropic"),
    ("madl", "eta", 1.0, r"lie in \(0, 1\)"),
    ("madl", "eta", 0.0, r"lie in \(0, 1\)"),
    ("madl", "ap_init_scale", 0.0, r"lie in \(0, 1\]"),
    ("madl", "embed_dim", 0, "be >= 1"),
    ("madl", "ap_hidden", 0, "be >= 1"),
    ("padl", "global_weight", -1.0, "be >= 0"),
    ("padl", "global_weight", float("inf"), "be >= 0"),
    ("padl", "branch_width", -1, "be >= 0"),
    *[("qumatl", option, 0, "be >= 1") for option in ("d_model", "num_heads", "num_layers", "num_tokens", "ffn_dim")],
])
def test_build_rejects_values_outside_an_options_declared_range(name, option, value, bound):
    with pytest.raises(ValueError, match=rf"^model '{name}': option '{option}' must {bound}; got {value!r}$"):
        MODULES[name].build(FEATURES, A, C, {option: value})


def test_build_rejects_bad_model_specific_values():
    assert MODULES["madl"].build(FEATURES, A, C, {"ap_init_scale": 1.0, "eta": 0.5})  # the closed ends are in
    assert MODULES["padl"].build(FEATURES, A, C, {"global_weight": 0.0, "branch_width": 0})
    with pytest.raises(ValueError, match=r"d_model=10 must be divisible by num_heads=4"):
        MODULES["qumatl"].build(FEATURES, A, C, {"d_model": 10})
    with pytest.raises(ValueError, match=r"option 'sample' expects true/false; got 'maybe'"):
        MODULES["padl"].build(FEATURES, A, C, {"sample": "maybe"})


@pytest.mark.parametrize("name", NAMES)
def test_build_rejects_input_specs_it_cannot_handle(name):
    build = MODULES[name].build
    with pytest.raises(TypeError, match=rf"model '{name}': input_spec must be a simlabel_ext.models.InputSpec"):
        build(SimpleNamespace(kind="features", shape=(D,)), A, C, {})
    forged = object.__new__(InputSpec)  # an input kind this version does not know (bypasses validation)
    object.__setattr__(forged, "kind", "audio")
    object.__setattr__(forged, "shape", (16000,))
    with pytest.raises(ValueError, match=rf"model '{name}' cannot handle input kind 'audio'"):
        build(forged, A, C, {})
    with pytest.raises(ValueError, match=r"depth \(conv blocks of an image encoder\) must be an integer >= 1"):
        build(IMAGE, A, C, {"depth": 0})
    with pytest.raises(ValueError, match=r"need at least 1 annotator and 2 classes"):
        build(FEATURES, A, 1, {})
    model = build(FEATURES, A, C, SMALL[name])
    with pytest.raises(ValueError, match=r"expects inputs of shape \[B, 12\]; got \(2, 5\)"):
        model(torch.zeros(2, 5))


# ---------------------------------------------------------------------------------------------------- encoders


def test_build_encoder_by_input_kind():
    enc, dim = build_encoder(FEATURES, hidden=24, depth=2, dropout=0.0)
    assert dim == 24 and enc(torch.randn(3, D)).shape == (3, 24)
    enc, dim = build_encoder(FEATURES, hidden=24, depth=0, dropout=0.0)
    assert dim == D and torch.equal(enc(x := torch.randn(3, D)), x)
    enc, dim = build_encoder(InputSpec("image", (3, 20, 9)), hidden=8, depth=3, dropout=0.2)
    assert dim == 8 and enc(torch.randn(2, 3, 20, 9)).shape == (2, 8)
    enc, dim = build_encoder(InputSpec("image", (1, 1, 1)), hidden=8, depth=2, dropout=0.0)  # no pooling possible
    assert enc(torch.randn(2, 1, 1, 1)).shape == (2, 8)


def test_token_encoder_counts():
    enc, t = build_token_encoder(FEATURES, d_model=8, num_tokens=5, hidden=16, depth=1)
    assert t == 5 and enc(torch.randn(2, D)).shape == (2, 5, 8)
    enc, t = build_token_encoder(InputSpec("image", (3, 32, 32)), d_model=8, num_tokens=16, hidden=4, depth=2)
    assert t == 16 and enc(torch.randn(2, 3, 32, 32)).shape == (2, 16, 8)


def test_annotator_linear_matches_a_loop_over_annotators():
    layer = AnnotatorLinear(3, 5, 2)
    shared, own = torch.randn(4, 5), torch.randn(4, 3, 5)
    _close(
        layer(shared), torch.stack([shared @ layer.weight[a] + layer.bias[a] for a in range(3)], 1)
    )
    _close(
        layer(own), torch.stack([own[:, a] @ layer.weight[a] + layer.bias[a] for a in range(3)], 1)
    )
    with pytest.raises(ValueError, match=r"AnnotatorLinear expects \[B, 5\] or \[B, 3, 5\]"):
        layer(torch.randn(4, 6))
    assert layer.weight.abs().max().item() <= 1 / math.sqrt(5)  # nn.Linear's default init bound
