"""Shared building blocks for annotator models: input encoders and a batched per-annotator linear layer.

Every built-in model (``simlabel_plugins.models``) builds its input encoder here, and a third-party model
plugin may do the same. The encoder is chosen by the dataset's :class:`~simlabel_ext.models.InputSpec`:

``kind="features"``, ``shape=(D,)``
    :class:`MLPEncoder`: ``depth`` blocks of ``Linear -> LayerNorm -> ReLU -> Dropout`` of width ``hidden``
    (``depth=0`` is the identity: the raw features are the representation).
``kind="image"``, ``shape=(channels, height, width)``
    :class:`ConvEncoder`: a small conv trunk (:class:`ConvTrunk`: ``depth`` blocks of
    ``Conv3x3 -> GroupNorm(1) -> ReLU -> MaxPool2`` with ``hidden`` channels; a block stops pooling once the map
    is 1 pixel wide), the map average-pooled to at most 4x4, flattened, then ``Linear -> LayerNorm -> ReLU ->
    Dropout`` to ``hidden``. GroupNorm with one group (per-sample normalisation) keeps training and evaluation
    identical, which BatchNorm would not.

:func:`build_encoder` returns ``(module, out_dim)``: a module mapping ``[B, *shape]`` to ``[B, out_dim]``.
:func:`build_token_encoder` returns ``(module, num_tokens)``: a module mapping ``[B, *shape]`` to a token
sequence ``[B, T, d_model]`` for attention-based models (a feature vector is split into ``T`` tokens by a
linear projection to ``T x d_model``; an image becomes a grid of conv patch tokens).
:class:`AnnotatorLinear` is ``A`` independent linear maps stored as one weight ``[A, in, out]`` and applied
with one ``einsum`` (no Python loop over annotators).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .contract import INPUT_KINDS, InputSpec

__all__ = [
    "AnnotatorLinear",
    "ConvEncoder",
    "ConvTrunk",
    "MLPEncoder",
    "TokenEncoder",
    "build_encoder",
    "build_token_encoder",
    "check_input_spec",
]

#: The conv encoder average-pools its last feature map to at most this many pixels per side.
CONV_POOL_SIDE = 4


def check_input_spec(input_spec: object, supported: Sequence[str] = INPUT_KINDS, owner: str = "model") -> InputSpec:
    """``input_spec`` if it is an :class:`InputSpec` of a supported kind; a clear ``TypeError``/``ValueError``
    otherwise (``owner`` names the model in the message)."""
    if not isinstance(input_spec, InputSpec):
        raise TypeError(
            f"{owner}: input_spec must be a simlabel_ext.models.InputSpec; got {type(input_spec).__name__} "
            f"{input_spec!r}"
        )
    if input_spec.kind not in supported:
        raise ValueError(
            f"{owner} cannot handle input kind {input_spec.kind!r} (shape {tuple(input_spec.shape)}); "
            f"it supports: {', '.join(supported)}"
        )
    return input_spec


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")


def _check_dropout(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"dropout must lie in [0, 1); got {value!r}")


def _check_batch(inputs: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
    if inputs.dim() != len(shape) + 1 or tuple(inputs.shape[1:]) != tuple(shape):
        raise ValueError(f"{what} expects inputs of shape [B, {', '.join(map(str, shape))}]; got {tuple(inputs.shape)}")


class MLPEncoder(nn.Module):
    """``[B, D] -> [B, out_dim]``: ``depth`` blocks ``Linear -> LayerNorm -> ReLU -> Dropout`` of width ``hidden``."""

    def __init__(self, in_dim: int, hidden: int, depth: int, dropout: float = 0.0) -> None:
        super().__init__()
        _check_int("in_dim", in_dim, 1)
        _check_int("hidden", hidden, 1)
        _check_int("depth", depth, 0)
        _check_dropout(dropout)
        self.in_dim = in_dim
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        self.net = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        _check_batch(inputs, (self.in_dim,), "MLPEncoder")
        return self.net(inputs)


class ConvTrunk(nn.Module):
    """``[B, C, H, W] -> [B, channels, h, w]``: ``depth`` blocks ``Conv3x3 -> GroupNorm(1) -> ReLU -> MaxPool2``.

    A block pools only while the map is at least 2 pixels on that side, so any image size works;
    ``out_hw`` is the output map size ``(h, w)``.
    """

    def __init__(self, shape: Sequence[int], channels: int, depth: int) -> None:
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"ConvTrunk needs an image shape (channels, height, width); got {tuple(shape)}")
        _check_int("hidden (conv channels)", channels, 1)
        _check_int("depth (conv blocks of an image encoder)", depth, 1)
        self.shape = tuple(int(s) for s in shape)
        c, h, w = self.shape
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Conv2d(c, channels, kernel_size=3, padding=1), nn.GroupNorm(1, channels), nn.ReLU()]
            kh, kw = (2 if h >= 2 else 1), (2 if w >= 2 else 1)
            if kh > 1 or kw > 1:
                layers.append(nn.MaxPool2d(kernel_size=(kh, kw)))
                h, w = h // kh, w // kw
            c = channels
        self.net = nn.Sequential(*layers)
        self.channels = channels
        self.out_hw = (h, w)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        _check_batch(inputs, self.shape, "ConvTrunk")
        return self.net(inputs)


class ConvEncoder(nn.Module):
    """``[B, C, H, W] -> [B, hidden]``: :class:`ConvTrunk`, average-pool to <= 4x4, ``Linear -> LayerNorm -> ReLU``."""

    def __init__(self, shape: Sequence[int], hidden: int, depth: int, dropout: float = 0.0) -> None:
        super().__init__()
        _check_dropout(dropout)
        self.trunk = ConvTrunk(shape, hidden, depth)
        h, w = self.trunk.out_hw
        ph, pw = min(CONV_POOL_SIDE, h), min(CONV_POOL_SIDE, w)
        layers: list[nn.Module] = [
            nn.AdaptiveAvgPool2d((ph, pw)),
            nn.Flatten(),
            nn.Linear(hidden * ph * pw, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.head = nn.Sequential(*layers)
        self.out_dim = hidden

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(inputs))


def build_encoder(input_spec: InputSpec, hidden: int, depth: int, dropout: float = 0.0) -> tuple[nn.Module, int]:
    """The encoder for ``input_spec``: ``(module, out_dim)``, the module mapping ``[B, *shape] -> [B, out_dim]``.

    Features: :class:`MLPEncoder` (``depth`` may be 0: identity). Images: :class:`ConvEncoder` (``depth >= 1``
    conv blocks of ``hidden`` channels).
    """
    check_input_spec(input_spec, owner="build_encoder")
    if input_spec.kind == "features":
        module: nn.Module = MLPEncoder(int(input_spec.shape[0]), hidden, depth, dropout)
    else:
        module = ConvEncoder(input_spec.shape, hidden, depth, dropout)
    return module, module.out_dim


class TokenEncoder(nn.Module):
    """``[B, *shape] -> [B, num_tokens, d_model]``: the token sequence an attention-based model attends to.

    Features: :class:`MLPEncoder` (``depth`` blocks, may be 0), then one ``Linear`` to ``T * d_model`` reshaped
    to ``T`` tokens. Images: :class:`ConvTrunk`, a 1x1 conv to ``d_model`` channels, the map average-pooled to
    a grid of at most ``floor(sqrt(T))`` pixels per side; each grid cell (a conv patch) is one token.
    Both add a learned position embedding ``[T, d_model]`` and a final ``LayerNorm``.
    """

    def __init__(
        self, input_spec: InputSpec, d_model: int, num_tokens: int, hidden: int, depth: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        check_input_spec(input_spec, owner="TokenEncoder")
        _check_int("d_model", d_model, 1)
        _check_int("num_tokens", num_tokens, 1)
        _check_dropout(dropout)
        self.kind = input_spec.kind
        self.d_model = d_model
        if self.kind == "features":
            self.body: nn.Module = MLPEncoder(int(input_spec.shape[0]), hidden, depth, dropout)
            self.proj: nn.Module = nn.Linear(self.body.out_dim, num_tokens * d_model)
            self.grid = None
            tokens = num_tokens
        else:
            self.body = ConvTrunk(input_spec.shape, hidden, depth)
            self.proj = nn.Conv2d(hidden, d_model, kernel_size=1)
            side = max(1, math.isqrt(num_tokens))
            h, w = self.body.out_hw
            self.grid = nn.AdaptiveAvgPool2d((min(side, h), min(side, w)))
            tokens = min(side, h) * min(side, w)
        self.num_tokens = tokens
        self.pos = nn.Parameter(torch.randn(tokens, d_model) * 0.02)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        h = self.body(inputs)
        if self.grid is None:
            tokens = self.proj(h).view(h.shape[0], self.num_tokens, self.d_model)
        else:
            tokens = self.grid(self.proj(h)).flatten(2).transpose(1, 2)  # [B, T, d]
        return self.drop(self.norm(tokens + self.pos))


def build_token_encoder(
    input_spec: InputSpec, d_model: int, num_tokens: int, hidden: int, depth: int, dropout: float = 0.0
) -> tuple[TokenEncoder, int]:
    """``(module, T)``: a :class:`TokenEncoder` mapping ``[B, *shape] -> [B, T, d_model]`` and its token count
    (``num_tokens`` for features; ``<= num_tokens`` patch tokens for images)."""
    module = TokenEncoder(input_spec, d_model, num_tokens, hidden, depth, dropout)
    return module, module.num_tokens


class AnnotatorLinear(nn.Module):
    """``A`` linear maps in one weight ``[A, in_features, out_features]`` (and bias ``[A, out_features]``).

    ``[B, in] -> [B, A, out]`` (every annotator's map on a shared representation) or
    ``[B, A, in] -> [B, A, out]`` (annotator ``a``'s map on its own row). Initialised like ``nn.Linear``.
    """

    def __init__(self, num_annotators: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        _check_int("num_annotators", num_annotators, 1)
        _check_int("in_features", in_features, 1)
        _check_int("out_features", out_features, 1)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(num_annotators, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_annotators, out_features).uniform_(-bound, bound)) if bias else None

    @property
    def num_annotators(self) -> int:
        return self.weight.shape[0]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        a, i, _ = self.weight.shape
        if inputs.dim() == 2 and inputs.shape[1] == i:
            out = torch.einsum("bi,aio->bao", inputs, self.weight)
        elif inputs.dim() == 3 and inputs.shape[1:] == (a, i):
            out = torch.einsum("bai,aio->bao", inputs, self.weight)
        else:
            raise ValueError(f"AnnotatorLinear expects [B, {i}] or [B, {a}, {i}]; got {tuple(inputs.shape)}")
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        a, i, o = self.weight.shape
        return f"num_annotators={a}, in_features={i}, out_features={o}, bias={self.bias is not None}"
