"""``madl`` — Multi-annotator Deep Learning: ground-truth classifier + annotator-performance confusion matrices.

Reference: M. Herde, D. Huseljic, B. Sick. "Multi-annotator Deep Learning: A Probabilistic Framework for
Classification." arXiv:2304.02539 (2023), TMLR 2023; public code github.com/ies-research/multi-annotator-deep-
learning. Cited as MaDL [6] by the SimLabel paper.

MaDL factorises annotator ``a``'s label distribution for item ``x`` through the unknown true class ``y``::

    p(z = k | x, a) = Σ_c  p(y = c | x)  ·  P(z = k | y = c, x, a)

with a *ground-truth (GT) model* ``p(y | x)`` and an *annotator-performance (AP) model* producing one
instance-dependent confusion matrix per (item, annotator). Architecture (the paper's "learned" instance
embedding with outer-product and residual options, all on by default)::

    h     = encoder(x)                                   [B, H]       (MLP / small conv net)
    gt    = Linear(h)                                    [B, C]       GT logits, log p(y|x) = log_softmax(gt)
    ē_a   = Embedding(A, E)                              [A, E]       annotator embedding (= Linear on one-hot)
    ē_x   = Linear(stopgrad(h))                          [B, E]       instance embedding, detached from the GT model
    o     = OuterProduct(ē_a + ē_x)                      [B, A, E]    PNN outer-product interaction
    u     = ReLU( MLP(cat[ē_a, ē_x, o]) + ē_a )          [B, A, E]    MLP: Linear-LN-ReLU-Linear-LN, residual ē_a
    L     = Linear(u) -> [B, A, C, C]                                 confusion logits ("full")
    log P = log_softmax(L, dim=-1)                                    each row c (true class) sums to 1 over k
    logits[b, a, k] = logsumexp_c( log p(y=c|x_b) + log P[b, a, c, k] )   [B, A, C]  (log-probabilities)

The AP output bias encodes the paper's prior annotator performance η (option ``eta``, 0.8): with bias
``log(η (C-1) / (1-η))`` on the diagonal and 0 elsewhere, every row puts mass η on its true class. The output
weight is initialised small (``ap_init_scale`` × the ``nn.Linear`` default) so that P(correct) ≈ η for every
item and annotator at the start. ``confusion="diagonal"`` / ``"isotropic"`` predict only the ``C`` / one diagonal
logit(s) with off-diagonal logits fixed at ``-log(C-1)`` (bias ``log(η/(1-η))``), as in the paper.
:meth:`MaDLModel.confusion_matrices` returns ``P [B, A, C, C]`` and :meth:`MaDLModel.ground_truth_logits` the GT
logits; the GT model is the consensus classifier.

``aux_loss`` is 0 (a 0-dim zero). The paper's loss is the (annotator-weighted) NLL of the observed labels under
``logits`` plus a Gamma prior on the bandwidth of the kernel that computes those annotator weights (Eqs. 21-25).
The NLL is exactly what the framework's loss on ``logits`` already computes (log-probabilities as logits), so it
is not repeated here; the annotator weighting and its Gamma prior change how the framework weights annotators,
which SimLabel's own similarity weighting replaces, so they are not implemented. The prior η is the bias
initialisation above. Other deviations: the BatchNorm layers of the reference AP MLP (``Linear -> BN -> ReLU ->
Linear -> BN``) are LayerNorms here — BatchNorm would mix the annotators of a batch and make training and
evaluation differ, and without any normalisation the residual ReLU leaves many units dead and memorisation
stalls; the paper's instance-independent variant is ``instance=false``.

Options:

=================  =====  ========  ===================================================================
``hidden``         int    128       encoder width (MLP units / conv channels)
``depth``          int    2         encoder blocks (0 allowed for features; >= 1 conv blocks for images)
``dropout``        float  0.0       dropout after each encoder block, in [0, 1)
``embed_dim``      int    16        size E of the annotator and instance embeddings
``ap_hidden``      int    128       hidden width of the AP MLP
``eta``            float  0.8       prior probability of a correct annotation, in (0, 1)
``confusion``      str    full      confusion-matrix type: full | diagonal | isotropic
``instance``       bool   true      AP model sees the (detached) instance embedding; false: per-annotator only
``outer_product``  bool   true      add the outer-product interaction of annotator and instance embedding
``residual``       bool   true      add the annotator embedding as a residual after the AP MLP
``ap_init_scale``  float  0.1       scale of the AP output weight at initialisation (0 < s <= 1)
=================  =====  ========  ===================================================================
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from simlabel_ext.models import (
    AnnotatorModel,
    InputSpec,
    ModelOutput,
    build_encoder,
    check_input_spec,
)
from simlabel_ext.registry import ModelSpec, OptionSpec, hookimpl, resolve_options

NAME = "madl"
CONFUSION_TYPES = ("full", "diagonal", "isotropic")

OPTIONS = (
    OptionSpec("hidden", int, 128, "encoder width (MLP units / conv channels)", within="[1, inf)"),
    OptionSpec("depth", int, 2, "encoder blocks (MLP layers, 0 allowed for features; conv blocks >= 1 for images)",
               within="[0, inf)"),
    OptionSpec("dropout", float, 0.0, "dropout after each encoder block", within="[0, 1)"),
    OptionSpec("embed_dim", int, 16, "size of the annotator and instance embeddings of the AP model",
               within="[1, inf)"),
    OptionSpec("ap_hidden", int, 128, "hidden width of the annotator-performance MLP", within="[1, inf)"),
    OptionSpec("eta", float, 0.8, "prior probability of a correct annotation (confusion bias init)", within="(0, 1)"),
    OptionSpec("confusion", str, "full", "confusion-matrix type", choices=CONFUSION_TYPES),
    OptionSpec("instance", bool, True, "AP model uses the (detached) instance embedding; false: per-annotator only"),
    OptionSpec("outer_product", bool, True, "outer-product interaction of annotator and instance embeddings"),
    OptionSpec("residual", bool, True, "annotator embedding added as a residual after the AP MLP"),
    OptionSpec("ap_init_scale", float, 0.1, "scale of the AP output weight at init (P(correct) ~ eta at start)",
               within="(0, 1]"),
)


class OuterProduct(nn.Module):
    """PNN outer-product layer: ``f [.., E] -> einsum(f ⊗ f, W [out, E, E]) [.., out]`` (Qu et al. 2016)."""

    def __init__(self, embed_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(out_dim, embed_dim, embed_dim)))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...e,...f,pef->...p", f, f, self.weight)


class MaDLModel(AnnotatorModel):
    """GT classifier ``p(y|x)`` and AP model ``P(z|y, x, a)``; logits are ``log p(z|x, a)``."""

    def __init__(
        self,
        input_spec: InputSpec,
        num_annotators: int,
        num_classes: int,
        hidden: int,
        depth: int,
        dropout: float,
        embed_dim: int,
        ap_hidden: int,
        eta: float,
        confusion: str,
        instance: bool,
        outer_product: bool,
        residual: bool,
        ap_init_scale: float,
    ) -> None:
        super().__init__(input_spec, num_annotators, num_classes)
        c, e = num_classes, embed_dim
        self.eta, self.confusion, self.use_instance, self.use_residual = float(eta), confusion, instance, residual
        self.encoder, h = build_encoder(input_spec, hidden, depth, dropout)
        self.gt_head = nn.Linear(h, c)
        self.annotator_embed = nn.Embedding(num_annotators, e)
        self.instance_embed = nn.Linear(h, e) if instance else None
        self.outer = OuterProduct(e, e) if (instance and outer_product) else None
        fields = 1 + int(instance) + int(self.outer is not None)
        self.ap_mlp = nn.Sequential(
            nn.Linear(fields * e, ap_hidden),
            nn.LayerNorm(ap_hidden),
            nn.ReLU(),
            nn.Linear(ap_hidden, e),
            nn.LayerNorm(e),
        )
        n_out = {"full": c * c, "diagonal": c, "isotropic": 1}[confusion]
        self.ap_output = nn.Linear(e, n_out)
        with torch.no_grad():
            self.ap_output.weight.mul_(ap_init_scale)
            if confusion == "full":
                bias = math.log(eta * (c - 1) / (1 - eta)) * torch.eye(c)
                self.ap_output.bias.copy_(bias.flatten())
            else:
                self.ap_output.bias.fill_(math.log(eta / (1 - eta)))
        self.register_buffer("eye", torch.eye(c), persistent=False)

    def ground_truth_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """The GT model's class logits ``[B, C]`` (the consensus classifier)."""
        return self.gt_head(self.encoder(inputs))

    def _confusion_logits(self, h: torch.Tensor) -> torch.Tensor:
        b, a, c = h.shape[0], self.num_annotators, self.num_classes
        ann = self.annotator_embed.weight.unsqueeze(0).expand(b, -1, -1)  # [B, A, E]
        fields = [ann]
        if self.instance_embed is not None:
            inst = self.instance_embed(h.detach()).unsqueeze(1).expand(-1, a, -1)  # [B, A, E]
            fields.append(inst)
            if self.outer is not None:
                fields.append(self.outer(ann + inst))
        u = self.ap_mlp(torch.cat(fields, -1))
        u = F.relu(u + ann) if self.use_residual else F.relu(u)
        out = self.ap_output(u)  # [B, A, n_out]
        if self.confusion == "full":
            return out.view(b, a, c, c)
        off = -math.log(c - 1)
        diag = out.expand(b, a, c) if self.confusion == "isotropic" else out
        return self.eye * diag.unsqueeze(-1) + (1 - self.eye) * off

    def _parts(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(inputs)
        return F.log_softmax(self.gt_head(h), -1), F.log_softmax(self._confusion_logits(h), -1)

    def confusion_matrices(self, inputs: torch.Tensor) -> torch.Tensor:
        """``P [B, A, C, C]``: ``P[b, a, c, k] = P(annotator a says k | true class c, x_b)``; rows sum to 1."""
        return self._parts(inputs)[1].exp()

    def correct_probability(self, inputs: torch.Tensor) -> torch.Tensor:
        """``[B, A]``: probability that annotator ``a`` labels item ``b`` correctly, Σ_c p(c|x) P[b, a, c, c]."""
        log_p, log_conf = self._parts(inputs)
        return (log_p.exp().unsqueeze(1) * log_conf.exp().diagonal(dim1=-2, dim2=-1)).sum(-1)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> ModelOutput:
        log_p, log_conf = self._parts(inputs)
        logits = torch.logsumexp(log_p[:, None, :, None] + log_conf, dim=2)  # [B, A, C]
        return ModelOutput(logits, logits.new_zeros(()))


def build(
    input_spec: InputSpec, num_annotators: int, num_classes: int, options: Mapping[str, Any] | None = None
) -> MaDLModel:
    """Build the ``madl`` model; unknown or ill-typed options and unsupported inputs raise a clear error."""
    owner = f"model {NAME!r}"
    opts = resolve_options(OPTIONS, dict(options or {}), owner)
    check_input_spec(input_spec, owner=owner)
    return MaDLModel(input_spec, num_annotators, num_classes, **opts)


@hookimpl
def simlabel_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            NAME,
            build=build,
            option_specs=OPTIONS,
            description="MaDL (Herde et al. 2023): ground-truth classifier + per-instance annotator confusion matrices",
            input_kinds=("features", "image"),
        )
    ]
