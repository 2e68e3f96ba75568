"""Loads the compiled extension ``simlabel_ext._C`` once, or records why it is absent.

Every accelerated component asks :func:`compiled` for the module and falls back to its pure-PyTorch reference
when it gets ``None``. The first such fallback warns once, with the command that builds the extension.
"""
from __future__ import annotations

import importlib
import warnings
from types import ModuleType

import torch  # noqa: F401  (libc10/libtorch must be loaded before the extension)

try:
    _compiled = importlib.import_module(f"{__package__}._C")  # the binary beside this file, not the package face
    _IMPORT_ERROR: ImportError | None = None
except ImportError as exc:  # a source checkout that was never built
    _compiled = None
    _IMPORT_ERROR = exc

_warned = False

BUILD_HINT = "build it with `pip install --no-build-isolation .` (or `-e .`) after installing torch"


def compiled() -> ModuleType | None:
    """The compiled module, or ``None`` (with one warning per process) when it was not built."""
    global _warned
    if _compiled is None and not _warned:
        _warned = True
        warnings.warn(
            f"simlabel_ext._C is not available ({_IMPORT_ERROR}); using the pure-PyTorch fallback, "
            f"which gives the same results more slowly: {BUILD_HINT}",
            RuntimeWarning,
            stacklevel=3,
        )
    return _compiled


def has_compiled() -> bool:
    """True when the C++ extension was built and imported (no warning)."""
    return _compiled is not None
