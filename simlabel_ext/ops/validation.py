"""Input checks shared by every backend of the SimLabel op; each error names the offending entry.

:func:`check_values` reads the values on the host (the reference, the CPU and the closed-form paths). The CUDA
kernels never synchronise: they record the first bad cell of each input in the op's ``errors`` output, and
:func:`check_errors` raises the same error from it when the caller reads the host (once, 16 bytes).
"""
from __future__ import annotations

import torch

from ..kernels.flags import NO_ERROR

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_shapes(logits: torch.Tensor, labels: torch.Tensor, similarity: torch.Tensor) -> None:
    """Shapes, dtypes and devices (cheap: no data is read). logits [B, A, C], labels [B, A], similarity [A, A]."""
    if logits.dim() != 3:
        raise ValueError(f"logits must have shape [B, A, C]; got {tuple(logits.shape)}")
    if logits.dtype not in FLOAT_DTYPES:
        raise TypeError(f"logits must be float16, bfloat16, float32 or float64; got {logits.dtype}")
    B, A, C = logits.shape
    if C < 2:
        raise ValueError(f"logits has C={C} classes; SimLabel needs at least 2")
    if A < 1:
        raise ValueError("logits has A=0 annotators")
    if tuple(labels.shape) != (B, A):
        raise ValueError(f"labels must have shape [B, A] = {[B, A]} to match logits; got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor (-1 = missing); got {labels.dtype}")
    if tuple(similarity.shape) != (A, A):
        raise ValueError(f"similarity must have shape [A, A] = {[A, A]}; got {tuple(similarity.shape)}")
    if not similarity.dtype.is_floating_point:
        raise TypeError(f"similarity must be a floating tensor; got {similarity.dtype}")
    for name, t in (("labels", labels), ("similarity", similarity)):
        if t.device != logits.device:
            raise ValueError(f"{name} is on {t.device} but logits is on {logits.device}; put them on one device")


def _first(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0])


def _bad_label(labels: torch.Tensor, i: int, a: int, num_classes: int) -> ValueError:
    return ValueError(f"labels[{i}, {a}] = {int(labels[i, a])} is outside 0..{num_classes - 1} (or -1 for missing)")


def _bad_similarity(similarity: torch.Tensor, a: int, b: int) -> ValueError:
    return ValueError(f"similarity[{a}, {b}] = {float(similarity[a, b])} must be finite and >= 0")


def check_values(labels: torch.Tensor, similarity: torch.Tensor, num_classes: int) -> None:
    """Label range -1..C-1; similarity finite and >= 0. Reads labels and similarity (not logits)."""
    bad = (labels < -1) | (labels >= num_classes)
    if bool(bad.any()):
        raise _bad_label(labels, *_first(bad), num_classes)
    bad = ~torch.isfinite(similarity) | (similarity < 0)
    if bool(bad.any()):
        raise _bad_similarity(similarity, *_first(bad))


def check_errors(errors: torch.Tensor | list[int], labels: torch.Tensor, similarity: torch.Tensor,
                 num_classes: int) -> None:
    """Raise what :func:`check_values` would for the first bad cell recorded in the op's ``errors`` output
    (``[2]``: flat index of the first bad label, of the first bad similarity entry; a tensor, read here, or the
    values already read); nothing if both are :data:`~simlabel_ext.kernels.NO_ERROR`."""
    label_at, sim_at = errors.tolist() if isinstance(errors, torch.Tensor) else errors
    if label_at != NO_ERROR:
        raise _bad_label(labels, *divmod(int(label_at), labels.shape[1]), num_classes)
    if sim_at != NO_ERROR:
        raise _bad_similarity(similarity, *divmod(int(sim_at), similarity.shape[1]))


def check_inputs(logits: torch.Tensor, labels: torch.Tensor, similarity: torch.Tensor) -> None:
    """All checks of this module."""
    check_shapes(logits, labels, similarity)
    check_values(labels, similarity, logits.shape[-1])
