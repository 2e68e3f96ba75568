"""The options of one SimLabel batch step (ALGORITHM.md §2–4) and the output every backend returns.

Options (all keyword, all validated on construction):

``mode``
    ``"skip"`` — cross-entropy on observed entries only (the baseline of every table);
    ``"simlabel"`` — plus a KL term towards the similarity-weighted soft label on missing entries;
    ``"simlabel+confidence"`` — as ``"simlabel"``, and also selects confident soft labels for imputation.
``threshold``
    confidence threshold T in [0, 1] for imputation (``conf >= T``); default 0.6.
``kl_direction``
    ``"reverse"`` — ``KL(p || p_soft)``, the paper's eq. 2 (default); ``"forward"`` — ``KL(p_soft || p)``,
    the distillation direction of the authors' code.
``reduction``
    ``"mean"`` — mean CE over observed entries + lam · mean KL over soft entries (default);
    ``"flat"`` — (sum CE + lam · sum KL) / (number of CE and KL terms), the paper's eq. 3;
    ``"sum"`` — sum CE + lam · sum KL (for callers that normalise with global counts, e.g. DDP).
``lam``
    weight λ ≥ 0 of the KL term; default 1.
``contributors``
    ``"labelled"`` — the other annotators that labelled the item (default); ``"all"`` — every other annotator.
``soft_source``
    ``"predictions"`` — contributors' predicted distributions, gradient stopped (default);
    ``"labels"`` — contributors' observed one-hot labels (requires ``contributors="labelled"``).
``kl_weight``
    ``"uniform"`` — every soft entry counts 1 (default); ``"evidence"`` — each KL term is weighted by its
    evidence ``min(1, Σ_k S[n, k] · K[i, k])``, the unnormalised similarity mass of its contributors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

MODES = ("skip", "simlabel", "simlabel+confidence")
KL_DIRECTIONS = ("reverse", "forward")
REDUCTIONS = ("mean", "flat", "sum")
CONTRIBUTORS = ("labelled", "all")
SOFT_SOURCES = ("predictions", "labels")
KL_WEIGHTS = ("uniform", "evidence")

#: Floor of the soft label inside ``log q`` (a soft label may put exactly zero mass on a class).
LOG_Q_FLOOR = 1e-12


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")


@dataclass(frozen=True)
class SimLabelOptions:
    """Validated options of :func:`simlabel_ext.simlabel_loss` (see the module docstring for each)."""

    mode: str = "simlabel+confidence"
    threshold: float = 0.6
    kl_direction: str = "reverse"
    reduction: str = "mean"
    lam: float = 1.0
    contributors: str = "labelled"
    soft_source: str = "predictions"
    kl_weight: str = "uniform"

    def __post_init__(self) -> None:
        _choice("mode", self.mode, MODES)
        _choice("kl_direction", self.kl_direction, KL_DIRECTIONS)
        _choice("reduction", self.reduction, REDUCTIONS)
        _choice("contributors", self.contributors, CONTRIBUTORS)
        _choice("soft_source", self.soft_source, SOFT_SOURCES)
        _choice("kl_weight", self.kl_weight, KL_WEIGHTS)
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"threshold={self.threshold!r} must lie in [0, 1]")
        if not float(self.lam) >= 0.0 or float(self.lam) == float("inf"):
            raise ValueError(f"lam={self.lam!r} must be a finite number >= 0")
        if self.soft_source == "labels" and self.contributors == "all":
            raise ValueError(
                'soft_source="labels" needs contributors="labelled": an annotator without a label on the item '
                "has no label to contribute"
            )

    @property
    def uses_soft_labels(self) -> bool:
        return self.mode != "skip"

    @property
    def imputes(self) -> bool:
        return self.mode == "simlabel+confidence"


class SimLabelOutput(NamedTuple):
    """What one SimLabel batch step returns. B items, A annotators.

    ``loss`` is the scalar to minimise (per ``reduction``); ``ce_sum`` and ``kl_sum`` are its differentiable
    parts (sum of CE over observed entries; sum of the possibly evidence-weighted KL over soft entries), and
    ``n_ce`` / ``n_kl`` their term counts (int64 scalars) so that data-parallel callers can normalise with
    globally reduced counts. Per entry [B, A]: ``confidence`` (float, 0 where there is no soft label),
    ``soft_argmax`` (int64, -1 where there is no soft label) and ``impute_mask`` (bool; only in mode
    ``"simlabel+confidence"``: a soft entry whose confidence is >= threshold).
    """

    loss: torch.Tensor
    ce_sum: torch.Tensor
    kl_sum: torch.Tensor
    n_ce: torch.Tensor
    n_kl: torch.Tensor
    confidence: torch.Tensor
    soft_argmax: torch.Tensor
    impute_mask: torch.Tensor


def combine_loss(ce_sum, kl_sum, n_ce, n_kl, options: SimLabelOptions) -> torch.Tensor:
    """The scalar loss from its parts per ``options.reduction`` (counts clamped to >= 1; empty parts give 0)."""
    lam = float(options.lam)
    if options.reduction == "sum":
        return ce_sum + lam * kl_sum
    if options.reduction == "flat":
        return (ce_sum + lam * kl_sum) / (n_ce + n_kl).clamp(min=1).to(ce_sum.dtype)
    return ce_sum / n_ce.clamp(min=1).to(ce_sum.dtype) + lam * kl_sum / n_kl.clamp(min=1).to(kl_sum.dtype)
