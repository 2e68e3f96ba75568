"""``qumatl`` — Query-based Multi-annotator Tendency Learning, one learnable query per annotator.

Reference: L. Zhang, Z. Lian, H. Liu, T. Takebe, Y. Nakashima. "QuMATL: Query-based Multi-annotator Tendency
Learning." arXiv:2503.15237 (2025) (extended as "QuMAB", arXiv:2507.17653). Cited as QuMATL [28] by the SimLabel
paper.

Instead of one model (or one head on a pooled feature) per annotator, QuMATL represents every annotator by a
light-weight learnable query. The queries share a self-attention layer — so each annotator's representation is
informed by the others (inter-annotator correlation acts as an implicit regulariser for sparsely labelled
annotators) — and cross-attend to the encoder's tokens, each annotator looking at the parts of the input that
drive its own labelling tendency; a per-annotator head maps its query to class logits::

    t     = TokenEncoder(x)                     [B, T, d]   tokens (+ learned positions, LayerNorm)
              features: MLP, then Linear to T·d split into T tokens
              images:   conv trunk, 1x1 conv to d, pooled to a <= sqrt(T) x sqrt(T) grid of patch tokens
    q     = Q                                   [A, d]      exactly A learnable queries, broadcast to [B, A, d]
    repeat num_layers times (post-norm Transformer decoder layer, DETR style):
        q = LN(q + SelfAttn(q, q, q))                       annotator correlation (shared across annotators)
        q = LN(q + CrossAttn(q, t, t))                      each annotator attends to the input tokens
        q = LN(q + FFN(q))
    logits[:, a] = q[:, a] @ W_a + b_a          [B, A, C]   per-annotator head, W: [A, d, C] (batched)

Attention is ``nn.MultiheadAttention(batch_first=True)``. :meth:`QuMATLModel.attention_maps` returns the last
layer's cross-attention weights ``[B, A, T]`` (the paper's per-annotator focus maps). ``aux_loss`` is 0: the paper
trains with the per-annotator cross-entropy only, which the framework's loss on ``logits`` computes.

Deviations: the paper uses a large pretrained backbone (image/video) whose patch tokens are the keys; here the
backbone is the small shared encoder of :mod:`simlabel_ext.models.encoders` (precomputed embeddings can be fed as
feature vectors and are then split into ``num_tokens`` tokens by a linear projection).

Options:

===============  =====  =======  ======================================================================
``hidden``       int    128      encoder width (MLP units / conv channels)
``depth``        int    2        encoder blocks (0 allowed for features; >= 1 conv blocks for images)
``dropout``      float  0.0      dropout in the encoder, attention and FFN, in [0, 1)
``d_model``      int    64       query / token width d (divisible by ``num_heads``)
``num_heads``    int    4        attention heads
``num_layers``   int    2        decoder layers (self-attention + cross-attention + FFN)
``num_tokens``   int    8        tokens T a feature vector is split into (images: <= T patch tokens)
``ffn_dim``      int    128      hidden width of the decoder FFN
===============  =====  =======  ======================================================================
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from simlabel_ext.models import (
    AnnotatorLinear,
    AnnotatorModel,
    InputSpec,
    ModelOutput,
    build_token_encoder,
    check_input_spec,
)
from simlabel_ext.registry import ModelSpec, OptionSpec, hookimpl, resolve_options

NAME = "qumatl"

OPTIONS = (
    OptionSpec("hidden", int, 128, "encoder width (MLP units / conv channels)", within="[1, inf)"),
    OptionSpec("depth", int, 2, "encoder blocks (MLP layers, 0 allowed for features; conv blocks >= 1 for images)",
               within="[0, inf)"),
    OptionSpec("dropout", float, 0.0, "dropout in the encoder, attention and FFN", within="[0, 1)"),
    OptionSpec("d_model", int, 64, "query / token width (divisible by num_heads)", within="[1, inf)"),
    OptionSpec("num_heads", int, 4, "attention heads", within="[1, inf)"),
    OptionSpec("num_layers", int, 2, "decoder layers (self-attention + cross-attention + FFN)", within="[1, inf)"),
    OptionSpec("num_tokens", int, 8, "tokens a feature vector is split into (images: at most this many patch tokens)",
               within="[1, inf)"),
    OptionSpec("ffn_dim", int, 128, "hidden width of the decoder feed-forward network", within="[1, inf)"),
)


class QueryDecoderLayer(nn.Module):
    """Post-norm decoder layer: shared self-attention over the queries, cross-attention to the tokens, FFN."""

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, d_model)
        )
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, queries: torch.Tensor, tokens: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``queries [B, A, d]``, or ``[1, A, d]`` when they are the same for every item (the first layer's
        learnable queries: their self-attention is then computed once, not B times); ``tokens [B, T, d]``."""
        q = self.norm1(queries + self.drop(self.self_attn(queries, queries, queries, need_weights=False)[0]))
        q = q.expand(tokens.shape[0], -1, -1)
        attended, weights = self.cross_attn(q, tokens, tokens, need_weights=need_weights)
        q = self.norm2(q + self.drop(attended))
        q = self.norm3(q + self.drop(self.ffn(q)))
        return q, weights


class QuMATLModel(AnnotatorModel):
    """``A`` learnable queries (``queries [A, d]``) decoding the encoder's tokens; per-annotator heads."""

    def __init__(
        self,
        input_spec: InputSpec,
        num_annotators: int,
        num_classes: int,
        hidden: int,
        depth: int,
        dropout: float,
        d_model: int,
        num_heads: int,
        num_layers: int,
        num_tokens: int,
        ffn_dim: int,
    ) -> None:
        super().__init__(input_spec, num_annotators, num_classes)
        self.tokens, self.num_tokens = build_token_encoder(input_spec, d_model, num_tokens, hidden, depth, dropout)
        self.queries = nn.Parameter(torch.randn(num_annotators, d_model))
        self.layers = nn.ModuleList(QueryDecoderLayer(d_model, num_heads, ffn_dim, dropout) for _ in range(num_layers))
        self.head = AnnotatorLinear(num_annotators, d_model, num_classes)
        self.dropout = dropout

    def _decode(self, inputs: torch.Tensor, need_weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        tokens = self.tokens(inputs)  # [B, T, d]
        # the first layer's self-attention sees the same queries for every item: once, unless dropout makes the
        # items differ
        shared = not (self.training and self.dropout > 0)
        q = self.queries.unsqueeze(0)
        q = q if shared else q.expand(tokens.shape[0], -1, -1)
        weights = None
        for i, layer in enumerate(self.layers):
            q, weights = layer(q, tokens, need_weights=need_weights and i == len(self.layers) - 1)
        return q, weights

    @torch.no_grad()
    def attention_maps(self, inputs: torch.Tensor) -> torch.Tensor:
        """Last layer's cross-attention of each annotator's query over the tokens, ``[B, A, T]`` (head-averaged)."""
        return self._decode(inputs, need_weights=True)[1]

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> ModelOutput:
        q, _ = self._decode(inputs, need_weights=False)
        logits = self.head(q)  # [B, A, C]
        return ModelOutput(logits, logits.new_zeros(()))


def build(
    input_spec: InputSpec, num_annotators: int, num_classes: int, options: Mapping[str, Any] | None = None
) -> QuMATLModel:
    """Build the ``qumatl`` model; unknown or ill-typed options and unsupported inputs raise a clear error."""
    owner = f"model {NAME!r}"
    opts = resolve_options(OPTIONS, dict(options or {}), owner)
    check_input_spec(input_spec, owner=owner)
    if opts["d_model"] % opts["num_heads"]:
        raise ValueError(f"{owner}: d_model={opts['d_model']} must be divisible by num_heads={opts['num_heads']}")
    return QuMATLModel(input_spec, num_annotators, num_classes, **opts)


@hookimpl
def simlabel_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            NAME,
            build=build,
            option_specs=OPTIONS,
            description="QuMATL (Zhang et al. 2025): one learnable query per annotator, self- + cross-attention",
            input_kinds=("features", "image"),
        )
    ]
