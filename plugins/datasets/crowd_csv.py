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
are ignored. Features must be finite numbers that float32 holds (the error names the task and the column).
Task ids are compared as strings (``.npz`` integers as their decimal form). Tables are read as annotation files
are (:func:`simlabel_ext.data.read_features`): ``.parquet`` / ``.pq`` are Parquet, ``.tsv`` or a header with tabs
and no comma is tab-separated, ``.csv`` / ``.txt`` are comma-separated. The feature column names are kept with
the data set, so that a model fitted on it can read the same columns of a new file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from simlabel_ext.data import (
    AnnotationMatrix,
    CrowdDataset,
    make_dataset,
    read_features,
    read_long,
    read_table,
)
from simlabel_ext.models import InputSpec
from simlabel_ext.registry import DatasetSpec, OptionSpec, hookimpl

from . import COMMON_OPTIONS

OPTIONS = (
    *COMMON_OPTIONS,
    OptionSpec("labels", str, None, "required: long-format annotation file (CSV/TSV/Parquet)", path=True),
    OptionSpec("features", str, None, "required: features per task (CSV/TSV/Parquet table, or .npz)", path=True),
    OptionSpec("truth", str, None, "optional: true labels per task (CSV/TSV/Parquet)", path=True),
    OptionSpec("task_col", str, "task", "column holding the task (item) id, in every file"),
    OptionSpec("worker_col", str, "worker", "column holding the annotator id"),
    OptionSpec("label_col", str, "label", "column holding the label"),
    OptionSpec("truth_col", str, None, "column of the truth file holding the true label (default: label_col)"),
    OptionSpec("classes", str, None, "comma-separated class names (default: the sorted distinct labels)"),
    OptionSpec("standardize", bool, False, "z-score the features with training-split statistics"),
)


def read_truth(path: Path, matrix: AnnotationMatrix, task_col: str, truth_col: str) -> torch.Tensor:
    """``int64 [N]`` class indices of the true labels (``-1`` for items without a truth row)."""
    index = {item: i for i, item in enumerate(matrix.item_ids)}
    classes = {name: k for k, name in enumerate(matrix.class_names)}
    truth = torch.full((matrix.num_items,), -1, dtype=torch.int64)
    seen: dict[str, str] = {}
    for place, (task, label) in read_table(path, [task_col, truth_col]):
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
    features = read_features(options["features"], task_col)
    x = features.align(matrix.item_ids, what="labelled task")
    truth = None
    if options["truth"] is not None:
        truth_col = options["truth_col"] or options["label_col"]
        truth = read_truth(Path(options["truth"]), matrix, task_col, truth_col)
    return make_dataset(
        x, InputSpec("features", (x.shape[1],)), matrix, truth,
        seed=options["seed"], missing_rate=options["missing_rate"], standardize_features=options["standardize"],
        feature_names=features.names,
    )


@hookimpl
def simlabel_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("crowd-csv", load, OPTIONS, "a long-format annotation file plus a features file")]
