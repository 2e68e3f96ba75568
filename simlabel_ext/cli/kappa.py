"""``simlabel kappa``: the annotator kappa matrix (and overlaps, similarity) of a long-format annotation file."""
from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Sequence

import torch

from ..data import read_long
from ..similarity import DEFAULT_N0, SimilarityEngine


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "kappa",
        help="Cohen's kappa between every pair of annotators of a long-format file",
        description=(
            "Read a long-format annotation file (one row per label) and write the A x A matrix of Cohen's kappa "
            "on each pair's co-labelled items (empty cell = undefined: no shared item, or chance agreement 1). "
            "A one-line summary goes to stderr."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("answers", help="long-format CSV/TSV (or Parquet with pyarrow): one row per annotation")
    p.add_argument("--format", choices=("csv", "parquet"), default=None,
                   help="the file's format when its suffix does not tell (.csv, .tsv, .txt, .parquet, .pq)")
    p.add_argument("--out", default="-", help="where to write the kappa matrix CSV ('-' = stdout)")
    p.add_argument("--task-col", default="task", help="column holding the item id")
    p.add_argument("--worker-col", default="worker", help="column holding the annotator id")
    p.add_argument("--label-col", default="label", help="column holding the label")
    p.add_argument(
        "--classes", default=None, help="comma-separated class names (default: the sorted distinct labels)"
    )
    p.add_argument("--overlap-out", default=None, help="also write the A x A counts of co-labelled items here")
    p.add_argument("--similarity-out", default=None, help="also write the similarity S used for weighting here")
    p.add_argument(
        "--n0",
        type=float,
        default=DEFAULT_N0,
        help="shrinkage of S: kappa is scaled by n / (n + n0) for n shared items (0 = the paper)",
    )
    p.add_argument("--min-overlap", type=int, default=0, help="S is 0 for pairs sharing fewer items than this")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="also draw the kappa heat map here, annotators ordered by clustering (needs matplotlib)")
    p.add_argument(
        "--backend", choices=("auto", "cpp", "torch"), default="auto", help="similarity engine implementation"
    )
    p.set_defaults(run=run)


def write_pair_matrix(path: str, ids: Sequence[str], values: torch.Tensor, *, integer: bool = False) -> None:
    """Write an A x A matrix as CSV with the annotator ids as header and first column; NaN as an empty cell."""
    rows = values.tolist()
    out = sys.stdout if path == "-" else open(path, "w", newline="", encoding="utf-8")
    try:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["annotator", *ids])
        for ident, row in zip(ids, rows):
            cells = [
                "" if isinstance(v, float) and math.isnan(v) else (str(int(v)) if integer else repr(float(v)))
                for v in row
            ]
            writer.writerow([ident, *cells])
    finally:
        if out is not sys.stdout:
            out.close()


def run(args: argparse.Namespace) -> int:
    if args.n0 < 0 or not math.isfinite(args.n0):
        raise ValueError(f"--n0 must be a finite number >= 0; got {args.n0}")
    if args.min_overlap < 0:
        raise ValueError(f"--min-overlap must be >= 0; got {args.min_overlap}")
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    matrix = read_long(
        args.answers,
        task_col=args.task_col,
        worker_col=args.worker_col,
        label_col=args.label_col,
        classes=classes,
        file_format=args.format,
    )
    engine = SimilarityEngine.from_matrix(matrix, n0=args.n0, min_overlap=args.min_overlap, backend=args.backend)
    kappa = engine.kappa()
    ids = matrix.annotator_ids
    write_pair_matrix(args.out, ids, kappa)
    if args.overlap_out:
        write_pair_matrix(args.overlap_out, ids, engine.overlap(), integer=True)
    if args.similarity_out:
        write_pair_matrix(args.similarity_out, ids, engine.similarity(dtype=torch.float64))
    if args.plot:
        from ..report.plots import plot_similarity_heatmaps

        plot_similarity_heatmaps(args.plot, [(f"Cohen's kappa: {args.answers}", kappa.numpy())], ids)
    off_diagonal = ~torch.eye(len(ids), dtype=torch.bool)
    defined = kappa[off_diagonal & ~kappa.isnan()]
    summary = matrix.summary()
    mean = f"{defined.mean().item():.3f}" if defined.numel() else "n/a"
    print(
        f"kappa: {summary.num_items} items, {summary.num_annotators} annotators, {summary.num_classes} classes, "
        f"{summary.num_labels} labels ({100 * summary.missing_rate:.1f}% missing); "
        f"{defined.numel() // 2} of {off_diagonal.sum().item() // 2} pairs defined, mean kappa {mean}"
        + ("" if args.out == "-" else f" -> {args.out}"),
        file=sys.stderr,
    )
    return 0
