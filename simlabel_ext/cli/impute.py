"""``simlabel impute``: the imputed labels of a finished run as a long-format file (optionally with the real ones).

Columns: ``task, worker, label, source, confidence, epoch, step, revisions``; ``source`` is ``imputed`` or
``observed``. Without ``--with-observed`` the file holds every label the run imputed. With it, it is the completed
annotation file: every real label of the input exactly once (``observed``, all splits, including the labels a
``missing_rate`` run removed from training on purpose; empty provenance cells), and the imputed labels only where
no real label exists. The format follows the suffix of ``--out``: ``.csv``, ``.tsv`` or ``.parquet`` (pyarrow).

The real labels are read again through the run's ``config.toml``, whose file paths are absolute (recorded by
``simlabel train`` and ``simlabel compare``), so the command gives the same file from any working directory.
"""
from __future__ import annotations

import argparse
import csv
import sys

from ..data import write_table
from ..rundir import RunDirectory
from ..train import load_config, load_run_dataset

COLUMNS = ("task", "worker", "label", "source", "confidence", "epoch", "step", "revisions")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "impute",
        help="write the imputed labels of a finished run (optionally merged with the real ones)",
        description=(
            "Write the labels that confidence cycling imputed in the finished run RUN (a `simlabel train` output "
            "directory) as a long-format file with their provenance (confidence, epoch, step, revisions). With "
            "--with-observed the file is the completed annotation file: every real label of the input once "
            "(source = observed, all splits) and imputed labels only where no real label exists."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN", help="run directory holding metrics.json and imputed_labels.csv")
    p.add_argument("--out", default="-", help="output file (.csv, .tsv or .parquet); '-' = CSV on stdout")
    p.add_argument("--with-observed", action="store_true",
                   help="include every real label (source = observed); imputed labels only where none exists")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    run_dir = RunDirectory(args.run_dir)
    for path in (run_dir.metrics_path, run_dir.imputed_path, run_dir.config_path):
        if not path.is_file():
            raise ValueError(f"{run_dir} is not a finished run: {path.name} is missing")
    imputed = run_dir.imputed_labels(text=True)
    rows = [[r.task, r.worker, r.label, "imputed", r.confidence, r.epoch, r.step, r.revisions]
            for r in imputed.itertuples(index=False)]
    observed, shadowed = [], 0
    if args.with_observed:
        dataset = load_run_dataset(load_config(run_dir.config_path))
        real = dataset.original if dataset.original is not None else dataset.annotations  # before any removal
        labels = real.labels
        observed = [[real.item_ids[i], real.annotator_ids[a], real.class_names[int(labels[i, a])], "observed", None,
                     None, None, None] for i, a in (labels >= 0).nonzero().tolist()]
        have = {(task, worker) for task, worker, *_ in observed}
        kept = [row for row in rows if (row[0], row[1]) not in have]
        shadowed, rows = len(rows) - len(kept), kept
    table = observed + rows
    if args.out == "-":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([["" if v is None else v for v in row] for row in table])
    else:
        write_table(args.out, None, list(COLUMNS), table)
    summary = f"impute: {len(rows)} imputed"
    if args.with_observed:
        summary += f" and {len(observed)} observed labels"
        if shadowed:
            summary += (f" ({shadowed} imputed at entries whose real label was removed for training are left out: "
                        "the real label is written)")
    else:
        summary += " labels"
    print(summary + ("" if args.out == "-" else f" -> {args.out}"), file=sys.stderr)
    return 0
