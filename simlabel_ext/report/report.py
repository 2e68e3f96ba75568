"""The report directory of a comparison: ``results.json``, ``results.md``, ``results.csv`` and the figures.

It reads finished run directories (``metrics.json``, ``history.json``, ``similarity.npz``, ``predictions.npz``)
through :class:`~simlabel_ext.rundir.RunDirectory`; it never trains. A run without ``predictions.npz`` (written
before runs had one) still gets its row, without the bootstrap interval and the imputation baselines.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..rundir import RunDirectory
from ..storage import write_json
from .choice import choose, markdown_choice
from .consensus import consensus_outcome
from .imputation import imputation_baselines
from .paired import SplitOutcome, split_outcome
from .tables import aggregate, markdown_tables, write_csv

__all__ = ["FIGURES", "write_report"]

#: File name → what the figure shows.
FIGURES = {
    "similarity_heatmap.png": "annotator kappa before / after training (training labels; after = observed + "
                              "imputed), annotators ordered by clustering",
    "accuracy_by_annotator.png": "per-annotator test accuracy by mode",
    "avg_vs_missing_rate.png": "Avg test accuracy against the extra missing rate, by mode",
    "gain_vs_skip.png": "paired gain in Avg over Skip with its 95 % bootstrap interval, by model, mode and missing "
                        "rate",
    "imputations.png": "imputed labels and their accuracy over epochs",
}


def _heatmap_run(runs: Sequence[tuple[Path, dict[str, Any]]]) -> tuple[Path, dict[str, Any]]:
    """The run whose similarity is drawn: the first simlabel+confidence run (lowest rate, seed), else the first."""
    ordered = sorted(runs, key=lambda r: (r[1]["mode"] != "simlabel+confidence", r[1]["missing_rate"], r[1]["seed"]))
    return ordered[0]


def write_report(out_dir: str | Path, runs: Sequence[tuple[Path, dict[str, Any]]], header: dict[str, Any],
                 plots: bool = True) -> list[dict[str, Any]]:
    """Write the report of ``runs`` (run directory, metrics) into ``out_dir``; returns the aggregated rows.

    ``header`` (dataset, options, grid, command) goes to the top of ``results.json`` and ``results.md``. With more
    than one model, both also hold the model to use (:mod:`.choice`; ``choice`` in ``results.json``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records, outcomes, consensus = _evidence(runs)
    rows = aggregate(records, outcomes, consensus)
    choices = choose(records, outcomes) if len({m["model"] for m in records}) > 1 else []
    records = [dict(m, run_dir=str(d)) for (d, _), m in zip(runs, records)]
    write_json(out / "results.json", {**header, "runs": records, "table": rows,
                                      "choice": [c.as_dict() for c in choices]})
    write_csv(out / "results.csv", rows)
    lines = [f"# SimLabel comparison: dataset `{header.get('dataset')}`", ""]
    if header.get("command"):
        lines += ["Regenerate with:", "", f"    {header['command']}", ""]
    lines += [markdown_tables(rows), *markdown_choice(choices)]
    if plots:
        lines += _write_figures(out, runs, rows)
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows


def _evidence(runs: Sequence[tuple[Path, dict[str, Any]]]
              ) -> tuple[list[dict[str, Any]], list[SplitOutcome | None], list[SplitOutcome | None]]:
    """Each run's metrics (SimLabel + Confidence runs with their ``imputation_baselines``), test outcome and the
    test outcome of its consensus given to every annotator, read from ``predictions.npz`` (None where a run has
    none)."""
    def predictions(path: Path) -> dict[str, Any] | None:
        run = RunDirectory(path)
        return run.predictions() if run.predictions_path.is_file() else None

    skip_dirs = {(float(m["missing_rate"]), m["model"], m["seed"]): d for d, m in runs if m["mode"] == "skip"}
    records, outcomes, consensus = [], [], []
    for d, m in runs:
        arrays = predictions(d)
        outcomes.append(split_outcome(arrays) if arrays is not None else None)
        consensus.append(consensus_outcome(arrays) if arrays is not None else None)
        record = dict(m)
        if arrays is not None and m["mode"] == "simlabel+confidence":
            skip_dir = skip_dirs.get((float(m["missing_rate"]), m["model"], m["seed"]))
            record["imputation_baselines"] = imputation_baselines(
                arrays, predictions(skip_dir) if skip_dir is not None else None)
        records.append(record)
    return records, outcomes, consensus


def _write_figures(out: Path, runs: Sequence[tuple[Path, dict[str, Any]]], rows: list[dict[str, Any]]) -> list[str]:
    from .plots import (
        cluster_order,
        plot_accuracy_by_annotator,
        plot_avg_vs_missing_rate,
        plot_gain_vs_skip,
        plot_imputations,
        plot_similarity_heatmaps,
    )

    run_dir, metrics = _heatmap_run(runs)
    similarity = RunDirectory(run_dir).similarity()
    before, after = similarity["kappa_initial"], similarity["kappa_final"]
    annotators = [str(a) for a in similarity["annotators"]]
    title = f"{metrics['model']} {metrics['mode']}, seed {metrics['seed']}"
    plot_similarity_heatmaps(out / "similarity_heatmap.png",
                             [("before training (observed)", before), (f"after training ({title})", after)],
                             annotators, order=cluster_order(before))
    rates = sorted({r["missing_rate"] for r in rows})
    plot_accuracy_by_annotator(out / "accuracy_by_annotator.png", rows, rates[0])
    plot_avg_vs_missing_rate(out / "avg_vs_missing_rate.png", rows)
    plot_gain_vs_skip(out / "gain_vs_skip.png", rows)
    histories = {}
    for d, m in runs:
        if m["mode"] == "simlabel+confidence" and m["seed"] == min(x["seed"] for _, x in runs):
            histories[f"{m['model']} mr {m['missing_rate']:g}"] = RunDirectory(d).history()
    plot_imputations(out / "imputations.png", histories)
    lines = ["## Figures", ""]
    lines += [f"![{what}]({name})  \n*{name}*: {what}.\n" for name, what in FIGURES.items()]
    return lines
