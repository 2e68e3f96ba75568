"""The contract every annotator model (built-in or third-party plugin) fulfils.

A model maps a batch of inputs to one distribution per annotator, ``logits [B, A, C]``, and may add an
auxiliary loss (PADL's global branch, MaDL's prior, ...). It is built by its plugin's factory from
``(input_spec, num_annotators, num_classes, options)``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..data.inputs import INPUT_KINDS, InputSpec

__all__ = ["INPUT_KINDS", "AnnotatorModel", "InputSpec", "ModelOutput"]


class ModelOutput(NamedTuple):
    """``logits [B, A, C]`` (in training mode possibly sampled, e.g. PADL) and ``aux_loss`` (scalar, 0 if none)."""

    logits: torch.Tensor
    aux_loss: torch.Tensor


class AnnotatorModel(nn.Module):
    """Base class of annotator models: ``forward(inputs [B, ...], labels [B, A] | None) -> ModelOutput``.

    ``labels`` (int64, -1 = missing) are given during training so that a model can form its auxiliary loss;
    ``predict`` is the deterministic view used for evaluation (argmax of ``logits`` in eval mode).
    """

    def __init__(self, input_spec: InputSpec, num_annotators: int, num_classes: int) -> None:
        super().__init__()
        if num_annotators < 1 or num_classes < 2:
            raise ValueError(f"need at least 1 annotator and 2 classes; got A={num_annotators}, C={num_classes}")
        self.input_spec = input_spec
        self.num_annotators = num_annotators
        self.num_classes = num_classes

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> ModelOutput:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        """Predicted class per annotator, ``[B, A]`` int64, computed in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return self(inputs).logits.argmax(-1)
        finally:
            self.train(was_training)
