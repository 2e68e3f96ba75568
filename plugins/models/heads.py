"""``heads`` — shared encoder with one linear head per annotator (the simplest multi-annotator baseline).

Architecture (the "one shared network with A heads" of ALGORITHM §1)::

    h      = encoder(x)                         [B, H]   MLP for features, small conv net for images
    logits = einsum("bh,ahc->bac", h, W) + b    [B, A, C]  W: [A, H, C], b: [A, C]

The ``A`` heads are one batched weight (:class:`simlabel_ext.models.AnnotatorLinear`), applied with a single
``einsum``: no Python loop over annotators. There is no auxiliary loss (``aux_loss`` is a 0-dim zero) and
training and evaluation modes compute the same function (up to dropout).

Options:

============  =====  =======  ==========================================================================
``hidden``    int    128      encoder width (MLP units / conv channels)
``depth``     int    2        encoder blocks (MLP layers, may be 0 for features; conv blocks >= 1 for images)
``dropout``   float  0.0      dropout after each encoder block, in [0, 1)
============  =====  =======  ==========================================================================
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from simlabel_ext.models import (
    AnnotatorLinear,
    AnnotatorModel,
    InputSpec,
    ModelOutput,
    build_encoder,
    check_input_spec,
)
from simlabel_ext.registry import ModelSpec, OptionSpec, hookimpl, resolve_options

NAME = "heads"

OPTIONS = (
    OptionSpec("hidden", int, 128, "encoder width (MLP units / conv channels)", within="[1, inf)"),
    OptionSpec("depth", int, 2, "encoder blocks (MLP layers, 0 allowed for features; conv blocks >= 1 for images)",
               within="[0, inf)"),
    OptionSpec("dropout", float, 0.0, "dropout after each encoder block", within="[0, 1)"),
)


class MultiHeadModel(AnnotatorModel):
    """Shared encoder and ``A`` linear heads stored as one weight ``heads.weight [A, H, C]``."""

    def __init__(
        self, input_spec: InputSpec, num_annotators: int, num_classes: int, hidden: int, depth: int, dropout: float
    ) -> None:
        super().__init__(input_spec, num_annotators, num_classes)
        self.encoder, out_dim = build_encoder(input_spec, hidden, depth, dropout)
        self.heads = AnnotatorLinear(num_annotators, out_dim, num_classes)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> ModelOutput:
        logits = self.heads(self.encoder(inputs))
        return ModelOutput(logits, logits.new_zeros(()))


def build(
    input_spec: InputSpec, num_annotators: int, num_classes: int, options: Mapping[str, Any] | None = None
) -> MultiHeadModel:
    """Build the ``heads`` model; unknown or ill-typed options and unsupported inputs raise a clear error."""
    opts = resolve_options(OPTIONS, dict(options or {}), f"model {NAME!r}")
    check_input_spec(input_spec, owner=f"model {NAME!r}")
    return MultiHeadModel(input_spec, num_annotators, num_classes, opts["hidden"], opts["depth"], opts["dropout"])


@hookimpl
def simlabel_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            NAME,
            build=build,
            option_specs=OPTIONS,
            description="shared encoder + one linear head per annotator (baseline)",
            input_kinds=("features", "image"),
        )
    ]
