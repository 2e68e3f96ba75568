"""Dataset ``synthetic``: a seeded multi-annotator generator whose label statistics match the paper's Table 1.

Generative model (all draws from ``numpy.random.default_rng(seed)``):

- true class ``y_i`` uniform over C classes; features ``x_i = mu[y_i] + e_i`` with class means
  ``mu[c] ~ N(0, separation^2 I_D)`` and noise ``e_i ~ N(0, I_D)`` (informative features, ``float32 [N, D]``);
- annotator ``a`` (0-based) belongs to group ``g = a mod G`` (:func:`annotator_groups`) and has accuracy
  ``alpha_a ~ Uniform(accuracy - 0.15, accuracy + 0.15)`` clipped to ``[1/C, 1]``. Its confusion matrix is
  ``P_a(l | c) = alpha_a [l = c] + (1 - alpha_a) (tendency [l = m_g(c)] + (1 - tendency) [l != c] / (C - 1))``
  with the group's labelling tendency ``m_g(c) = (c + 1 + g mod (C - 1)) mod C``: when its members err, they
  err towards the same class, so within-group Cohen's kappa exceeds between-group kappa;
- annotator ``a`` labels exactly ``k_a`` items drawn uniformly without replacement, so its missing rate is
  ``1 - k_a / N`` exactly. Items nobody labels can occur (``amer2-like``: 9 % in expectation, none for
  ``amer-like``); they stay in the data set.

Presets (option ``preset``):

- ``amer2-like`` (default): N = 2,311 items, A = 10 annotators, C = 8 classes, ``k_a`` = the label counts of
  AMER2 in Table 1 (545, 538, 201, 557, 493, 545, 346, 544, 542, 545): missing rates 76.4 ... 91.3 %, 79.0 %
  overall;
- ``amer-like``: N = 5,207, A = 13, C = 8 (the paper does not give AMER's class count), ``k_a`` = AMER's label
  counts in Table 1 (1,096 ... 1,062 for A1-A10, then 5,187, 5,197, 5,202), i.e. its per-annotator missing
  rates 79.0 ... 81.4 % and 0.4 / 0.2 / 0.1 %. Their mean is 61.6 %: the 69.6 % the paper quotes as AMER's
  overall rate does not agree with its own per-annotator columns, which this preset follows;
- ``custom``: N = ``items``, A = ``annotators``, C = ``classes``; per-annotator missing rates spread evenly over
  ``missing +- d`` with ``d = min(0.1, missing, 1 - missing)`` (mean ``missing``), ``k_a = round((1 - r_a) N)``.

Options: ``seed`` (int, 0), ``missing_rate`` (float, 0.0; see :mod:`simlabel_plugins.datasets`), ``preset``
(str, ``amer2-like``), ``groups`` (int, 2: G), ``dim`` (int, 32: D), ``separation`` (float, 0.5),
``accuracy`` (float, 0.6: mean annotator accuracy), ``tendency`` (float, 0.8: share of a group's errors that
go to its class ``m_g(c)``), and for ``preset=custom`` only: ``items`` (int, 1000), ``annotators`` (int, 10),
``classes`` (int, 5), ``missing`` (float, 0.8: mean per-annotator missing rate). Items are named ``"0".."N-1"``,
annotators ``"A1".."AA"``, classes ``"0".."C-1"``; ``truth`` holds ``y``, and ``complete`` the label every
annotator would have given every item (it scores imputed labels).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from simlabel_ext.data import AnnotationMatrix, CrowdDataset, make_dataset
from simlabel_ext.models import InputSpec
from simlabel_ext.registry import DatasetSpec, OptionSpec, hookimpl

from . import COMMON_OPTIONS

#: preset -> (items N, classes C, labels per annotator k_a) from the paper's Table 1.
PRESETS: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "amer2-like": (2311, 8, (545, 538, 201, 557, 493, 545, 346, 544, 542, 545)),
    "amer-like": (5207, 8, (1096, 1031, 1022, 1036, 1012, 970, 1064, 1049, 1060, 1062, 5187, 5197, 5202)),
}
#: Defaults of the options that only ``preset=custom`` takes.
CUSTOM_DEFAULTS = {"items": 1000, "annotators": 10, "classes": 5, "missing": 0.8}

OPTIONS = (
    *COMMON_OPTIONS,
    OptionSpec("preset", str, "amer2-like", "the paper's crowd shapes, or custom", choices=(*PRESETS, "custom")),
    OptionSpec("groups", int, 2, "number of annotator groups G (annotator a is in group a mod G), at most A",
               within="[1, inf)"),
    OptionSpec("dim", int, 32, "feature dimension D", within="[1, inf)"),
    OptionSpec("separation", float, 0.5, "std of the class means (higher = more informative features)",
               within="[0, inf)"),
    OptionSpec("accuracy", float, 0.6, "mean annotator accuracy (each drawn within +-0.15)", within="(0, 1]"),
    OptionSpec("tendency", float, 0.8, "share of a group's errors that go to its preferred wrong class",
               within="[0, 1]"),
    OptionSpec("items", int, None, "custom only: number of items (default 1000)", within="[1, inf)"),
    OptionSpec("annotators", int, None, "custom only: number of annotators (default 10)", within="[1, inf)"),
    OptionSpec("classes", int, None, "custom only: number of classes (default 5)", within="[2, inf)"),
    OptionSpec("missing", float, None, "custom only: mean per-annotator missing rate (default 0.8)",
               within="[0, 1)"),
)


def annotator_groups(num_annotators: int, num_groups: int) -> list[int]:
    """Group of each annotator: ``a mod G``."""
    return [a % num_groups for a in range(num_annotators)]


def _shape(options: dict[str, Any]) -> tuple[int, int, tuple[int, ...]]:
    """``(N, C, k_a per annotator)`` of the chosen preset."""
    preset = options["preset"]
    custom = {name: options[name] for name in CUSTOM_DEFAULTS}
    if preset in PRESETS:
        given = [name for name, value in custom.items() if value is not None]
        if given:
            raise ValueError(f"synthetic: option {given[0]!r} applies to preset=custom only, not {preset!r}")
        return PRESETS[preset]
    n, a, c, missing = (CUSTOM_DEFAULTS[k] if v is None else v for k, v in custom.items())
    d = min(0.1, missing, 1.0 - missing)
    rates = missing + d * np.linspace(-1.0, 1.0, a) if a > 1 else np.array([missing])
    return n, c, tuple(max(1, int(round((1.0 - r) * n))) for r in rates)


def generate(options: dict[str, Any]) -> tuple[torch.Tensor, AnnotationMatrix, torch.Tensor, torch.Tensor]:
    """``(features float32 [N, D], annotations [N, A], truth int64 [N], complete int64 [N, A])`` for resolved
    ``options``; ``complete`` holds every annotator's label on every item, of which ``annotations`` shows the
    sampled entries."""
    n, c, counts = _shape(options)
    a, g, d = len(counts), options["groups"], options["dim"]
    separation, accuracy, tendency = options["separation"], options["accuracy"], options["tendency"]
    if not 1 <= g <= a:
        raise ValueError(f"synthetic: groups must be in 1..{a} (the number of annotators); got {g}")
    rng = np.random.default_rng(options["seed"])
    y = rng.integers(c, size=n)
    means = rng.normal(0.0, separation, size=(c, d))
    x = means[y] + rng.normal(size=(n, d))
    alpha = np.clip(rng.uniform(accuracy - 0.15, accuracy + 0.15, size=a), 1.0 / c, 1.0)
    shift = 1 + np.array(annotator_groups(a, g)) % (c - 1)                                      # [A]
    correct = rng.random((n, a)) < alpha
    to_tendency = rng.random((n, a)) < tendency
    other = (y[:, None] + rng.integers(1, c, size=(n, a))) % c                                  # uniform != y
    labels = np.where(correct, y[:, None], np.where(to_tendency, (y[:, None] + shift) % c, other))
    mask = np.zeros((n, a), dtype=bool)
    for j, k in enumerate(counts):
        mask[rng.permutation(n)[:k], j] = True
    matrix = AnnotationMatrix(
        torch.from_numpy(np.where(mask, labels, -1).astype(np.int64)),
        [str(i) for i in range(n)],
        [f"A{j + 1}" for j in range(a)],
        [str(k) for k in range(c)],
    )
    return (torch.from_numpy(x.astype(np.float32)), matrix, torch.from_numpy(y.astype(np.int64)),
            torch.from_numpy(labels.astype(np.int64)))


def load(options: dict[str, Any]) -> CrowdDataset:
    """The synthetic :class:`CrowdDataset` for resolved ``options``."""
    x, matrix, truth, complete = generate(options)
    return make_dataset(
        x, InputSpec("features", (x.shape[1],)), matrix, truth,
        seed=options["seed"], missing_rate=options["missing_rate"], complete=complete,
    )


@hookimpl
def simlabel_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            "synthetic",
            load,
            OPTIONS,
            "seeded annotators in groups with shared confusions; presets match the paper's Table 1",
        )
    ]
