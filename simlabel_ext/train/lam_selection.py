"""``lam = "auto"``: choose the KL weight λ on the validation split (ALGORITHM.md §3).

A fixed λ that helps one crowd can hurt another (docs/results.md). ``auto`` trains one run per candidate of
:data:`LAM_CANDIDATES` in ``OUT/lam-<λ>/``: 0 (the KL term off, i.e. Skip's objective: the fallback), 1 (the
paper's) and 3 (the fixed default). It keeps the run with the highest best-epoch validation Avg; ties go to the
smaller λ, so λ falls back to 0 whenever the KL term does not raise validation accuracy. Test labels take no part
in the choice.

The chosen run's files are copied into ``OUT``, and ``OUT/metrics.json`` records the choice: ``lam_selected`` and
``lam_candidates`` (each λ with its validation Avg, and its test Avg for reporting). It costs one run per candidate.
"""
from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..data import CrowdDataset
from .config import LAM_AUTO, TrainConfig, write_config
from .distributed import Distributed, pick_device
from .outputs import write_json
from .trainer import Trainer, load_run_dataset, log_to_run

__all__ = ["LAM_CANDIDATES", "choose_lam", "fit_run"]

#: The λ values ``lam = "auto"`` trains (0 first: the fallback when the KL term does not help).
LAM_CANDIDATES = (0.0, 1.0, 3.0)
#: The chosen candidate's files that are copied into the run directory (metrics.json is rewritten).
_COPIED = ("history.json", "imputed_labels.csv", "similarity.npz")


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


def candidate_dir(out_dir: str | Path, lam: float) -> Path:
    return Path(out_dir) / f"lam-{lam:g}"


def fit_run(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    dist: Distributed | None = None,
    dataset: CrowdDataset | None = None,
    log: Callable[[str], None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train one run into ``out_dir`` and return its ``metrics.json`` content.

    A fixed ``lam`` (or Skip mode, where λ has no effect) is one :meth:`Trainer.fit`. ``lam = "auto"`` trains every
    candidate (with ``resume``, a candidate that already finished is reused) and keeps the best on validation.
    """
    if config.lam != LAM_AUTO or config.mode == "skip":
        return Trainer(config, out_dir, dist=dist, dataset=dataset, log=log).fit(resume=resume)
    out = Path(out_dir)
    dist = dist if dist is not None else Distributed(device=pick_device(config.device))
    dataset = dataset if dataset is not None else load_run_dataset(config)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_config(config, out / "config.toml")
    results = {}
    for lam in LAM_CANDIDATES:
        sub = candidate_dir(out, lam)
        if resume and (sub / "metrics.json").is_file():
            results[lam] = json.loads((sub / "metrics.json").read_text(encoding="utf-8"))
        else:
            trainer = Trainer(config.replace(lam=lam), sub, dist=dist, dataset=dataset, log=log)
            results[lam] = trainer.fit(resume=resume)
    chosen = choose_lam({lam: m["best_val_avg_accuracy"] for lam, m in results.items()})
    metrics = dict(results[chosen])
    metrics["lam_selected"] = chosen
    metrics["lam_candidates"] = [
        {"lam": lam, "val_avg_accuracy": m["best_val_avg_accuracy"], "test_avg_accuracy": m["avg_accuracy"]}
        for lam, m in results.items()
    ]
    if dist.is_main:
        for name in _COPIED:
            source = candidate_dir(out, chosen) / name
            if source.is_file():
                shutil.copy2(source, out / name)
        write_json(out / "metrics.json", metrics)
        scores = ", ".join(f"λ={lam:g}: {_pct(m['best_val_avg_accuracy'])}" for lam, m in results.items())
        line = f"lam auto: validation Avg {scores} -> λ = {chosen:g}; outputs in {out}"
        if log is not None:
            log(line)
        else:
            log_to_run(out, line)
    dist.barrier()
    return metrics


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"
