"""Checkpoints: what a resumed run needs, written atomically, opened without running code, a corrupt one skipped.

The schema (:data:`CHECKPOINT_FORMAT`): ``epoch`` (epochs completed), ``global_step``, ``config`` (flat options),
``model``, ``optimizer`` and ``scheduler`` state, ``rng_states`` (``[world_size, ...]``: each rank's CPU
generator), ``cuda_rng_state`` (or ``None``), ``store`` (the imputation store's entries, sparse), ``kappa``
(checked against the engine rebuilt from the store on resume), ``early_stopping`` (best validation loss, its
epoch, epochs since) and ``history``. :func:`capture` builds it from a trainer (a collective under DDP: every
rank takes part) and :func:`restore` puts it back, refusing a checkpoint made with other options (named) or
whose similarity statistics do not match its store. ``best.pt`` holds the best epoch's model weights only.

Every checkpoint is a dict of tensors and plain data saved with :func:`simlabel_ext.storage.save_torch` (temporary
file, fsync, rename) and opened with ``weights_only=True`` (:func:`simlabel_ext.storage.load_torch`), so it can
never execute code. A run keeps its last :data:`KEEP` epoch checkpoints (``epoch-0007.pt``, ...);
:func:`load_latest` opens the newest and, if it is unreadable (e.g. truncated on disk), warns naming the file
and the cause, and falls back to the one before.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Protocol

import torch

from ..data import CrowdDataset
from ..imputation import ImputationStore
from ..similarity import SimilarityEngine
from ..storage import TorchFileError, load_torch, save_torch
from .config import TrainConfig
from .distributed import Distributed

__all__ = ["CHECKPOINT_FORMAT", "KEEP", "READABLE_FORMATS", "REQUIRED", "CheckpointError", "Resumable", "capture",
           "epoch_checkpoints", "load_checkpoint", "load_latest", "restore", "save_atomic", "save_epoch_checkpoint"]

CHECKPOINT_FORMAT = "simlabel-checkpoint-2"
#: The formats :func:`restore` reads: ``-1`` held the imputation store's fields dense (``[N, A]`` each, about 40 MB
#: for sentiment_polarity), ``-2`` holds its entries sparsely (:meth:`ImputationStore.state_dict`).
READABLE_FORMATS = ("simlabel-checkpoint-1", CHECKPOINT_FORMAT)
#: The keys every epoch checkpoint holds.
REQUIRED = ("format", "epoch", "global_step", "config", "model", "optimizer", "scheduler", "rng_states", "store",
            "kappa", "early_stopping", "history")
#: How many epoch checkpoints a run keeps (the newest and its fallback).
KEEP = 2

_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")

CheckpointError = TorchFileError
"""A checkpoint that cannot be used (it holds code, is truncated or corrupt, or is not a simlabel checkpoint)."""

save_atomic = save_torch


# ---------------------------------------------------------------------------------------------------- schema
class Resumable(Protocol):
    """What a checkpoint captures and restores: the state of a :class:`~simlabel_ext.train.Trainer`."""

    config: TrainConfig
    dist: Distributed
    dataset: CrowdDataset
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    store: ImputationStore
    engine: SimilarityEngine
    epoch: int
    global_step: int
    best: dict[str, Any]
    history: list[dict[str, Any]]

    def similarity_source(self) -> torch.Tensor: ...

    def refresh_similarity(self) -> None: ...


def capture(trainer: Resumable) -> dict[str, Any]:
    """Everything a resumed run of ``trainer`` needs (every rank must call it: the RNG states are gathered)."""
    dist = trainer.dist
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": trainer.epoch,
        "global_step": trainer.global_step,
        "config": trainer.config.to_dict(),
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "rng_states": dist.all_gather_rows(torch.get_rng_state().unsqueeze(0)),
        "cuda_rng_state": torch.cuda.get_rng_state(dist.device) if dist.device.type == "cuda" else None,
        "store": trainer.store.state_dict(),
        "kappa": trainer.engine.kappa(),
        "early_stopping": dict(trainer.best),
        "history": list(trainer.history),
    }


def restore(trainer: Resumable, state: dict[str, Any], source: str) -> None:
    """Put ``state`` (from :func:`capture`) back into ``trainer``; ``source`` names it in errors."""
    if state["format"] not in READABLE_FORMATS:
        raise CheckpointError(f"{source}: unknown checkpoint format {state['format']!r}")
    changed = TrainConfig.from_dict(state["config"], source).differences(trainer.config)
    if changed:
        key, before, now = changed[0]
        raise ValueError(f"cannot resume from {source}: option {key!r} was {before!r} there but is {now!r} now")
    dist = trainer.dist
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    rngs = state["rng_states"]
    # a row of the stacked states, copied: torch.set_rng_state refuses (or crashes on) a view into another tensor
    torch.set_rng_state(rngs[dist.rank if len(rngs) == dist.world_size else 0].clone())
    if state.get("cuda_rng_state") is not None and dist.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng_state"], dist.device)
    trainer.store.load_state_dict(state["store"])
    config = trainer.config
    trainer.engine = SimilarityEngine(trainer.similarity_source(), trainer.dataset.num_classes, n0=config.n0,
                                      min_overlap=config.min_overlap)
    kappa, saved = trainer.engine.kappa(), state["kappa"]
    if not torch.equal(kappa.isnan(), saved.isnan()) or not torch.allclose(
        kappa.nan_to_num(), saved.nan_to_num(), rtol=0, atol=1e-12
    ):
        raise CheckpointError(f"{source}: its similarity statistics do not match its imputation store")
    trainer.refresh_similarity()
    trainer.epoch = int(state["epoch"])
    trainer.global_step = int(state["global_step"])
    trainer.best = dict(state["early_stopping"])
    trainer.history = list(state["history"])


def best_state(epoch: int, model: dict[str, torch.Tensor], val_loss: float) -> dict[str, Any]:
    """The content of ``best.pt``: the best epoch (numbered from 1), its model weights and validation loss."""
    return {"format": CHECKPOINT_FORMAT, "epoch": epoch, "model": model, "val_loss": val_loss}


# ---------------------------------------------------------------------------------------------------- files
def load_checkpoint(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Open a checkpoint with ``weights_only=True``; :class:`CheckpointError` naming the file if it holds code,
    is unreadable or lacks one of ``required``."""
    state = load_torch(path, "checkpoint")
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
    save_torch(state, path)
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
