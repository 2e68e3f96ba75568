"""Annotator similarity: exact pairwise Cohen's kappa and the weights ``S`` (ALGORITHM.md §1, §4).

- :class:`SimilarityEngine` — the label matrix plus per-pair counts, updated in O(A) per changed label
  (C++ backend with a pure-PyTorch fallback);
- :func:`kappa_from_counts`, :func:`similarity_from_kappa` — the formulas, from counts, shared by both backends;
- :func:`dense_similarity` — the similarity blended with the kappa of the models' predicted labels;
- :data:`DEFAULT_N0` and :data:`DEFAULT_MIN_OVERLAP` — the similarity defaults.
"""
from .engine import DEFAULT_MIN_OVERLAP, DEFAULT_N0, SimilarityEngine
from .reference import (
    TorchPairCounts,
    dense_similarity,
    kappa_from_counts,
    pair_counts,
    similarity_from_kappa,
)

__all__ = [
    "DEFAULT_MIN_OVERLAP",
    "DEFAULT_N0",
    "SimilarityEngine",
    "TorchPairCounts",
    "dense_similarity",
    "kappa_from_counts",
    "pair_counts",
    "similarity_from_kappa",
]
