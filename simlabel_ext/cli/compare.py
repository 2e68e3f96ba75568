"""``simlabel compare``: train every (model, mode, seed, missing rate) and write a report like the paper's Tables 2–4.

With no arguments it compares Skip, SimLabel and SimLabel + Confidence with the ``heads`` model on the
``amer2-like`` synthetic set over three seeds. Everything is validated (dataset, its files, models and their
options, modes) before the first run starts; finished runs are reused when the command is repeated.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from ..experiment import expand_grid, run_grid
from ..ops.options import MODES
from ..registry import get_registry
from ..report import write_report
from ..report.tables import defined
from ..rundir import RunDirectory
from ..train import load_run_dataset
from ..train.config import check_missing_rate
from .train import add_config_arguments, resolve_config

DEFAULT_MODELS = "heads"
DEFAULT_MODES = ",".join(MODES)
DEFAULT_SEEDS = "0,1,2"
DEFAULT_MISSING_RATES = "0"


def _list(text: str, kind: type, what: str) -> list:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"--{what} is empty")
    try:
        values = [kind(t) for t in items]
    except ValueError:
        raise ValueError(f"--{what} expects comma-separated {kind.__name__} values; got {text!r}") from None
    if len(set(values)) != len(values):
        raise ValueError(f"--{what} repeats a value: {text!r}")
    return values


def _percent(value: float | None) -> str:
    return f"{100 * value:.1f}" if defined(value) else "n/a"


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "compare",
        help="compare Skip, SimLabel and SimLabel + Confidence over models, seeds and missing rates",
        description=(
            "Train every (model, mode, seed, missing rate) of the grid and write OUT/results.json, results.md, "
            "results.csv and PNG figures (similarity heat map before/after, per-annotator accuracy by mode, Avg "
            "against missing rate, imputations over epochs). Runs live in OUT/runs/...; finished ones are not "
            "repeated, interrupted ones resume. Training options (below) apply to every run; options of the "
            "dataset plugin are flags too (e.g. --labels FILE --features FILE --truth FILE for crowd-csv)."
        ),
    )
    p.add_argument("--config", default=None, metavar="FILE", help="TOML or YAML base config (flags override it)")
    p.add_argument("--out", default="runs/compare", metavar="DIR", help="report directory (default: runs/compare)")
    p.add_argument("--models", default=DEFAULT_MODELS,
                   help=f"comma-separated model plugins (default: {DEFAULT_MODELS})")
    p.add_argument("--modes", default=DEFAULT_MODES, help=f"comma-separated modes (default: {DEFAULT_MODES})")
    p.add_argument("--seeds", default=DEFAULT_SEEDS, help=f"comma-separated seeds (default: {DEFAULT_SEEDS})")
    p.add_argument("--missing-rates", default=DEFAULT_MISSING_RATES,
                   help="comma-separated extra missing rates of the training labels; 0 = natural missingness "
                        f"(default: {DEFAULT_MISSING_RATES})")
    p.add_argument("--jobs", type=int, default=1, help="runs trained in parallel worker processes (default: 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per run (default: torch's choice; 1 with --jobs > 1)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    add_config_arguments(p, skip=("model", "mode", "seed", "missing_rate"))
    p.set_defaults(run=run, accepts_extra=True)


def run(args: argparse.Namespace, extra: list[str] | None = None) -> int:
    base = resolve_config(args, list(extra or []))
    models = _list(args.models, str, "models")
    modes = _list(args.modes, str, "modes")
    seeds = _list(args.seeds, int, "seeds")
    rates = _list(args.missing_rates, float, "missing-rates")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1; got {args.jobs}")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; the modes are: {', '.join(MODES)}")
    for seed in seeds:
        if seed < 0:
            raise ValueError(f"--seeds must be >= 0; got {seed}")
    for rate in rates:  # the same rule as simlabel train's --missing-rate (TrainConfig)
        check_missing_rate(rate, "--missing-rates")
    registry = get_registry()
    for model in models:
        registry.model(model)
    # Load the data once and build each model once: every file and option problem surfaces before training.
    probe = base.replace(model=models[0], mode=modes[0], seed=seeds[0], missing_rate=rates[0])
    dataset = load_run_dataset(probe)
    for model in models:
        options = base.model_options if model == base.model else {}
        registry.build_model(model, dataset.input_spec, dataset.num_annotators, dataset.num_classes, **options)
    out = Path(args.out)
    with RunDirectory(out).lock():  # one comparison writes into OUT at a time (each run also locks its own)
        return _compare(args, base, dataset, models, modes, seeds, rates, out)


def _compare(args: argparse.Namespace, base, dataset, models, modes, seeds, rates, out: Path) -> int:
    runs = expand_grid(base, out, models, modes, seeds, rates)
    threads = args.threads if args.threads else (1 if args.jobs > 1 else None)
    print(f"compare: dataset {base.dataset} ({dataset.num_items} items, {dataset.num_annotators} annotators, "
          f"{dataset.num_classes} classes); {len(models)} model(s) x {len(modes)} mode(s) x {len(seeds)} seed(s) x "
          f"{len(rates)} missing rate(s) = {len(runs)} runs, {sum(r.finished for r in runs)} already finished; "
          f"runs in {out / 'runs'}", file=sys.stderr, flush=True)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(runs), desc="compare", unit="run", file=sys.stderr)
    started = time.perf_counter()

    def done(run, metrics, reused) -> None:
        line = (f"  {run.label}: Avg {_percent(metrics['avg_accuracy'])}  micro {_percent(metrics['micro_accuracy'])}"
                f"  imputed {metrics['imputations']}"
                + (f"  λ {metrics['lam_selected']:g} chosen" if "lam_selected" in metrics else "")
                + ("  (reused)" if reused else f"  ({metrics['train_seconds']:.0f} s)"))
        if bar is not None:
            bar.update(1)
            bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    results = [(run.out_dir, metrics) for run, metrics in run_grid(runs, jobs=args.jobs, threads=threads,
                                                                 on_done=done)]
    if bar is not None:
        bar.close()
    order = {run.out_dir: k for k, run in enumerate(runs)}
    results.sort(key=lambda r: order[r[0]])
    header = {"dataset": base.dataset, "dataset_options": base.dataset_options, "models": models, "modes": modes,
              "seeds": seeds, "missing_rates": rates, "config": base.to_dict(),
              "command": "simlabel " + shlex.join(args.argv)}
    write_report(out, results, header, plots=not args.no_plots)
    print((out / "results.md").read_text(encoding="utf-8"))
    print(f"compare: {len(runs)} runs in {time.perf_counter() - started:.0f} s; report in {out}", file=sys.stderr)
    return 0
