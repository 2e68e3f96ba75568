"""``lam = "auto"``: choose the KL weight λ on the validation split (ALGORITHM.md §3).

A fixed λ that helps one crowd can hurt another (docs/results.md). ``auto`` trains one run per candidate of
:data:`LAM_CANDIDATES` in ``OUT/lam-<λ>/``: 0 (the KL term off, i.e. Skip's objective: the fallback), 1 (the
paper's) and 3 (the fixed default). It keeps the run with the highest best-epoch validation Avg; ties go to the
smaller λ, so λ falls back to 0 whenever the KL term does not raise validation accuracy. Test labels take no part
in the choice.

The chosen run's files (history, imputed labels, similarity, ``model.pt``) are copied into ``OUT``, and
``OUT/metrics.json`` records the choice: ``lam_selected`` and
``lam_candidates`` (each λ with its validation Avg, and its test Avg for reporting). It costs one run per candidate.
"""
from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..data import CrowdDataset
from ..fitted import FittedModel
from ..rundir import RunDirectory
from ..storage import write_json
from .config import LAM_AUTO, TrainConfig, write_config
from .distributed import Distributed, pick_device
from .trainer import (
    Trainer,
    TrainResult,
    hold_run_directory,
    load_run_dataset,
    log_to_run,
    resolve_dataset_paths,
)

__all__ = ["LAM_CANDIDATES", "choose_lam", "fit_run"]

#: The λ values ``lam = "auto"`` trains (0 first: the fallback when the KL term does not help).
LAM_CANDIDATES = (0.0, 1.0, 3.0)


def choose_lam(val_avg: Mapping[float, float | None]) -> float:
    """The λ with the highest validation Avg (a fraction); ties go to the smaller λ. A missing score (``None`` or
    NaN: no validation labels) never wins; when no λ has a score, the smallest λ is chosen."""
    if not val_avg:
        raise ValueError("choose_lam needs at least one candidate")
    best, best_score = min(val_avg), -math.inf
    for lam in sorted(val_avg):
        score = val_avg[lam]
        if score is not None and not math.isnan(score) and score > best_score:
            best, best_score = lam, score
    return best


def fit_run(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    dist: Distributed | None = None,
    dataset: CrowdDataset | None = None,
    log: Callable[[str], None] | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[Trainer, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train one run (into the run directory ``out_dir``, or in memory) and return its :class:`TrainResult`.

    Dataset options that name files are made absolute first (:func:`resolve_dataset_paths`) unless ``dataset``
    is given. A fixed ``lam`` (or Skip mode, where λ has no effect) is one :meth:`Trainer.fit`. ``lam = "auto"`` trains every
    candidate (in ``OUT/lam-<λ>/``; with ``resume``, a candidate that already finished is reused) and keeps the
    best on validation; its metrics gain ``lam_selected`` and ``lam_candidates``.
    """
    if dataset is None:
        config = resolve_dataset_paths(config)
    if config.lam != LAM_AUTO or config.simlabel.mode == "skip":
        return Trainer(config, out_dir, dist=dist, dataset=dataset, log=log, on_epoch_end=on_epoch_end).fit(
            resume=resume)
    run = RunDirectory(out_dir) if out_dir is not None else None
    dist = dist if dist is not None else Distributed(device=pick_device(config.device))
    dataset = dataset if dataset is not None else load_run_dataset(config)
    with hold_run_directory(run, dist):
        return _fit_candidates(config, run, dist, dataset, log, resume, on_epoch_end)


def _fit_candidates(config: TrainConfig, run: RunDirectory | None, dist: Distributed, dataset: CrowdDataset,
                    log: Callable[[str], None] | None, resume: bool,
                    on_epoch_end: Callable[[Trainer, dict[str, Any]], None] | None) -> TrainResult:
    if dist.is_main and run is not None:
        run.create()
        write_config(config, run.config_path)
    results: dict[float, TrainResult] = {}
    for lam in LAM_CANDIDATES:
        sub = RunDirectory(run.path / f"lam-{lam:g}") if run is not None else None
        if resume and sub is not None and sub.finished:
            results[lam] = _finished_result(sub)
        else:
            trainer = Trainer(config.replace(lam=lam), None if sub is None else sub.path, dist=dist, dataset=dataset,
                              log=log, on_epoch_end=on_epoch_end)
            results[lam] = trainer.fit(resume=resume)
    chosen = choose_lam({lam: r.metrics["best_val_avg_accuracy"] for lam, r in results.items()})
    metrics = dict(results[chosen].metrics)
    metrics["lam_selected"] = chosen
    metrics["lam_candidates"] = [
        {"lam": lam, "val_avg_accuracy": r.metrics["best_val_avg_accuracy"],
         "test_avg_accuracy": r.metrics["avg_accuracy"]}
        for lam, r in results.items()
    ]
    result = dataclasses.replace(results[chosen], metrics=metrics)
    if dist.is_main:
        if run is not None:
            source = RunDirectory(run.path / f"lam-{chosen:g}")
            for name in ("history_path", "imputed_path", "similarity_path", "predictions_path", "model_path"):
                if getattr(source, name).is_file():
                    shutil.copy2(getattr(source, name), getattr(run, name))
            write_json(run.metrics_path, metrics)
        scores = ", ".join(f"λ={lam:g}: {_pct(r.metrics['best_val_avg_accuracy'])}" for lam, r in results.items())
        where = f"; outputs in {run}" if run is not None else ""
        line = f"lam auto: validation Avg {scores} -> λ = {chosen:g}{where}"
        if log is not None:
            log(line)
        else:
            log_to_run(run, line)
    dist.barrier()
    return result


def _finished_result(run: RunDirectory) -> TrainResult:
    """The :class:`TrainResult` of a finished candidate, read back from its run directory."""
    return TrainResult(run.metrics(), FittedModel.load(run.model_path), run.history(), run.imputed_labels(),
                       {k: v for k, v in run.similarity().items() if k != "annotators"},
                       run.predictions() if run.predictions_path.is_file() else {})


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"
