"""Fused GPU kernels of the SimLabel batch step (Triton). Importing this package never needs triton.

- :class:`KernelFlag` — the switches of one step, as every kernel (C++ and Triton) takes them; :data:`NO_ERROR`
  — an empty entry of the errors word the kernels return;
- :func:`triton_available` — whether ``import triton`` works here (the kernels themselves run on CUDA tensors,
  or on CPU tensors under ``TRITON_INTERPRET=1``);
- :func:`fused_loss_forward` — see :mod:`simlabel_ext.kernels.simlabel_triton` (imported on first use).
"""
from __future__ import annotations

import functools

from .flags import NO_ERROR, KernelFlag

__all__ = ["NO_ERROR", "KernelFlag", "triton_available", "fused_loss_forward"]


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """True when triton can be imported (it is an optional dependency: ``pip install simlabel[triton]``)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken install that fails while importing
        return False
    return True


def fused_loss_forward(*args, **kwargs):
    """Lazy forwarder to :func:`simlabel_ext.kernels.simlabel_triton.fused_loss_forward` (needs triton)."""
    if not triton_available():
        raise RuntimeError("the fused SimLabel kernels need triton (pip install 'simlabel[triton]')")
    from .simlabel_triton import fused_loss_forward as impl

    return impl(*args, **kwargs)
