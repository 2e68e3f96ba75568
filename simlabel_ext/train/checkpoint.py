"""Checkpoints: written atomically, loaded without running code, a corrupt one detected and skipped.

A checkpoint is a dict of tensors and plain data (str, int, float, bool, None, lists and dicts of those) saved
with :func:`torch.save`; it is always opened with ``torch.load(..., weights_only=True)``, so a checkpoint can
never execute code. :func:`save_atomic` writes a temporary file in the same folder, flushes it to disk and
renames it over the target, so a crash leaves either the old file or the new one, never half of one.

A run keeps its last :data:`KEEP` epoch checkpoints (``epoch-0007.pt``, ...). :func:`load_latest` opens the
newest; if it is unreadable (e.g. truncated on disk) it warns, naming the file and the cause, and falls back to
the one before.
"""
from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "KEEP", "epoch_checkpoints", "load_checkpoint", "load_latest", "save_atomic",
           "save_epoch_checkpoint"]

#: How many epoch checkpoints a run keeps (the newest and its fallback).
KEEP = 2

_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (truncated, corrupt, or not a simlabel checkpoint)."""


def save_atomic(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save(state)`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a checkpoint gets the usual permissions
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Open a checkpoint with ``weights_only=True``; :class:`CheckpointError` naming the file if unreadable."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises RuntimeError, pickle.UnpicklingError, EOFError, ... on bad files
        if "Unsupported global" in str(exc):
            raise CheckpointError(f"checkpoint {path} holds objects other than tensors and plain data; it is not "
                                  "loaded, because loading it could run code") from None
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt?): {first_line}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict")
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(map(repr, missing))}")
    return state


def epoch_checkpoints(folder: str | Path) -> list[Path]:
    """The epoch checkpoints of ``folder``, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _EPOCH_FILE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def save_epoch_checkpoint(state: dict[str, Any], folder: str | Path, epoch: int) -> Path:
    """Save ``epoch-NNNN.pt`` atomically and delete all but the newest :data:`KEEP` epoch checkpoints."""
    path = Path(folder) / f"epoch-{epoch:04d}.pt"
    save_atomic(state, path)
    for old in epoch_checkpoints(folder)[KEEP:]:
        old.unlink(missing_ok=True)
    return path


def load_latest(folder: str | Path, required: tuple[str, ...] = ()) -> tuple[dict[str, Any], Path] | None:
    """The newest readable epoch checkpoint of ``folder`` and its path; ``None`` if there is none.

    Unreadable ones are skipped with a warning naming them; if every one is unreadable, the last
    :class:`CheckpointError` is raised.
    """
    error: CheckpointError | None = None
    for path in epoch_checkpoints(folder):
        try:
            return load_checkpoint(path, required), path
        except CheckpointError as exc:
            warnings.warn(f"{exc}; trying the previous checkpoint", stacklevel=2)
            error = exc
    if error is not None:
        raise error
    return None
