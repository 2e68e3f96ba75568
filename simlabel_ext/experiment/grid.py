"""A comparison grid: every (model, mode, seed, missing rate) run of one base config, resumable, optionally parallel.

Each run lives in ``OUT/runs/<model>/<mode>/mr<rate>/seed<seed>/`` (a normal :class:`~simlabel_ext.train.Trainer`
run directory). A run whose ``metrics.json`` exists is finished and is not repeated; one with checkpoints but no
metrics is resumed from its newest readable checkpoint. With ``jobs > 1`` runs execute in that many worker
processes (:mod:`.workers`: spawned, each with ``torch.set_num_threads(threads)``, stopped with the grid).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..rundir import RunDirectory
from ..train import TrainConfig, fit_run, load_config
from .workers import run_in_workers

__all__ = ["GridRun", "expand_grid", "run_grid"]


@dataclass(frozen=True)
class GridRun:
    """One cell of the grid: its config and its run directory."""

    config: TrainConfig
    out_dir: Path

    @property
    def run(self) -> RunDirectory:
        return RunDirectory(self.out_dir)

    @property
    def finished(self) -> bool:
        return self.run.finished

    def check_reusable(self) -> None:
        """``ValueError`` if this run's directory already holds a run made with other options."""
        saved = self.run.config_path
        if not saved.is_file():
            return
        changed = load_config(saved).differences(self.config)
        if changed:
            key, before, now = changed[0]
            raise ValueError(f"{self.out_dir} holds a run with {key}={before!r}, but this comparison asks for "
                             f"{key}={now!r}; use another --out (or delete that run)")

    def metrics(self) -> dict[str, Any]:
        return self.run.metrics()

    @property
    def label(self) -> str:
        c = self.config
        return f"{c.model} {c.simlabel.mode} missing {c.missing_rate:g} seed {c.seed}"


def run_dir(root: Path, config: TrainConfig) -> Path:
    return root / "runs" / config.model / config.simlabel.mode.replace("+", "-") / f"mr{config.missing_rate!r}" / \
        f"seed{config.seed}"


def expand_grid(
    base: TrainConfig,
    root: str | Path,
    models: Sequence[str],
    modes: Sequence[str],
    seeds: Sequence[int],
    missing_rates: Sequence[float],
) -> list[GridRun]:
    """The grid's runs, ordered missing rate → seed → model → mode (so every seed's Skip baseline comes early).

    ``ValueError`` if a run directory already holds a run made with other options (it would not be reused).
    """
    root = Path(root)
    runs = []
    for rate in missing_rates:
        for seed in seeds:
            for model in models:
                model_options = base.model_options if model == base.model else {}
                for mode in modes:
                    config = base.replace(model=model, model_options=dict(model_options), mode=mode, seed=int(seed),
                                          missing_rate=float(rate))
                    run = GridRun(config, run_dir(root, config))
                    run.check_reusable()
                    runs.append(run)
    return runs


def _train(config_dict: dict[str, Any], out_dir: str, threads: int | None) -> dict[str, Any]:
    """Train one run (in this process or a worker); its log goes to its own ``train.log`` only."""
    if threads:
        torch.set_num_threads(threads)
    run = RunDirectory(out_dir)
    run.create()
    config = TrainConfig.from_dict(config_dict).replace(progress=False)
    return fit_run(config, run.path, log=run.append_log, resume=True).metrics  # a fresh start without checkpoint


def run_grid(
    runs: Sequence[GridRun],
    *,
    jobs: int = 1,
    threads: int | None = None,
    on_done: Callable[[GridRun, dict[str, Any], bool], None] | None = None,
) -> Iterator[tuple[GridRun, dict[str, Any]]]:
    """Train every unfinished run and yield ``(run, metrics)`` for every run (finished ones first).

    ``on_done(run, metrics, reused)`` is called as each run completes (``reused``: it was finished before).
    """
    for run in runs:
        if run.finished:
            metrics = run.metrics()
            if on_done:
                on_done(run, metrics, True)
            yield run, metrics
    todo = [run for run in runs if not run.finished]
    if jobs <= 1:
        for run in todo:
            metrics = _train(run.config.to_dict(), str(run.out_dir), threads)
            if on_done:
                on_done(run, metrics, False)
            yield run, metrics
        return
    tasks = [(run, (run.config.to_dict(), str(run.out_dir), threads)) for run in todo]
    for run, metrics in run_in_workers(_train, tasks, jobs, label=lambda r: r.label):
        if on_done:
            on_done(run, metrics, False)
        yield run, metrics
