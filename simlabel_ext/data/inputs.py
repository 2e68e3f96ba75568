"""What one item's input looks like, as a dataset declares it and a model consumes it."""
from __future__ import annotations

from dataclasses import dataclass

INPUT_KINDS = ("features", "image")


@dataclass(frozen=True)
class InputSpec:
    """What one item's input looks like, as a dataset declares it.

    ``kind="features"``: a feature vector, ``shape = (D,)`` (tabular data or precomputed embeddings);
    ``kind="image"``: ``shape = (channels, height, width)``, for which models use a small conv encoder.
    """

    kind: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"InputSpec kind={self.kind!r} is not one of {INPUT_KINDS}")
        expected = 1 if self.kind == "features" else 3
        if len(self.shape) != expected or any(int(s) < 1 for s in self.shape):
            raise ValueError(f"InputSpec {self.kind!r} needs {expected} positive dimension(s); got {self.shape}")
