"""The options of one SimLabel batch step (ALGORITHM.md §2–4), defined once, and the output every backend returns.

:class:`SimLabelOptions` is the single definition of these options: their names, defaults, meanings (each field's
``help``) and allowed values (``choices``). The training configuration holds one (``TrainConfig.simlabel``), the
command-line flags, config-file keys and the estimator's keyword arguments are made from its fields, and the
same object goes to :func:`simlabel_ext.simlabel_loss`. The op and its kernels receive it as
:attr:`SimLabelOptions.kernel_flags` (one bit set, :class:`KernelFlag`) and the threshold; reduction and λ only
combine the op's sums afterwards (:func:`combine_loss`).

The options:

``mode``
    ``"skip"`` — cross-entropy on observed entries only (the baseline of every table); ``"simlabel"`` — plus a
    KL term towards the similarity-weighted soft label on missing entries; ``"simlabel+confidence"`` — as
    ``"simlabel"``, and also selects confident soft labels for imputation.
``threshold``
    confidence threshold T in [0, 1] for imputation (``conf >= T``).
``kl_direction``
    ``"reverse"`` — ``KL(p || p_soft)``, the paper's eq. 2; ``"forward"`` — ``KL(p_soft || p)``, the
    distillation direction of the authors' code.
``reduction``
    ``"mean"`` — mean CE over observed entries + λ · mean KL over soft entries; ``"flat"`` — (sum CE + λ · sum
    KL) / (number of CE and KL terms), the paper's eq. 3; ``"sum"`` — sum CE + λ · sum KL (for callers that
    normalise with global counts, e.g. DDP).
``lam``
    weight λ ≥ 0 of the KL term (the op's default is the paper's 1).
``contributors``
    ``"labelled"`` — the other annotators that labelled the item; ``"all"`` — every other annotator.
``soft_source``
    ``"predictions"`` — contributors' predicted distributions, gradient stopped; ``"labels"`` — contributors'
    observed one-hot labels (requires ``contributors="labelled"``).
``kl_weight``
    ``"uniform"`` — every soft entry counts 1; ``"evidence"`` — each KL term is weighted by its evidence
    ``min(1, Σ_k S[n, k] · K[i, k])``, the unnormalised similarity mass of its contributors.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import torch

from ..kernels.flags import KernelFlag

__all__ = ["KernelFlag", "LOG_Q_FLOOR", "SimLabelOptions", "SimLabelOutput", "combine_loss"]

MODES = ("skip", "simlabel", "simlabel+confidence")
KL_DIRECTIONS = ("reverse", "forward")
REDUCTIONS = ("mean", "flat", "sum")
CONTRIBUTORS = ("labelled", "all")
SOFT_SOURCES = ("predictions", "labels")
KL_WEIGHTS = ("uniform", "evidence")

_SOFT, _IMPUTE, _REVERSE_KL = int(KernelFlag.SOFT), int(KernelFlag.IMPUTE), int(KernelFlag.REVERSE_KL)
_ALL_CONTRIBUTORS, _LABEL_SOURCE = int(KernelFlag.ALL_CONTRIBUTORS), int(KernelFlag.LABEL_SOURCE)
_EVIDENCE_WEIGHT = int(KernelFlag.EVIDENCE_WEIGHT)

#: Floor of the soft label inside ``log q`` (a soft label may put exactly zero mass on a class).
LOG_Q_FLOOR = 1e-12


def option(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its ``help`` and ``choices`` as metadata (flags and docs are made from them)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class SimLabelOptions:
    """Validated options of one SimLabel batch step (see the module docstring, and each field's ``help``)."""

    mode: str = option("simlabel+confidence", "skip, simlabel or simlabel+confidence", MODES)
    threshold: float = option(0.6, "confidence threshold T for imputation (conf >= T)")
    kl_direction: str = option("reverse", "reverse = KL(p || p_soft) (paper); forward = KL(p_soft || p)",
                               KL_DIRECTIONS)
    reduction: str = option("mean", "mean = mean CE + lam * mean KL; flat = one mean over both; sum", REDUCTIONS)
    lam: float = option(1.0, "weight lambda of the KL term")
    contributors: str = option("labelled", "who forms a soft label: labelled = annotators that labelled the item; "
                               "all", CONTRIBUTORS)
    soft_source: str = option("predictions", "soft labels from contributors' predictions or observed labels",
                              SOFT_SOURCES)
    kl_weight: str = option("uniform", "uniform, or evidence = weight each KL term by min(1, similarity mass)",
                            KL_WEIGHTS)

    def __post_init__(self) -> None:
        for f in fields(self):
            value, choices = getattr(self, f.name), f.metadata["choices"]
            if choices is not None and value not in choices:
                raise ValueError(f"{f.name}={value!r} is not one of {', '.join(map(repr, choices))}")
        for name in ("threshold", "lam"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{name}={value!r} must be a number")
            object.__setattr__(self, name, float(value))
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold={self.threshold!r} must lie in [0, 1]")
        if not (self.lam >= 0.0 and math.isfinite(self.lam)):
            raise ValueError(f"lam={self.lam!r} must be a finite number >= 0")
        if self.soft_source == "labels" and self.contributors == "all":
            raise ValueError(
                'soft_source="labels" needs contributors="labelled": an annotator without a label on the item '
                "has no label to contribute"
            )

    def replace(self, **changes: Any) -> SimLabelOptions:
        """A copy with ``changes`` (validated); an unknown name is an error that lists the options."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            names = ", ".join(f.name for f in fields(self))
            raise ValueError(f"unknown SimLabel option {unknown[0]!r}; the options are: {names}")
        return dataclasses.replace(self, **changes)

    @property
    def uses_soft_labels(self) -> bool:
        return self.mode != "skip"

    @property
    def imputes(self) -> bool:
        return self.mode == "simlabel+confidence"

    @property
    def kernel_flags(self) -> int:
        """The switches the op and its kernels take: an int of :class:`KernelFlag` bits (plain int arithmetic, so
        that ``torch.compile`` folds it to a constant)."""
        return (_SOFT * self.uses_soft_labels | _IMPUTE * self.imputes | _REVERSE_KL * (self.kl_direction == "reverse")
                | _ALL_CONTRIBUTORS * (self.contributors == "all") | _LABEL_SOURCE * (self.soft_source == "labels")
                | _EVIDENCE_WEIGHT * (self.kl_weight == "evidence"))

    @classmethod
    def from_kernel_flags(cls, flags: int, threshold: float) -> SimLabelOptions:
        """The options the op received as ``(flags, threshold)`` (reduction and λ at their defaults: the op
        returns sums)."""
        flags = KernelFlag(flags)
        mode = (MODES[2] if KernelFlag.IMPUTE in flags else MODES[1]) if KernelFlag.SOFT in flags else MODES[0]
        return cls(mode=mode, threshold=threshold,
                   kl_direction=KL_DIRECTIONS[KernelFlag.REVERSE_KL not in flags],
                   contributors=CONTRIBUTORS[KernelFlag.ALL_CONTRIBUTORS in flags],
                   soft_source=SOFT_SOURCES[KernelFlag.LABEL_SOURCE in flags],
                   kl_weight=KL_WEIGHTS[KernelFlag.EVIDENCE_WEIGHT in flags])


class SimLabelOutput(NamedTuple):
    """What one SimLabel batch step returns. B items, A annotators.

    ``loss`` is the scalar to minimise (per ``reduction``); ``ce_sum`` and ``kl_sum`` are its differentiable
    parts (sum of CE over observed entries; sum of the possibly evidence-weighted KL over soft entries), and
    ``n_ce`` / ``n_kl`` their term counts (int64 scalars) so that data-parallel callers can normalise with
    globally reduced counts. Per entry [B, A]: ``confidence`` (float, 0 where there is no soft label),
    ``soft_argmax`` (int64, -1 where there is no soft label) and ``impute_mask`` (bool; only in mode
    ``"simlabel+confidence"``: a soft entry whose confidence is >= threshold). ``errors`` (int64 [2]): where the op
    recorded bad input instead of raising (CUDA with ``checks="deferred"``), the row-major flat index of the first
    bad label and of the first bad similarity entry, :data:`~simlabel_ext.kernels.NO_ERROR` where none;
    :func:`~simlabel_ext.ops.validation.check_errors` raises from it.
    """

    loss: torch.Tensor
    ce_sum: torch.Tensor
    kl_sum: torch.Tensor
    n_ce: torch.Tensor
    n_kl: torch.Tensor
    confidence: torch.Tensor
    soft_argmax: torch.Tensor
    impute_mask: torch.Tensor
    errors: torch.Tensor


def combine_loss(ce_sum, kl_sum, n_ce, n_kl, options: SimLabelOptions) -> torch.Tensor:
    """The scalar loss from its parts per ``options.reduction`` (counts clamped to >= 1; empty parts give 0)."""
    lam = options.lam
    if options.reduction == "sum":
        return ce_sum + lam * kl_sum
    if options.reduction == "flat":
        return (ce_sum + lam * kl_sum) / (n_ce + n_kl).clamp(min=1).to(ce_sum.dtype)
    return ce_sum / n_ce.clamp(min=1).to(ce_sum.dtype) + lam * kl_sum / n_kl.clamp(min=1).to(kl_sum.dtype)
