"""The files a finished run leaves in its directory (besides ``config.toml``, ``train.log`` and ``checkpoints/``).

- ``metrics.json``: per-annotator test accuracy with test counts, Avg over annotators, micro accuracy, the number
  of imputations and their accuracy where labels were removed on purpose, best epoch with its validation loss,
  Avg and micro accuracy (for choosing options on validation data only), steps, time;
- ``history.json``: one record per epoch (loss parts and term counts, λ, learning rate, imputed so far and their
  accuracy, mean similarity, validation loss / Avg / micro, seconds);
- ``imputed_labels.csv``: the imputed labels in long format — ``task, worker, label, confidence, epoch, step,
  revisions`` — with the data set's own item, annotator and class names (readable by
  :func:`simlabel_ext.data.read_long`);
- ``similarity.npz``: ``kappa_initial``, ``kappa_final``, ``similarity_initial``, ``similarity_final``
  (``[A, A]``), ``overlap_initial`` (shared training items per pair) and ``annotators`` (ids).

JSON files hold no NaN or infinity: an undefined number is ``null``.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import CrowdDataset
from ..imputation import ImputationStore

__all__ = ["IMPUTED_COLUMNS", "json_safe", "write_imputed_labels", "write_json", "write_outputs"]

IMPUTED_COLUMNS = ("task", "worker", "label", "confidence", "epoch", "step", "revisions")


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(json_safe(value), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_imputed_labels(path: Path, store: ImputationStore, dataset: CrowdDataset) -> int:
    """Write the store's imputed labels in long format; returns the number of rows."""
    entries = store.entries()
    ann = dataset.annotations
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(IMPUTED_COLUMNS)
        for i, a, c, conf, epoch, step, rev in zip(*(entries[k].tolist() for k in (
                "item", "annotator", "label", "confidence", "epoch", "step", "revisions"))):
            writer.writerow([ann.item_ids[i], ann.annotator_ids[a], ann.class_names[c], f"{conf:.6f}", epoch, step,
                             rev])
    os.replace(tmp, path)
    return len(entries["item"])


def write_outputs(
    out_dir: Path,
    metrics: dict[str, Any],
    history: list[dict[str, Any]],
    store: ImputationStore,
    dataset: CrowdDataset,
    similarity: dict[str, torch.Tensor],
) -> None:
    """Write the files of the module docstring into ``out_dir``."""
    write_json(out_dir / "history.json", history)
    write_imputed_labels(out_dir / "imputed_labels.csv", store, dataset)
    arrays = {name: t.detach().cpu().numpy() for name, t in similarity.items()}
    np.savez(out_dir / "similarity.npz", annotators=np.array(dataset.annotations.annotator_ids), **arrays)
    write_json(out_dir / "metrics.json", metrics)  # last: its presence marks a finished run
