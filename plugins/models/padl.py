"""``padl`` — Preference-involved Annotation Distribution Learning, classification version.

Reference: Z. Liao, S. Hu, Y. Xie, Y. Xia. "Modeling annotator preference and stochastic annotation error for
medical image segmentation." Medical Image Analysis 92 (2024) 103028 (arXiv:2111.13410); public code
github.com/Merrical/PADL. Cited as PADL [12] by the SimLabel paper.

PADL models every annotation as a sample of a Gaussian over logits. A *stochastic error modelling* (SEM)
module predicts the meta (global) distribution N(μ_g, σ_g); one *human preference modelling* (HPM) module per
annotator predicts a residual r_k on top of μ_g and the annotator's own stochastic error σ_k. The paper works
on per-pixel sigmoid maps; here each item is one "pixel" with C softmax classes::

    h    = encoder(x)                                            [B, H]   (MLP / small conv net)
    μ_g  = Linear(h)                                              [B, C]   meta logits
    e    = stopgrad( H(softmax(μ_g)) / log C )                    [B, 1]   normalised entropy in [0, 1]
    σ_g  = | Linear( cat[ (1 + e) · ReLU(Linear(h)), μ_g ] ) |    [B, C]   SEM error, σ_g >= 0
    r_k  = Linear_k( cat[ (1 + e) · ReLU(Linear_k(h)), μ_g ] )    [B, A, C] preference residual
    μ_k  = μ_g + r_k                                              [B, A, C]
    σ_k  = | Linear_k( cat[ (1 + e) · ReLU(Linear_k(h)), μ_k ] ) | [B, A, C] annotator error, σ_k >= 0

The ``(1 + e)`` factor is the paper's entropy modulation: where the meta prediction is uncertain the
annotator-specific branches get a larger input. All ``Linear_k`` are batched per-annotator weights
(:class:`simlabel_ext.models.AnnotatorLinear`), no loop over annotators; the reduction width of every branch is
``C`` as in the reference code (option ``branch_width`` widens it).

Training mode (option ``sample``, default on): reparameterised samples are the outputs, one per annotator,
``logits[:, k] = μ_k + σ_k ⊙ ε_k`` and ``global[:, k] = μ_g + σ_g ⊙ ε'_k`` (ε, ε' ~ N(0, I)), exactly as the
reference code draws one global sample per rater. Evaluation mode: ``logits = μ_k`` (deterministic), and the
global branch uses ``μ_g``.

Loss split. The paper's loss is ``Σ_k [ℓ(global_k, y_k) + ℓ(rater_k, y_k)]``. The annotator term is left to
the framework's loss on ``logits`` (SimLabel or plain CE on observed entries); ``aux_loss`` is the global
term: ``global_weight ×`` the mean cross-entropy of ``global[:, k]`` against the observed labels ``y_k`` of the
batch (0 when ``labels`` is None or nothing is observed).

Deviations from the paper: softmax/cross-entropy instead of per-pixel sigmoid/BCE; the BatchNorm inside the
reduction layers is dropped (a batch of items is not a feature map, and per-sample layers keep training and
evaluation identical); ``e`` is the entropy normalised by ``log C`` (the paper's ``log2`` for 2 classes).

Options:

=================  =====  =======  ====================================================================
``hidden``         int    128      encoder width (MLP units / conv channels)
``depth``          int    2        encoder blocks (0 allowed for features; >= 1 conv blocks for images)
``dropout``        float  0.0      dropout after each encoder block, in [0, 1)
``global_weight``  float  1.0      weight (>= 0) of the global (SEM) branch's cross-entropy in ``aux_loss``
``sample``         bool   true     reparameterised samples μ + σ·ε as training-mode outputs (false: means)
``branch_width``   int    0        width of the SEM/HPM reduction layers; 0 = C (as in the paper)
=================  =====  =======  ====================================================================
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from simlabel_ext.models import (
    AnnotatorLinear,
    AnnotatorModel,
    InputSpec,
    ModelOutput,
    build_encoder,
    check_input_spec,
)
from simlabel_ext.registry import ModelSpec, OptionSpec, hookimpl, resolve_options

NAME = "padl"

OPTIONS = (
    OptionSpec("hidden", int, 128, "encoder width (MLP units / conv channels)", within="[1, inf)"),
    OptionSpec("depth", int, 2, "encoder blocks (MLP layers, 0 allowed for features; conv blocks >= 1 for images)",
               within="[0, inf)"),
    OptionSpec("dropout", float, 0.0, "dropout after each encoder block", within="[0, 1)"),
    OptionSpec("global_weight", float, 1.0, "weight of the global (SEM) branch cross-entropy in aux_loss",
               within="[0, inf)"),
    OptionSpec("sample", bool, True, "training-mode outputs are reparameterised samples mu + sigma*eps (false: means)"),
    OptionSpec("branch_width", int, 0, "width of the SEM/HPM reduction layers; 0 = number of classes (as the paper)",
               within="[0, inf)"),
)


class PADLComponents(NamedTuple):
    """The Gaussian parameters of one forward pass (all logits-space)."""

    global_mu: torch.Tensor  # [B, C]
    global_sigma: torch.Tensor  # [B, C], >= 0
    annotator_mu: torch.Tensor  # [B, A, C] = global_mu + residual
    annotator_sigma: torch.Tensor  # [B, A, C], >= 0
    residual: torch.Tensor  # [B, A, C]
    entropy: torch.Tensor  # [B, 1], normalised entropy of softmax(global_mu), detached


class PADLModel(AnnotatorModel):
    """SEM module (global μ_g, σ_g) and ``A`` HPM modules (residual r_k, σ_k) on a shared encoder."""

    def __init__(
        self,
        input_spec: InputSpec,
        num_annotators: int,
        num_classes: int,
        hidden: int,
        depth: int,
        dropout: float,
        global_weight: float,
        sample: bool,
        branch_width: int,
    ) -> None:
        super().__init__(input_spec, num_annotators, num_classes)
        a, c = num_annotators, num_classes
        width = branch_width or c
        self.global_weight = float(global_weight)
        self.sample = bool(sample)
        self.encoder, h = build_encoder(input_spec, hidden, depth, dropout)
        # SEM: meta logits and the average stochastic error.
        self.global_mu = nn.Linear(h, c)
        self.global_sigma_reduce = nn.Linear(h, width)
        self.global_sigma_out = nn.Linear(width + c, c)
        # HPM, one per annotator (batched weights [A, ., .]).
        self.residual_reduce = AnnotatorLinear(a, h, width)
        self.residual_out = AnnotatorLinear(a, width + c, c)
        self.sigma_reduce = AnnotatorLinear(a, h, width)
        self.sigma_out = AnnotatorLinear(a, width + c, c)

    def components(self, inputs: torch.Tensor) -> PADLComponents:
        """μ_g, σ_g, μ_k, σ_k, r_k and the normalised entropy for a batch (no sampling)."""
        h = self.encoder(inputs)
        mu_g = self.global_mu(h)
        p = mu_g.detach().softmax(-1)
        entropy = -(p * p.clamp_min(1e-12).log()).sum(-1, keepdim=True) / math.log(self.num_classes)
        mod = 1.0 + entropy  # [B, 1]
        sigma_g = self.global_sigma_out(torch.cat([mod * F.relu(self.global_sigma_reduce(h)), mu_g], -1)).abs()
        mu_g_k = mu_g.unsqueeze(1).expand(-1, self.num_annotators, -1)
        mod_k = mod.unsqueeze(1)  # [B, 1, 1]
        residual = self.residual_out(torch.cat([mod_k * F.relu(self.residual_reduce(h)), mu_g_k], -1))
        mu_k = mu_g_k + residual
        sigma_k = self.sigma_out(torch.cat([mod_k * F.relu(self.sigma_reduce(h)), mu_k], -1)).abs()
        return PADLComponents(mu_g, sigma_g, mu_k, sigma_k, residual, entropy)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> ModelOutput:
        comp = self.components(inputs)
        shape = comp.annotator_mu.shape
        mu_g = comp.global_mu.unsqueeze(1).expand(shape)
        if self.training and self.sample:
            logits = comp.annotator_mu + comp.annotator_sigma * torch.randn_like(comp.annotator_mu)
            noise = torch.randn(shape, dtype=mu_g.dtype, device=mu_g.device)
            global_logits = mu_g + comp.global_sigma.unsqueeze(1) * noise
        else:
            logits, global_logits = comp.annotator_mu, mu_g
        aux = logits.new_zeros(())
        if labels is not None and self.global_weight > 0:
            if labels.shape != shape[:2]:
                raise ValueError(f"labels must have shape [B, A] = {tuple(shape[:2])}; got {tuple(labels.shape)}")
            observed = labels >= 0
            if bool(observed.any()):
                aux = self.global_weight * F.cross_entropy(global_logits[observed], labels[observed].long())
        return ModelOutput(logits, aux)


def build(
    input_spec: InputSpec, num_annotators: int, num_classes: int, options: Mapping[str, Any] | None = None
) -> PADLModel:
    """Build the ``padl`` model; unknown or ill-typed options and unsupported inputs raise a clear error."""
    opts = resolve_options(OPTIONS, dict(options or {}), f"model {NAME!r}")
    check_input_spec(input_spec, owner=f"model {NAME!r}")
    return PADLModel(input_spec, num_annotators, num_classes, **opts)


@hookimpl
def simlabel_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            NAME,
            build=build,
            option_specs=OPTIONS,
            description="PADL (Liao et al. 2024): global Gaussian + entropy-modulated per-annotator residuals",
            input_kinds=("features", "image"),
        )
    ]
