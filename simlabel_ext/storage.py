"""The files simlabel writes: atomic writes, and torch files that are opened without running code.

:func:`write_atomic` (and :func:`write_json`, whose files hold no NaN: an undefined number is ``null``) writes through a temporary file in the target's folder, flushed to disk and renamed over the
target, so a crash leaves the old file or the new one, never half of one; :func:`save_torch` does it for
:func:`torch.save`. :func:`load_torch` opens a torch file with ``torch.load(..., weights_only=True)`` only, so a
checkpoint or model file can never execute code; a file that holds code (a pickled global other than tensors and
plain data) is refused with a :class:`TorchFileError` that says so, and one that is truncated or corrupt with a
:class:`TorchFileError` naming the file and the cause.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["TorchFileError", "json_safe", "load_torch", "save_torch", "write_atomic", "write_json"]


class TorchFileError(ValueError):
    """A torch file that is not opened: it holds code, or it is truncated, corrupt or of the wrong kind."""


def write_atomic(path: str | Path, write: Callable[[IO], None], *, binary: bool = False) -> None:
    """Call ``write(fh)`` on a temporary file beside ``path`` (text: UTF-8 with ``\\n`` line endings), then
    flush it to disk and rename it over ``path``. The file gets the usual permissions (umask), not mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        mode = {"mode": "wb"} if binary else {"mode": "w", "encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, **mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | Path, value: Any) -> None:
    """Write ``value`` as indented JSON (undefined numbers as ``null``), atomically."""
    text = json.dumps(json_safe(value), indent=2) + "\n"
    write_atomic(path, lambda fh: fh.write(text))


def save_torch(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save(state)`` to ``path`` atomically (see :func:`write_atomic`)."""
    write_atomic(path, lambda fh: torch.save(state, fh), binary=True)


def _unsafe_globals(path: Path) -> list[str]:
    """The pickled globals of ``path`` that ``weights_only`` refuses (read from the opcodes: nothing runs)."""
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)  # torch >= 2.5
    if scan is None:
        return []
    try:
        return list(scan(path))
    except Exception:  # noqa: BLE001 - an unreadable archive has no globals to report
        return []


def _cause(exc: Exception) -> str:
    """The first line of what went wrong, without torch's advice to load with ``weights_only=False``."""
    text = str(exc).strip()
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    elif text.startswith("Weights only load failed"):
        text = ""
    return text.splitlines()[0] if text else type(exc).__name__


def load_torch(path: str | Path, what: str = "file") -> dict[str, Any]:
    """The dict saved in ``path``, opened with ``weights_only=True`` on the CPU.

    ``what`` names the kind of file in messages (``"checkpoint"``, ``"model file"``). ``FileNotFoundError`` if it
    does not exist; :class:`TorchFileError` if it holds code, is unreadable, or does not hold a dict.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises RuntimeError, pickle.UnpicklingError, EOFError, ... on bad files
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise TorchFileError(
                f"{what} {path} holds code ({', '.join(unsafe[:3])}): it is refused, and it must not be loaded "
                "without weights_only, because loading it would run that code") from None
        raise TorchFileError(f"{what} {path} is unreadable (truncated or corrupt?): {_cause(exc)}") from None
    if not isinstance(state, dict):
        raise TorchFileError(f"{what} {path} does not hold a dict")
    return state
