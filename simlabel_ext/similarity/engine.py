"""The similarity engine: exact pairwise Cohen's kappa and the similarity ``S``, kept up to date per label.

:class:`SimilarityEngine` is the public entry point (ALGORITHM.md §1 and §4). It holds the current label matrix
(observed plus imputed labels) and, for every annotator pair, the counts that Cohen's kappa needs. Changing one
label costs O(A) count updates; the next :meth:`~SimilarityEngine.kappa` / :meth:`~SimilarityEngine.similarity`
call recomputes only the rows and columns of the annotators changed since the previous call (O(A * C) each), so
"impute one label, refresh the matrix" never recounts the data. Memory is ``O(N * A + A^2 * C)``
(:func:`required_bytes`); an engine that would not fit in the available memory is refused with a
``MemoryError`` that says how much it needs, before anything is allocated.

Two backends give identical results: the C++ ``simlabel_ext._C.PairCounts`` (thread-parallel build) and the
pure-PyTorch :class:`~simlabel_ext.similarity.reference.TorchPairCounts`.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from .. import _extension
from .reference import TorchPairCounts

__all__ = ["DEFAULT_MIN_OVERLAP", "DEFAULT_N0", "SimilarityEngine", "available_memory", "required_bytes"]

DEFAULT_N0: float = 10.0
"""Default shrinkage strength ``n0`` (in shared items) of ``S = n / (n + n0) * max(kappa, 0)``.

Kept at 10 by the study on music_genre's validation split (docs/results.md): ``n0 = 0`` scored within the seed
noise of it, and the shrinkage guards against kappa from a handful of shared items. ``n0 = 0`` (with
``min_overlap = 0``) is the paper's unshrunk similarity."""

DEFAULT_MIN_OVERLAP: int = 0
"""Default minimum number of shared items below which a pair's similarity is 0 (0 = no minimum)."""

_BACKENDS = ("auto", "cpp", "torch")
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def required_bytes(num_items: int, num_annotators: int, num_classes: int, backend: str = "cpp") -> int:
    """Peak bytes an engine over ``[N, A]`` labels with ``C`` classes holds once its similarity was asked for
    (:meth:`SimilarityEngine.memory_bytes` then, plus what the build needs on top: the float64 counts of the
    PyTorch backend). The pair statistics are dense: ``A^2 * (24 + 4 C)`` bytes besides the label copy."""
    n, a, c = int(num_items), int(num_annotators), int(num_classes)
    if backend == "cpp":  # int32 labels, n, agree, r[A, A, C]; float64 kappa and S caches; dirty flags and list
        return 4 * n * a + a * a * (24 + 4 * c) + 9 * a
    # int64 labels; float64 n, agree, kappa; int32 r, built in float64 first
    return 8 * n * a + a * a * (24 + 4 * c) + 8 * a * a * c + a


def available_memory() -> int | None:
    """Bytes this process may still allocate: ``SIMLABEL_MEMORY_LIMIT`` (e.g. ``2G``, ``512M``) if set, else the
    kernel's MemAvailable (Linux), else None (unknown: no check)."""
    limit = os.environ.get("SIMLABEL_MEMORY_LIMIT", "").strip().upper().removesuffix("B").removesuffix("I")
    if limit:
        unit = limit[-1] if limit[-1] in _UNITS else ""
        try:
            return int(float(limit[: len(limit) - len(unit)]) * _UNITS[unit])
        except ValueError:
            raise ValueError(f"SIMLABEL_MEMORY_LIMIT={os.environ['SIMLABEL_MEMORY_LIMIT']!r} is not a size such as "
                             "2G or 512M") from None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"


def _check_memory(num_items: int, num_annotators: int, num_classes: int, backend: str) -> None:
    """``MemoryError`` naming the sizes when the engine would not fit in the memory that is available."""
    needed, free = required_bytes(num_items, num_annotators, num_classes, backend), available_memory()
    if free is not None and needed > free:
        raise MemoryError(f"the similarity statistics of {num_annotators} annotators x {num_classes} classes need "
                          f"{_gib(needed)} (dense pair counts: A^2 x (24 + 4C) bytes), but only {_gib(free)} is "
                          "available; use fewer annotators or classes, or a machine with more memory")


def _as_label_tensor(labels: Any) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(
            "labels must be an int64 torch.Tensor [items, annotators] or an object with .labels and .num_classes "
            f"(an AnnotationMatrix), got {type(labels).__name__}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor (int64), got {labels.dtype}")
    return labels.detach().to(device="cpu", dtype=torch.int64)


class SimilarityEngine:
    """Pairwise Cohen's kappa and annotator similarity over a label matrix that changes one label at a time.

    Args:
        labels: int64 tensor ``[N items, A annotators]`` with classes ``0..C-1`` and ``-1`` for missing, or an
            object with ``.labels`` and ``.num_classes`` (an :class:`~simlabel_ext.data.AnnotationMatrix`), in which
            case ``num_classes`` may be omitted. Other integer dtypes are converted; the engine keeps its own copy.
        num_classes: ``C``.
        n0: default shrinkage strength of :meth:`similarity`, in shared items (>= 0). Default :data:`DEFAULT_N0`.
        min_overlap: default minimum number of shared items for a nonzero similarity (>= 0).
        backend: ``"cpp"`` (the compiled extension; an error when it was not built), ``"torch"`` (the pure-PyTorch
            reference) or ``"auto"`` (C++ when built, else the fallback with one warning per process).

    Raises:
        ValueError: bad shape or dtype, or a label outside ``-1..C-1`` (the message names ``[row, column]`` and the
            value); bad ``n0`` / ``min_overlap`` / ``backend``.
        RuntimeError: ``backend="cpp"`` without the compiled extension.

    Indices ``item`` / ``annotator`` are 0-based positions in the label matrix; classes are 0-based.
    """

    def __init__(
        self,
        labels: Any,
        num_classes: int | None = None,
        *,
        n0: float = DEFAULT_N0,
        min_overlap: int = DEFAULT_MIN_OVERLAP,
        backend: str = "auto",
    ):
        if not isinstance(labels, torch.Tensor) and hasattr(labels, "labels"):
            if num_classes is None:
                num_classes = getattr(labels, "num_classes", None)
            labels = labels.labels
        if num_classes is None:
            raise TypeError("num_classes is required when labels is a tensor")
        self._n0 = self._check_n0(n0)
        self._min_overlap = self._check_min_overlap(min_overlap)
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        labels = _as_label_tensor(labels)
        if backend == "cpp":
            module = _extension.compiled() if _extension.has_compiled() else None
            if module is None:
                raise RuntimeError(
                    f"backend='cpp' needs the compiled extension simlabel_ext._C, which is not available: "
                    f"{_extension.BUILD_HINT}"
                )
        elif backend == "auto":
            module = _extension.compiled()
        else:
            module = None
        if labels.dim() == 2:  # (a bad shape gets its own message from the backend)
            _check_memory(labels.shape[0], labels.shape[1], int(num_classes), "cpp" if module is not None else "torch")
        if module is not None:
            self._impl = module.PairCounts(labels, int(num_classes))
            self._backend = "cpp"
        else:
            self._impl = TorchPairCounts(labels, int(num_classes))
            self._backend = "torch"

    @classmethod
    def from_matrix(cls, matrix: Any, **kwargs: Any) -> "SimilarityEngine":
        """An engine over an :class:`~simlabel_ext.data.AnnotationMatrix` (``.labels``, ``.num_classes``)."""
        return cls(matrix.labels, matrix.num_classes, **kwargs)

    @staticmethod
    def _check_n0(n0: float) -> float:
        n0 = float(n0)
        if not (n0 >= 0.0 and n0 != float("inf")):
            raise ValueError(f"n0 must be a finite number >= 0, got {n0}")
        return n0

    @staticmethod
    def _check_min_overlap(min_overlap: int) -> int:
        if isinstance(min_overlap, bool) or int(min_overlap) != min_overlap or min_overlap < 0:
            raise ValueError(f"min_overlap must be an integer >= 0, got {min_overlap!r}")
        return int(min_overlap)

    # ------------------------------------------------------------------------------------------ properties
    @property
    def backend(self) -> str:
        """``"cpp"`` or ``"torch"``: the implementation in use."""
        return self._backend

    @property
    def num_items(self) -> int:
        """N."""
        return self._impl.num_items

    @property
    def num_annotators(self) -> int:
        """A."""
        return self._impl.num_annotators

    @property
    def num_classes(self) -> int:
        """C."""
        return self._impl.num_classes

    @property
    def num_labels(self) -> int:
        """Number of present labels (observed + imputed)."""
        return self._impl.num_labels

    @property
    def n0(self) -> float:
        """The default shrinkage strength of :meth:`similarity`."""
        return self._n0

    @property
    def min_overlap(self) -> int:
        """The default minimum overlap of :meth:`similarity`."""
        return self._min_overlap

    # -------------------------------------------------------------------------------------------- updates
    def set_label(self, item: int, annotator: int, cls: int) -> None:
        """Set entry ``(item, annotator)`` to ``cls``; ``cls = -1`` removes it. No-op when unchanged. O(A)."""
        self._impl.set_label(int(item), int(annotator), int(cls))

    def add(self, item: int, annotator: int, cls: int) -> None:
        """Add a label where none exists (``ValueError`` if the entry already holds one). O(A)."""
        self._impl.add(int(item), int(annotator), int(cls))

    def remove(self, item: int, annotator: int) -> None:
        """Remove an existing label (``ValueError`` if the entry is missing). O(A)."""
        self._impl.remove(int(item), int(annotator))

    def replace(self, item: int, annotator: int, cls: int) -> None:
        """Change an existing label to ``cls`` (``ValueError`` if the entry is missing). O(A)."""
        self._impl.replace(int(item), int(annotator), int(cls))

    def set_labels(self, items: Any, annotators: Any, classes: Any) -> None:
        """Apply :meth:`set_label` to each triple in order (``cls = -1`` removes).

        Args:
            items, annotators, classes: 1-D integer tensors (or sequences) of equal length ``K``.

        Every index and class is validated before the first change, so a bad batch changes nothing.
        Cost ``O(K * A)``.
        """
        def as_index(name: str, x: Any) -> torch.Tensor:
            t = torch.as_tensor(x)
            if (t.is_floating_point() or t.is_complex()) and t.numel() > 0:  # [] is float32
                raise ValueError(f"{name} must hold integers, got {t.dtype}")
            return t.to(device="cpu", dtype=torch.int64).reshape(-1)

        self._impl.set_labels(
            as_index("items", items), as_index("annotators", annotators), as_index("classes", classes)
        )

    # -------------------------------------------------------------------------------------------- queries
    def kappa(self, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """Cohen's kappa of every pair on its shared items: float64 ``[A, A]``, symmetric.

        Equals ``sklearn.metrics.cohen_kappa_score`` on the co-labelled items; NaN where undefined (no shared
        item, or chance agreement 1, e.g. both annotators used a single, identical class). The diagonal is 1
        where defined. ``out``: an optional contiguous float64 ``[A, A]`` tensor to fill and return.
        """
        return self._impl.kappa(out)

    def similarity(
        self,
        n0: float | None = None,
        min_overlap: int | None = None,
        *,
        dtype: torch.dtype | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The annotator similarity ``S``, ``[A, A]``, float32 unless ``dtype`` / ``out`` say otherwise.

        ``S[a, b] = n_ab / (n_ab + n0) * max(kappa_ab, 0)`` (dimensionless, in ``[0, 1)``, or ``[0, 1]`` with
        ``n0 = 0``); 0 where kappa is NaN, where ``n_ab < min_overlap`` and on the diagonal. ``n0`` /
        ``min_overlap`` default to the engine's own (``None``).

        Args:
            dtype: the result's dtype (default float32). Computed in float64 and rounded once.
            out: an optional contiguous CPU float32/float64 ``[A, A]`` tensor to fill and return, so a trainer that
                refreshes ``S`` every step does not allocate ``A * A`` values each time.
        """
        n0 = self._n0 if n0 is None else self._check_n0(n0)
        min_overlap = self._min_overlap if min_overlap is None else self._check_min_overlap(min_overlap)
        if out is not None:
            if dtype is not None and dtype != out.dtype:
                raise ValueError(f"dtype={dtype} contradicts out.dtype={out.dtype}")
            return self._impl.similarity(n0, min_overlap, out)
        dtype = torch.float32 if dtype is None else dtype
        if dtype in (torch.float32, torch.float64):
            A = self.num_annotators
            return self._impl.similarity(n0, min_overlap, torch.empty(A, A, dtype=dtype))
        return self._impl.similarity(n0, min_overlap, None).to(dtype)

    def overlap(self) -> torch.Tensor:
        """Number of items each pair both labelled, int64 ``[A, A]`` (diagonal: labels per annotator)."""
        return self._impl.overlap()

    def agreement(self) -> torch.Tensor:
        """Number of shared items on which each pair gave the same label, int64 ``[A, A]``."""
        return self._impl.agreement()

    def marginals(self) -> torch.Tensor:
        """``r[a, b, c]``: how often a said c on the items shared with b, int64 ``[A, A, C]`` (large: A*A*C)."""
        return self._impl.marginals()

    def labels(self) -> torch.Tensor:
        """A copy of the current label matrix, int64 ``[N, A]`` (-1 = missing)."""
        return self._impl.labels()

    def label(self, item: int, annotator: int) -> int:
        """The current label of one entry (-1 = missing)."""
        return self._impl.label(int(item), int(annotator))

    def memory_bytes(self) -> int:
        """Bytes held by the engine's label copy, counts and kappa cache."""
        return self._impl.memory_bytes()

    def __repr__(self) -> str:
        return (
            f"SimilarityEngine(items={self.num_items}, annotators={self.num_annotators}, "
            f"classes={self.num_classes}, labels={self.num_labels}, n0={self._n0}, "
            f"min_overlap={self._min_overlap}, backend={self._backend!r})"
        )
