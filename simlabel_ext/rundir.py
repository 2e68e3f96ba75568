"""The run directory: every file a training run leaves, by name and format, with its writers and readers.

``simlabel train``, ``simlabel compare`` (one run directory per grid cell), ``simlabel impute`` and the report
all go through :class:`RunDirectory`; nothing else knows a file name. The files:

- ``config.toml``: the resolved configuration (:func:`simlabel_ext.train.write_config`);
- ``train.log``: one line per epoch, and the run's first and last lines;
- ``metrics.json``: per-annotator test accuracy with test counts, Avg over annotators, micro accuracy, the number
  of imputations and their accuracy on hidden labels (removed on purpose, or a simulated crowd's), best epoch
  with its validation loss, Avg and micro accuracy, epochs run and the epoch limit, steps, time; written last, so
  its presence marks a finished run;
- ``history.json``: one record per epoch (loss parts and term counts, λ, learning rate, imputed so far and their
  accuracy, mean similarity, validation loss / Avg / micro, seconds);
- ``imputed_labels.csv``: the imputed labels in long format — ``task, worker, label, confidence, epoch, step,
  revisions`` — with the data set's own item, annotator and class names (readable by
  :func:`simlabel_ext.data.read_long`);
- ``similarity.npz``: ``kappa_initial``, ``kappa_final``, ``similarity_initial``, ``similarity_final``
  (``[A, A]``), ``overlap_initial`` (shared training items per pair) and ``annotators`` (ids);
- ``predictions.npz``: the class names ``classes``, per item ``split`` (int8 ``[N]``: 0 train, 1 validation, 2 test, -1 none), and int16
  ``[N, A]`` arrays with -1 for none: ``labels`` (what the run was given), ``hidden`` (labels the data set knows
  but withheld: removed on purpose, or a simulated crowd's), ``imputed`` (the imputed labels at the end) and
  ``prediction`` (the best model's predicted label for every item and annotator); what the report's paired
  bootstrap and its imputation baselines read;
- ``model.pt``: the fitted model of the best validation epoch (:class:`simlabel_ext.fitted.FittedModel`), what
  ``simlabel predict`` reads;
- ``checkpoints/``: ``epoch-NNNN.pt`` (the newest two) and ``best.pt`` (:mod:`simlabel_ext.train.checkpoint`).

JSON files hold no NaN or infinity (an undefined number is ``null``); every file is written atomically.

One writer at a time: :meth:`RunDirectory.lock` holds ``.lock`` (an exclusive ``flock``, with the holder's PID in
it) while a run writes. A second process is refused at once with :class:`RunDirectoryInUse` naming the directory
and the holder's PID; the kernel drops the lock of a process that died, so a lock file left by a dead process is
taken over, with a warning naming that process.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .storage import write_atomic, write_json

__all__ = ["IMPUTED_COLUMNS", "RunDirectory", "RunDirectoryInUse"]

#: The columns of ``imputed_labels.csv``.
IMPUTED_COLUMNS = ("task", "worker", "label", "confidence", "epoch", "step", "revisions")


class RunDirectoryInUse(ValueError):
    """Another live process writes into this run directory."""


class RunDirectory:
    """The files of one run in ``path`` (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------------------------------------ names
    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.json"

    @property
    def imputed_path(self) -> Path:
        return self.path / "imputed_labels.csv"

    @property
    def similarity_path(self) -> Path:
        return self.path / "similarity.npz"

    @property
    def predictions_path(self) -> Path:
        return self.path / "predictions.npz"

    @property
    def model_path(self) -> Path:
        return self.path / "model.pt"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def lock_path(self) -> Path:
        return self.path / ".lock"

    @property
    def finished(self) -> bool:
        """Whether the run ended (its ``metrics.json`` exists)."""
        return self.metrics_path.is_file()

    # ------------------------------------------------------------------------------------------------ writers
    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the directory's write lock (creating the directory) for the body; see the module docstring."""
        self.create()
        fd = self._acquire()
        try:
            previous = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            if previous and previous != str(os.getpid()):
                warnings.warn(f"{self.path}: took over the lock left by process {previous}, which is no longer "
                              "running", stacklevel=3)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                self.lock_path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # closing drops the flock

    def append_log(self, line: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def write_outputs(self, metrics: dict[str, Any], history: list[dict[str, Any]], imputed: pd.DataFrame,
                      similarity: dict[str, np.ndarray], annotators: list[str],
                      predictions: dict[str, np.ndarray]) -> None:
        """A finished run's files: history, imputed labels (columns :data:`IMPUTED_COLUMNS`), similarity
        statistics, predictions, then ``metrics.json`` last (its presence marks the run finished)."""
        write_json(self.history_path, history)
        write_atomic(self.imputed_path, lambda fh: imputed.to_csv(
            fh, index=False, columns=list(IMPUTED_COLUMNS), float_format="%.6f", lineterminator="\n"))
        write_atomic(self.similarity_path, lambda fh: np.savez(fh, annotators=np.array(annotators), **similarity),
                     binary=True)
        write_atomic(self.predictions_path, lambda fh: np.savez_compressed(fh, **predictions), binary=True)
        write_json(self.metrics_path, metrics)

    def _acquire(self) -> int:
        """An open descriptor of ``.lock`` holding its flock; :class:`RunDirectoryInUse` if another process holds
        it. Retries when the file was replaced between the open and the flock (its holder removed it)."""
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise RunDirectoryInUse(f"{self.path} is in use by process {holder} (a run writing there); wait for "
                                        "it to end, stop it, or choose another directory") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    # ------------------------------------------------------------------------------------------------ readers
    def metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics_path.read_text(encoding="utf-8"))

    def history(self) -> list[dict[str, Any]]:
        return json.loads(self.history_path.read_text(encoding="utf-8"))

    def similarity(self) -> dict[str, np.ndarray]:
        """The arrays of ``similarity.npz`` (annotator ids as strings)."""
        with np.load(self.similarity_path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}

    def predictions(self) -> dict[str, np.ndarray]:
        """The arrays of ``predictions.npz`` (see the module docstring)."""
        with np.load(self.predictions_path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}

    def imputed_labels(self, text: bool = False) -> pd.DataFrame:
        """``imputed_labels.csv`` with every id and name as a string (as they were written); with ``text``, the
        numbers too, exactly as written."""
        dtype = str if text else {"task": str, "worker": str, "label": str}
        return pd.read_csv(self.imputed_path, dtype=dtype, keep_default_na=False)
