"""``simlabel predict``: what each annotator would say about new items, from a fitted model and a features file.

``MODEL_OR_RUN`` is a model file (``SimLabel.save``) or a ``simlabel train`` run directory (its ``model.pt``, the
best validation epoch). The features file is any file ``crowd-csv`` reads (CSV, TSV, Parquet, ``.npz``): a model
that knows its feature column names takes those columns by name (others, such as a label column, are ignored),
otherwise every column but the task column is a feature, in order. The output follows the suffix of ``--out``
(``.csv``, ``.tsv``, ``.parquet``; ``-`` is CSV on stdout):

- ``--format long`` (default): ``task, worker, label, probability`` — one row per item and annotator; ``--proba``
  adds a column ``p_<class>`` per class with its probability;
- ``--format wide``: one row per item, ``task`` and one column per annotator holding its predicted label.
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from ..data import read_features
from ..estimator import SimLabel


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "predict",
        help="predict each annotator's label for new items with a fitted model",
        description=(
            "Predict what each annotator would say about the items of a features file, with a model file "
            "(SimLabel.save) or the model.pt of a `simlabel train` run directory. Features are read as crowd-csv "
            "reads them (CSV, TSV, Parquet, .npz); a model that knows its feature column names takes those "
            "columns by name."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL_OR_RUN", help="model file, or a run directory holding model.pt")
    p.add_argument("--features", required=True, metavar="FILE", help="features of the items to predict")
    p.add_argument("--out", default="-", help="output file (.csv, .tsv or .parquet); '-' = CSV on stdout")
    p.add_argument("--format", choices=("long", "wide"), default="long",
                   help="long: one row per (task, worker); wide: one row per task, one column per worker")
    p.add_argument("--proba", action="store_true",
                   help="long format: add a column p_CLASS per class with its probability")
    p.add_argument("--workers", default=None, help="comma-separated annotator ids to predict (default: all)")
    p.add_argument("--task-col", default="task", help="column of the features file holding the task id")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:K, or auto")
    p.set_defaults(run=run)


def predictions(model: SimLabel, path: str, task_col: str, workers: list[str] | None, format: str,
                proba: bool) -> pd.DataFrame:
    """The table ``simlabel predict`` writes (see the module docstring)."""
    if proba and format != "long":
        raise ValueError("--proba needs --format long")
    features = read_features(path, task_col, model.model_.feature_names)
    inputs = features.to_tensor()
    tasks = features.tasks
    if workers is not None:  # the ids as they are in the model (a file gives them as text)
        by_text = {str(a): a for a in model.model_.annotators}
        workers = [by_text.get(w, w) for w in workers]
    table = model.predict(inputs, workers=workers, format=format, tasks=tasks)
    if format == "wide":
        return table.reset_index()
    if proba:
        p = model.predict_proba(inputs, tasks=tasks, workers=workers).reshape(-1, len(model.classes_))
        for k, name in enumerate(model.model_.classes):
            table[f"p_{name}"] = p[:, k]
    return table


def run(args: argparse.Namespace) -> int:
    model = SimLabel.load(args.model, device=args.device)
    workers = [w.strip() for w in args.workers.split(",") if w.strip()] if args.workers else None
    table = predictions(model, args.features, args.task_col, workers, args.format, args.proba)
    if args.out == "-":
        table.to_csv(sys.stdout, index=False, lineterminator="\n")
    elif args.out.lower().endswith((".parquet", ".pq")):
        table.to_parquet(args.out, index=False)
    else:
        table.to_csv(args.out, index=False, sep="\t" if args.out.lower().endswith(".tsv") else ",",
                     lineterminator="\n")
    items = table["task"].nunique()
    print(f"predict: {items} item(s) x {len(workers) if workers else len(model.annotators_)} annotator(s)"
          + ("" if args.out == "-" else f" -> {args.out}"), file=sys.stderr)
    return 0
