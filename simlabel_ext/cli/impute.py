"""``simlabel impute``: the imputed labels of a finished run as a long-format file (optionally with the observed).

Columns: ``task, worker, label, source, confidence, epoch, step, revisions``; ``source`` is ``imputed`` or
``observed`` (with ``--with-observed``; observed rows have empty provenance cells). The format follows the
suffix of ``--out``: ``.csv``, ``.tsv`` or ``.parquet`` (pyarrow).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from ..data import write_table
from ..train import load_config, load_run_dataset

COLUMNS = ("task", "worker", "label", "source", "confidence", "epoch", "step", "revisions")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "impute",
        help="write the imputed labels of a finished run (optionally merged with the observed ones)",
        description=(
            "Write the labels that confidence cycling imputed in the finished run RUN (a `simlabel train` output "
            "directory) as a long-format file with their provenance (confidence, epoch, step, revisions). With "
            "--with-observed the observed labels of every split are included too (source = observed), giving a "
            "completed annotation file."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN", help="run directory holding metrics.json and imputed_labels.csv")
    p.add_argument("--out", default="-", help="output file (.csv, .tsv or .parquet); '-' = CSV on stdout")
    p.add_argument("--with-observed", action="store_true", help="include the observed labels (source = observed)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    for name in ("metrics.json", "imputed_labels.csv", "config.toml"):
        if not (run_dir / name).is_file():
            raise ValueError(f"{run_dir} is not a finished run: {name} is missing")
    with open(run_dir / "imputed_labels.csv", newline="", encoding="utf-8") as fh:
        imputed = [[r["task"], r["worker"], r["label"], "imputed", r["confidence"], r["epoch"], r["step"],
                    r["revisions"]] for r in csv.DictReader(fh)]
    rows = []
    if args.with_observed:
        annotations = load_run_dataset(load_config(run_dir / "config.toml")).annotations
        labels = annotations.labels
        rows = [[annotations.item_ids[i], annotations.annotator_ids[a], annotations.class_names[int(labels[i, a])],
                 "observed", None, None, None, None] for i, a in (labels >= 0).nonzero().tolist()]
    rows += imputed
    if args.out == "-":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    else:
        write_table(args.out, None, list(COLUMNS), rows)
    print(f"impute: {len(imputed)} imputed" + (f" and {len(rows) - len(imputed)} observed" if args.with_observed
          else "") + " labels" + ("" if args.out == "-" else f" -> {args.out}"), file=sys.stderr)
    return 0
