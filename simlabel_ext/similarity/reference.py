"""Pure-PyTorch pairwise statistics: the readable oracle for the C++ engine and its fallback.

Notation (ALGORITHM.md §1): ``labels`` is ``int64 [N, A]`` with values ``0..C-1`` and ``-1`` for missing;
``M[i, a] = labels[i, a] >= 0`` and ``O[i, a, c] = (labels[i, a] == c)`` is the one-hot label. For every ordered
annotator pair ``(a, b)``, over the items both labelled:

- ``n[a, b]     = sum_i M[i, a] M[i, b]``               number of shared items (``n[a, a]`` = labels of a);
- ``agree[a, b] = sum_i sum_c O[i, a, c] O[i, b, c]``   shared items with equal labels;
- ``r[a, b, c]  = sum_i O[i, a, c] M[i, b]``            how often a said c on the items shared with b.

Cohen's kappa of the pair is ``(po - pe) / (1 - pe)`` with ``po = agree / n`` and
``pe = sum_c r[a, b, c] r[b, a, c] / n^2``. :func:`kappa_from_counts` evaluates it as one division of two exact
integers, ``(agree * n - s) / (n * n - s)`` with ``s = sum_c r_ab[c] r_ba[c]``, and returns NaN exactly where it
is undefined (``n = 0``, or ``pe = 1`` i.e. ``s == n * n``). :func:`similarity_from_kappa` turns kappa into the
weights ``S``. Both functions are shared by the backends and the tests. :func:`dense_similarity` blends kappa with
the kappa of predicted labels on every item (the trainer's ``dense_similarity`` option).

:class:`TorchPairCounts` keeps ``n``, ``agree`` and ``r`` up to date under single-label changes with O(A) vectorised
updates and refreshes kappa only for the annotators changed since the last query; it has the same methods as the
C++ ``simlabel_ext._C.PairCounts``.
"""
from __future__ import annotations

import torch

__all__ = ["TorchPairCounts", "dense_similarity", "kappa_from_counts", "pair_counts", "similarity_from_kappa"]

# Items per chunk of the one-hot build: the float64 one-hot chunk holds chunk * A * C values.
_CHUNK_VALUES = 1 << 22


def pair_counts(labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(n, agree, r)`` of a validated label matrix, as int64 ``[A, A]``, ``[A, A]`` and ``[A, A, C]``.

    Matrix products of one-hot labels, in float64 over chunks of items (exact: every partial sum is an integer
    far below 2**53), so memory stays ``O(chunk * A * C + A * A * C)``.
    """
    N, A = labels.shape
    C = int(num_classes)
    n = torch.zeros(A, A, dtype=torch.float64)
    agree = torch.zeros(A, A, dtype=torch.float64)
    r = torch.zeros(A * C, A, dtype=torch.float64)  # r[(a, c), b]
    chunk = max(1, _CHUNK_VALUES // max(1, A * C))
    for start in range(0, N, chunk):
        y = labels[start:start + chunk]
        mask = (y >= 0).to(torch.float64)                                               # [n, A]
        onehot = torch.nn.functional.one_hot(y.clamp(min=0), C).to(torch.float64)       # [n, A, C]
        onehot *= mask.unsqueeze(-1)
        n += mask.T @ mask
        r += onehot.reshape(len(y), A * C).T @ mask
        for c in range(C):  # agree = sum_c O[:, :, c]^T O[:, :, c], one [A, A] product per class
            agree += onehot[:, :, c].T @ onehot[:, :, c]
    r = r.reshape(A, C, A).permute(0, 2, 1)
    return n.to(torch.int64), agree.to(torch.int64), r.round().to(torch.int64).contiguous()


def kappa_from_counts(
    n: torch.Tensor, agree: torch.Tensor, r_ab: torch.Tensor, r_ba: torch.Tensor | None = None
) -> torch.Tensor:
    """Cohen's kappa from pair counts, float64, NaN where undefined.

    Args:
        n: shared-item counts, integer tensor of any shape ``[...]``.
        agree: agreement counts, same shape as ``n``.
        r_ab: integer ``[..., C]``, how often the first annotator of each pair said each class on the shared items.
        r_ba: the same for the second annotator. ``None`` means ``n`` is a square ``[A, A]`` matrix and ``r_ab`` the
            full ``[A, A, C]`` array, so ``r_ba = r_ab.transpose(0, 1)``.

    Returns:
        ``(agree * n - s) / (n * n - s)`` with ``s = sum_c r_ab[c] * r_ba[c]``, i.e. ``(po - pe) / (1 - pe)``,
        computed from exact int64 numerator and denominator (one rounding). NaN where ``n == 0`` or ``s == n * n``
        (chance agreement 1, where scikit-learn's ``cohen_kappa_score`` is NaN too).
    """
    if r_ba is None:
        r_ba = r_ab.transpose(0, 1)
    n = n.to(torch.int64)
    s = (r_ab.to(torch.int64) * r_ba.to(torch.int64)).sum(-1)
    num = agree.to(torch.int64) * n - s
    den = n * n - s
    undefined = (n == 0) | (den == 0)
    kappa = num.to(torch.float64) / torch.where(undefined, torch.ones_like(den), den).to(torch.float64)
    return kappa.masked_fill(undefined, float("nan"))


def similarity_from_kappa(
    kappa: torch.Tensor, n: torch.Tensor, n0: float = 0.0, min_overlap: int = 0
) -> torch.Tensor:
    """The annotator similarity ``S`` (ALGORITHM.md §1), float64 ``[A, A]``.

    ``S[a, b] = n / (n + n0) * max(kappa, 0)``, with NaN kappa -> 0, ``S = 0`` where ``n < min_overlap`` or
    ``n == 0``, and a zero diagonal. ``n0 = 0, min_overlap = 0`` is the paper's unshrunk similarity.

    Args:
        kappa: float ``[A, A]`` from :func:`kappa_from_counts`.
        n: integer ``[A, A]`` shared-item counts.
        n0: shrinkage strength in items (``>= 0``): a pair sharing ``n0`` items keeps half its kappa.
        min_overlap: pairs sharing fewer items get 0.
    """
    n0 = float(n0)
    if not (n0 >= 0.0 and n0 != float("inf")):
        raise ValueError(f"n0 must be a finite number >= 0, got {n0}")
    if int(min_overlap) < 0:
        raise ValueError(f"min_overlap must be >= 0, got {min_overlap}")
    kappa = kappa.to(torch.float64)
    nd = n.to(torch.float64)
    keep = (n > 0) & (n >= int(min_overlap)) & (kappa > 0)  # kappa > 0 is False for NaN
    keep.fill_diagonal_(False)
    shrunk = nd / (nd + n0) * kappa
    return torch.where(keep, shrunk, torch.zeros_like(shrunk))


def dense_similarity(kappa: torch.Tensor, n: torch.Tensor, predicted_kappa: torch.Tensor, m: float) -> torch.Tensor:
    """The similarity blended with the kappa of predicted labels on every item (``dense_similarity`` option),
    float64 ``[A, A]``.

    ``S[a, b] = max(0, (n K + m K_pred) / (n + m))``: ``K`` the labels' kappa on the ``n`` items the pair shares,
    ``K_pred`` (``predicted_kappa``) the kappa of the models' predicted labels on all items, e.g.
    ``kappa_from_counts(*pair_counts(predicted, C))``, ``m`` its weight in items (``> 0``). A pair sharing no item
    takes ``K_pred``; NaN kappa counts as 0; the diagonal is 0.
    """
    m = float(m)
    if not (m > 0.0 and m != float("inf")):
        raise ValueError(f"m must be a finite number > 0, got {m}")
    nd = n.to(torch.float64)
    k, k_pred = kappa.to(torch.float64).nan_to_num(0.0), predicted_kappa.to(torch.float64).nan_to_num(0.0)
    s = ((nd * k + m * k_pred) / (nd + m)).clamp(min=0.0)
    return s.fill_diagonal_(0.0)


def _check_labels(labels: torch.Tensor, num_classes: int) -> None:
    """Raise ``ValueError`` naming the first bad ``[row, column]`` (row-major order) and its value."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 2:
        raise ValueError(
            f"labels must be a 2-D [items, annotators] tensor, got {labels.dim()} dimensions "
            f"(shape {list(labels.shape)})"
        )
    if labels.dtype != torch.int64:
        raise ValueError(f"labels must be int64, got {labels.dtype}")
    if labels.device.type != "cpu":
        raise ValueError(f"labels must be on the CPU, got {labels.device}")
    num_classes = int(num_classes)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    bad = (labels < -1) | (labels >= num_classes)
    if bool(bad.any()):
        i, a = (int(v) for v in bad.nonzero()[0])
        raise ValueError(
            f"labels[{i}, {a}] = {int(labels[i, a])} is out of range: expected -1 (missing) or a class in "
            f"0..{num_classes - 1} (num_classes={num_classes})"
        )


class TorchPairCounts:
    """Same interface and results as ``simlabel_ext._C.PairCounts``, in plain PyTorch.

    Holds ``labels`` (int64 ``[N, A]``), ``n``, ``agree`` (int64 ``[A, A]``), ``r`` (int32 ``[A, A, C]``) and a
    kappa cache (float64 ``[A, A]``) refreshed for the rows/columns of annotators changed since the last query.
    """

    def __init__(self, labels: torch.Tensor, num_classes: int):
        _check_labels(labels, num_classes)
        self._C = int(num_classes)
        self._labels = labels.clone().contiguous()
        self._N, self._A = self._labels.shape
        n, agree, r = pair_counts(self._labels, self._C)
        self._n, self._agree, self._r = n, agree, r.to(torch.int32)
        self._kappa = torch.full((self._A, self._A), float("nan"), dtype=torch.float64)
        self._dirty = torch.ones(self._A, dtype=torch.bool)

    # ----------------------------------------------------------------------------------------- validation
    def _check_item(self, item: int) -> int:
        item = int(item)
        if not 0 <= item < self._N:
            raise IndexError(f"item index {item} is out of range for {self._N} items")
        return item

    def _check_annotator(self, annotator: int) -> int:
        annotator = int(annotator)
        if not 0 <= annotator < self._A:
            raise IndexError(f"annotator index {annotator} is out of range for {self._A} annotators")
        return annotator

    def _check_class(self, cls: int, allow_missing: bool) -> int:
        cls = int(cls)
        if not (-1 if allow_missing else 0) <= cls < self._C:
            missing = "-1 (missing) or " if allow_missing else ""
            raise ValueError(
                f"class {cls} is out of range: expected {missing}a class in 0..{self._C - 1} "
                f"(num_classes={self._C})"
            )
        return cls

    # ------------------------------------------------------------------------------------------- updates
    def _apply(self, item: int, a: int, cls: int, sign: int) -> None:
        """Add (sign=+1) or remove (sign=-1) label ``cls`` of ``(item, a)``; ``labels[item, a]`` is -1 here."""
        row = self._labels[item]
        others = row >= 0
        others[a] = False
        agree = others & (row == cls)
        idx = others.nonzero().squeeze(1)
        # pairs (a, b) and (b, a) for every other annotator b on the item
        self._n[a] += sign * others
        self._n[:, a] += sign * others
        self._agree[a] += sign * agree
        self._agree[:, a] += sign * agree
        self._r[a, :, cls] += sign * others.to(torch.int32)
        self._r[idx, a, row[idx]] += sign
        # the diagonal pair (a, a)
        self._n[a, a] += sign
        self._agree[a, a] += sign
        self._r[a, a, cls] += sign
        self._dirty[a] = True

    def set_label(self, item: int, annotator: int, cls: int) -> None:
        item, a = self._check_item(item), self._check_annotator(annotator)
        cls = self._check_class(cls, allow_missing=True)
        old = int(self._labels[item, a])
        if old == cls:
            return
        if old >= 0:
            self._labels[item, a] = -1
            self._apply(item, a, old, -1)
        if cls >= 0:
            self._apply(item, a, cls, +1)
            self._labels[item, a] = cls

    def add(self, item: int, annotator: int, cls: int) -> None:
        item, a = self._check_item(item), self._check_annotator(annotator)
        cls = self._check_class(cls, allow_missing=False)
        old = int(self._labels[item, a])
        if old >= 0:
            raise ValueError(
                f"cannot add a label at [item {item}, annotator {a}]: it already holds class {old} "
                "(use replace or set_label)"
            )
        self.set_label(item, a, cls)

    def remove(self, item: int, annotator: int) -> None:
        item, a = self._check_item(item), self._check_annotator(annotator)
        if int(self._labels[item, a]) < 0:
            raise ValueError(f"cannot remove the label at [item {item}, annotator {a}]: it is missing")
        self.set_label(item, a, -1)

    def replace(self, item: int, annotator: int, cls: int) -> None:
        item, a = self._check_item(item), self._check_annotator(annotator)
        cls = self._check_class(cls, allow_missing=False)
        if int(self._labels[item, a]) < 0:
            raise ValueError(
                f"cannot replace the label at [item {item}, annotator {a}]: it is missing (use add or set_label)"
            )
        self.set_label(item, a, cls)

    def set_labels(self, items: torch.Tensor, annotators: torch.Tensor, classes: torch.Tensor) -> None:
        for name, t in (("items", items), ("annotators", annotators), ("classes", classes)):
            if t.dim() != 1:
                raise ValueError(f"{name} must be a 1-D tensor, got {t.dim()} dimensions")
            if t.dtype != torch.int64:
                raise ValueError(f"{name} must be int64, got {t.dtype}")
        if not len(items) == len(annotators) == len(classes):
            raise ValueError(
                "items, annotators and classes must have the same length, got "
                f"{len(items)}, {len(annotators)} and {len(classes)}"
            )
        triples = list(zip(items.tolist(), annotators.tolist(), classes.tolist()))
        for k, (i, a, c) in enumerate(triples):  # validate everything before the first change
            try:
                self._check_item(i)
                self._check_annotator(a)
                self._check_class(c, allow_missing=True)
            except IndexError as exc:
                raise IndexError(f"set_labels entry {k}: {exc}") from None
            except ValueError as exc:
                raise ValueError(f"set_labels entry {k}: {exc}") from None
        for i, a, c in triples:
            self.set_label(i, a, c)

    # ------------------------------------------------------------------------------------------- queries
    def _refresh_kappa(self) -> None:
        idx = self._dirty.nonzero().squeeze(1)
        if len(idx) == 0:
            return
        rows = kappa_from_counts(self._n[idx], self._agree[idx], self._r[idx], self._r[:, idx].transpose(0, 1))
        self._kappa[idx] = rows
        self._kappa[:, idx] = rows.T
        self._dirty.zero_()

    def _output(self, out: torch.Tensor | None, what: str, allow_float32: bool) -> torch.Tensor | None:
        if out is None:
            return None
        dtypes = (torch.float32, torch.float64) if allow_float32 else (torch.float64,)
        if (
            out.dim() != 2 or tuple(out.shape) != (self._A, self._A) or out.dtype not in dtypes
            or out.device.type != "cpu" or not out.is_contiguous()
        ):
            kinds = "float32/float64" if allow_float32 else "float64"
            raise ValueError(
                f"{what} out= must be a contiguous CPU {kinds} tensor of shape [{self._A}, {self._A}], got "
                f"{out.dtype} {list(out.shape)} on {out.device}{'' if out.is_contiguous() else ' (non-contiguous)'}"
            )
        return out

    def kappa(self, out: torch.Tensor | None = None) -> torch.Tensor:
        out = self._output(out, "kappa", allow_float32=False)
        self._refresh_kappa()
        return self._kappa.clone() if out is None else out.copy_(self._kappa)

    def similarity(self, n0: float, min_overlap: int, out: torch.Tensor | None = None) -> torch.Tensor:
        out = self._output(out, "similarity", allow_float32=True)
        self._refresh_kappa()
        s = similarity_from_kappa(self._kappa, self._n, n0, min_overlap)
        return s if out is None else out.copy_(s)

    def overlap(self) -> torch.Tensor:
        return self._n.clone()

    def agreement(self) -> torch.Tensor:
        return self._agree.clone()

    def marginals(self) -> torch.Tensor:
        return self._r.to(torch.int64)

    def labels(self) -> torch.Tensor:
        return self._labels.clone()

    def label(self, item: int, annotator: int) -> int:
        return int(self._labels[self._check_item(item), self._check_annotator(annotator)])

    @property
    def num_items(self) -> int:
        return self._N

    @property
    def num_annotators(self) -> int:
        return self._A

    @property
    def num_classes(self) -> int:
        return self._C

    @property
    def num_labels(self) -> int:
        return int(self._n.diagonal().sum())

    def memory_bytes(self) -> int:
        tensors = (self._labels, self._n, self._agree, self._r, self._kappa, self._dirty)
        return sum(t.element_size() * t.nelement() for t in tensors)
