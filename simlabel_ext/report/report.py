"""The report directory of a comparison: ``results.json``, ``results.md``, ``results.csv`` and the figures.

It reads finished run directories (``metrics.json``, ``history.json``, ``similarity.npz``) through
:class:`~simlabel_ext.rundir.RunDirectory`; it never trains.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..rundir import RunDirectory
from ..storage import write_json
from .tables import aggregate, markdown_tables, write_csv

__all__ = ["FIGURES", "write_report"]

#: File name → what the figure shows.
FIGURES = {
    "similarity_heatmap.png": "annotator kappa before / after training (training labels; after = observed + "
                              "imputed), annotators ordered by clustering",
    "accuracy_by_annotator.png": "per-annotator test accuracy by mode",
    "avg_vs_missing_rate.png": "Avg test accuracy against the extra missing rate, by mode",
    "imputations.png": "imputed labels and their accuracy over epochs",
}


def _heatmap_run(runs: Sequence[tuple[Path, dict[str, Any]]]) -> tuple[Path, dict[str, Any]]:
    """The run whose similarity is drawn: the first simlabel+confidence run (lowest rate, seed), else the first."""
    ordered = sorted(runs, key=lambda r: (r[1]["mode"] != "simlabel+confidence", r[1]["missing_rate"], r[1]["seed"]))
    return ordered[0]


def write_report(out_dir: str | Path, runs: Sequence[tuple[Path, dict[str, Any]]], header: dict[str, Any],
                 plots: bool = True) -> list[dict[str, Any]]:
    """Write the report of ``runs`` (run directory, metrics) into ``out_dir``; returns the aggregated rows.

    ``header`` (dataset, options, grid, command) goes to the top of ``results.json`` and ``results.md``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = aggregate([m for _, m in runs])
    records = [dict(m, run_dir=str(d)) for d, m in runs]
    write_json(out / "results.json", {**header, "runs": records, "table": rows})
    write_csv(out / "results.csv", rows)
    lines = [f"# SimLabel comparison: dataset `{header.get('dataset')}`", ""]
    if header.get("command"):
        lines += ["Regenerate with:", "", f"    {header['command']}", ""]
    lines += [markdown_tables(rows)]
    if plots:
        lines += _write_figures(out, runs, rows)
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows


def _write_figures(out: Path, runs: Sequence[tuple[Path, dict[str, Any]]], rows: list[dict[str, Any]]) -> list[str]:
    from .plots import (cluster_order, plot_accuracy_by_annotator, plot_avg_vs_missing_rate, plot_imputations,
                        plot_similarity_heatmaps)

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
    histories = {}
    for d, m in runs:
        if m["mode"] == "simlabel+confidence" and m["seed"] == min(x["seed"] for _, x in runs):
            histories[f"{m['model']} mr {m['missing_rate']:g}"] = RunDirectory(d).history()
    plot_imputations(out / "imputations.png", histories)
    lines = ["## Figures", ""]
    lines += [f"![{what}]({name})  \n*{name}*: {what}.\n" for name, what in FIGURES.items()]
    return lines
