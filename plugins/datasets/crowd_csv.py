"""Dataset ``crowd-csv``: any long-format annotation file plus a features file (and optional true labels).

Options
- ``seed`` (int, 0), ``missing_rate`` (float, 0.0): see :mod:`simlabel_plugins.datasets`;
- ``labels`` (str, required): the long-format annotation file (CSV/TSV, or Parquet with pyarrow), read by
  :func:`simlabel_ext.data.read_long` with ``task_col`` (``"task"``), ``worker_col`` (``"worker"``) and
  ``label_col`` (``"label"``); ``classes`` (str, optional): comma-separated class names (default: the sorted
  distinct labels);
- ``features`` (str, required): one feature vector per task, either a CSV/TSV/Parquet table with the task
  column (named ``task_col``) and numeric feature columns (every other column, in header order), or a ``.npz``
  file with arrays ``task`` (``[n]``, integers or strings) and ``features`` (``[n, D]``, numeric);
- ``truth`` (str, optional): true labels, a CSV/TSV/Parquet table with columns ``task_col`` and ``truth_col``
  (default: ``label_col``); values must be class names. Tasks without a truth row get ``-1``.
- ``standardize`` (bool, False): z-score each feature with the training split's mean and std.

Items are the tasks that have at least one label, in order of first appearance in ``labels``. Every one of them
must have exactly one feature row (the error lists the first five that have none); feature rows of other tasks
are ignored. Features must be finite numbers (the error names the task and the column). Task ids are compared
as strings (``.npz`` integers as their decimal form). Tables: ``.parquet`` / ``.pq`` are Parquet, ``.tsv`` is
tab-separated, anything else is CSV.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simlabel_ext.data import AnnotationMatrix, CrowdDataset, make_dataset, read_long
from simlabel_ext.models import InputSpec
from simlabel_ext.registry import DatasetSpec, OptionSpec, hookimpl

from . import COMMON_OPTIONS

OPTIONS = (
    *COMMON_OPTIONS,
    OptionSpec("labels", str, None, "required: long-format annotation file (CSV/TSV/Parquet)"),
    OptionSpec("features", str, None, "required: features per task (CSV/TSV/Parquet table, or .npz)"),
    OptionSpec("truth", str, None, "optional: true labels per task (CSV/TSV/Parquet)"),
    OptionSpec("task_col", str, "task", "column holding the task (item) id, in every file"),
    OptionSpec("worker_col", str, "worker", "column holding the annotator id"),
    OptionSpec("label_col", str, "label", "column holding the label"),
    OptionSpec("truth_col", str, None, "column of the truth file holding the true label (default: label_col)"),
    OptionSpec("classes", str, None, "comma-separated class names (default: the sorted distinct labels)"),
    OptionSpec("standardize", bool, False, "z-score the features with training-split statistics"),
)


def _table(path: Path) -> tuple[list[str], Iterator[tuple[str, list[str]]]]:
    """Header and ``(place, cells)`` rows of a CSV/TSV (``line k``) or Parquet (``row k``) table."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ImportError("reading Parquet needs pyarrow: pip install pyarrow") from exc
        table = pq.read_table(path)
        columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
        rows = (
            (f"row {r + 1}", ["" if col[r] is None else str(col[r]).strip() for col in columns])
            for r in range(table.num_rows)
        )
        return [str(name) for name in table.column_names], rows
    with open(path, newline="", encoding="utf-8-sig") as fh:
        lines = list(csv.reader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    if not lines:
        raise ValueError(f"{path}: the file is empty (no header line)")
    header = [name.strip() for name in lines[0]]

    def rows() -> Iterator[tuple[str, list[str]]]:
        for k, row in enumerate(lines[1:]):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}, line {k + 2}: {len(row)} field(s) but the header has {len(header)}")
            yield f"line {k + 2}", [cell.strip() for cell in row]

    return header, rows()


def _column(path: Path, header: list[str], name: str) -> int:
    if header.count(name) != 1:
        raise ValueError(f"{path}: needs exactly one column {name!r}; its columns are {header}")
    return header.index(name)


def read_features(path: Path, task_col: str) -> tuple[list[str], list[str], np.ndarray]:
    """``(task ids, feature column names, float64 [n, D])`` of a features file (see the module docstring)."""
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("task", "features") if k not in npz.files]
            if missing:
                raise ValueError(f"{path}: missing array(s) {missing}; it holds {npz.files}")
            tasks, values = npz["task"], npz["features"]
        if tasks.ndim != 1 or tasks.dtype.kind not in "iuU" or values.ndim != 2 or values.dtype.kind not in "iuf":
            raise ValueError(f"{path}: needs 'task' [n] (integers or strings) and 'features' [n, D] (numbers)")
        if len(tasks) != len(values):
            raise ValueError(f"{path}: 'task' has {len(tasks)} entries but 'features' has {len(values)} rows")
        names = [f"feature {j}" for j in range(values.shape[1])]
        return [str(t) for t in tasks.tolist()], names, values.astype(np.float64)
    header, rows = _table(path)
    key = _column(path, header, task_col)
    names = [name for j, name in enumerate(header) if j != key]
    if not names:
        raise ValueError(f"{path}: no feature columns besides {task_col!r}")
    tasks, values = [], []
    for place, cells in rows:
        task = cells[key]
        row = []
        for j, cell in enumerate(cells):
            if j == key:
                continue
            try:
                row.append(float(cell))
            except ValueError:
                message = f"task {task!r}, column {header[j]!r}: {cell!r} is not a number"
                raise ValueError(f"{path}, {place}: {message}") from None
        tasks.append(task)
        values.append(row)
    return tasks, names, np.array(values, dtype=np.float64).reshape(len(values), len(names))


def align_features(
    path: Path, matrix: AnnotationMatrix, tasks: list[str], names: list[str], values: np.ndarray
) -> torch.Tensor:
    """``float32 [N, D]`` in the matrix's item order; errors for repeated, missing and non-finite rows."""
    row_of: dict[str, int] = {}
    for r, task in enumerate(tasks):
        if task in row_of:
            first = row_of[task] + 1
            raise ValueError(f"{path}: task {task!r} has more than one feature row (data rows {first} and {r + 1})")
        row_of[task] = r
    absent = [item for item in matrix.item_ids if item not in row_of]
    if absent:
        raise ValueError(
            f"{path}: {len(absent)} labelled task(s) have no features, the first: {', '.join(map(repr, absent[:5]))}"
        )
    x = values[[row_of[item] for item in matrix.item_ids]]
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        i, j = bad[0]
        raise ValueError(f"{path}: task {matrix.item_ids[i]!r}, column {names[j]!r}: non-finite value {x[i, j]}")
    return torch.from_numpy(x.astype(np.float32))


def read_truth(path: Path, matrix: AnnotationMatrix, task_col: str, truth_col: str) -> torch.Tensor:
    """``int64 [N]`` class indices of the true labels (``-1`` for items without a truth row)."""
    header, rows = _table(path)
    key, col = _column(path, header, task_col), _column(path, header, truth_col)
    index = {item: i for i, item in enumerate(matrix.item_ids)}
    classes = {name: k for k, name in enumerate(matrix.class_names)}
    truth = torch.full((matrix.num_items,), -1, dtype=torch.int64)
    seen: dict[str, str] = {}
    for place, cells in rows:
        task, label = cells[key], cells[col]
        if label not in classes:
            raise ValueError(f"{path}, {place}: true label {label!r} is not one of the classes {list(classes)}")
        if task in seen and seen[task] != label:
            raise ValueError(f"{path}, {place}: task {task!r} has two true labels, {seen[task]!r} and {label!r}")
        seen[task] = label
        if task in index:
            truth[index[task]] = classes[label]
    return truth


def load(options: dict[str, Any]) -> CrowdDataset:
    """The :class:`CrowdDataset` of resolved ``options``."""
    for required in ("labels", "features"):
        if options[required] is None:
            raise ValueError(f"dataset 'crowd-csv' needs the option {required!r}")
    task_col = options["task_col"]
    classes = options["classes"]
    matrix = read_long(
        options["labels"],
        task_col=task_col,
        worker_col=options["worker_col"],
        label_col=options["label_col"],
        classes=None if classes is None else [c.strip() for c in classes.split(",")],
    )
    features = Path(options["features"])
    x = align_features(features, matrix, *read_features(features, task_col))
    truth = None
    if options["truth"] is not None:
        truth_col = options["truth_col"] or options["label_col"]
        truth = read_truth(Path(options["truth"]), matrix, task_col, truth_col)
    return make_dataset(
        x, InputSpec("features", (x.shape[1],)), matrix, truth,
        seed=options["seed"], missing_rate=options["missing_rate"], standardize_features=options["standardize"],
    )


@hookimpl
def simlabel_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("crowd-csv", load, OPTIONS, "a long-format annotation file plus a features file")]
