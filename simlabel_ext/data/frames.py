"""Annotations given in memory: a pandas long table, a wide ``[N, A]`` array, or an :class:`AnnotationMatrix`.

:func:`annotations_from` turns any of them into an :class:`AnnotationMatrix` (whose ids are strings) and keeps
the caller's own values of the tasks, workers and classes (:class:`Annotations`), so that results can be given
back in them (an integer worker id stays an integer).

- A long table (crowd-kit's format): one row per label, columns ``task``, ``worker`` and ``label`` by default
  (configurable); other columns are ignored. Tasks are numbered in order of first appearance; workers and classes
  are sorted (in first-appearance order when their values cannot be compared). An empty cell (NaN, None) is an
  error naming the row; identical repeated (task, worker, label) rows are collapsed with a warning; conflicting
  ones are an error naming both rows.
- A wide array (numpy, torch or nested lists): ``[N, A]`` integers, ``-1`` for a missing label; tasks and workers
  are the row and column numbers, classes ``0..C-1``.
- ``classes`` declares the classes (their order is kept, classes nobody used are kept, another label is an error);
  for a wide array it names the class indices ``0..C-1``.

Ids are compared as their ``str()``: two values with the same text (``1`` and ``"1"``) are an error.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from .annotations import AnnotationMatrix, from_arrays

__all__ = ["Annotations", "annotations_from", "plain"]


class Annotations(NamedTuple):
    """An :class:`AnnotationMatrix` and the caller's values of its ``tasks``, ``workers`` and ``classes`` (lists
    aligned with the matrix's rows, columns and class indices)."""

    matrix: AnnotationMatrix
    tasks: list[Any]
    workers: list[Any]
    classes: list[Any]


def plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds (``np.int64(3)`` → ``3``); anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _sorted(values: Sequence[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:  # values of different kinds: keep the order they came in
        return list(values)


def _ids(values: Sequence[Any], what: str) -> tuple[str, ...]:
    """``str()`` of each value; an error when two values have the same text."""
    seen: dict[str, Any] = {}
    for value in values:
        text = str(value)
        if text in seen:
            raise ValueError(f"{what} {seen[text]!r} and {value!r} have the same text {text!r}; use ids that differ "
                             "as strings")
        seen[text] = value
    return tuple(seen)


def annotations_from(
    annotations: Any,
    *,
    task_col: str = "task",
    worker_col: str = "worker",
    label_col: str = "label",
    classes: Sequence[Any] | None = None,
) -> Annotations:
    """The :class:`Annotations` of a long :class:`pandas.DataFrame`, a wide ``[N, A]`` array or an
    :class:`AnnotationMatrix` (see the module docstring)."""
    if isinstance(annotations, AnnotationMatrix):
        if classes is not None and list(map(str, classes)) != list(annotations.class_names):
            raise ValueError(f"classes {list(classes)} differ from the annotation matrix's {annotations.class_names}")
        return Annotations(annotations, list(annotations.item_ids), list(annotations.annotator_ids),
                           list(annotations.class_names))
    if isinstance(annotations, pd.DataFrame):
        return _from_long_frame(annotations, task_col, worker_col, label_col, classes)
    if isinstance(annotations, (np.ndarray, torch.Tensor, list, tuple)):
        return _from_wide(annotations, classes)
    raise TypeError(f"annotations must be a pandas DataFrame (long format: {task_col}, {worker_col}, {label_col}), a "
                    f"wide [N, A] array with -1 for missing labels, or an AnnotationMatrix; got "
                    f"{type(annotations).__name__}")


def _from_wide(labels: Any, classes: Sequence[Any] | None) -> Annotations:
    array = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if array.ndim != 2:
        raise ValueError(f"wide annotations must be a 2-D [N, A] array; got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise ValueError(f"wide annotations must hold integer class indices (-1 = missing); got dtype {array.dtype}")
    n, a = array.shape
    if classes is not None:
        names = list(classes)
        bad = np.argwhere((array < -1) | (array >= len(names)))
        if len(bad):
            i, j = (int(v) for v in bad[0])
            raise ValueError(f"annotations[{i}, {j}] = {array[i, j]} is not -1 or a class index 0..{len(names) - 1}")
        matrix = from_arrays(array, class_names=_ids(names, "class"))
    else:
        bad = np.argwhere(array < -1)
        if len(bad):
            i, j = (int(v) for v in bad[0])
            raise ValueError(f"annotations[{i}, {j}] = {array[i, j]} is not -1 (missing) or a class index >= 0")
        matrix = from_arrays(array)
        names = list(range(matrix.num_classes))
    return Annotations(matrix, list(range(n)), list(range(a)), names)


def _from_long_frame(frame: pd.DataFrame, task_col: str, worker_col: str, label_col: str,
                     classes: Sequence[Any] | None) -> Annotations:
    columns = [task_col, worker_col, label_col]
    if len(set(columns)) != 3:
        raise ValueError(f"task_col, worker_col and label_col must differ: {task_col!r}, {worker_col!r}, {label_col!r}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the annotations table lacks the column(s) {missing}; its columns are "
                         f"{list(frame.columns)} (set task_col, worker_col, label_col)")
    if len(frame) == 0:
        raise ValueError("the annotations table has no rows")
    table = frame[columns]
    empty = table.isna().to_numpy()
    if empty.any():
        r, j = (int(v) for v in np.argwhere(empty)[0])
        raise ValueError(f"annotations row {r} (index {frame.index[r]!r}): empty {columns[j]!r} cell")
    tasks = [plain(t) for t in pd.unique(table[task_col])]
    workers = _sorted([plain(w) for w in pd.unique(table[worker_col])])
    used = [plain(c) for c in pd.unique(table[label_col])]
    if classes is None:
        class_values = _sorted(used)
    else:
        class_values = list(classes)
        declared = set(class_values)
        unknown = [c for c in used if c not in declared]
        if unknown:
            r = int(np.flatnonzero(table[label_col].isin(unknown).to_numpy())[0])
            raise ValueError(f"annotations row {r} (index {frame.index[r]!r}): label {unknown[0]!r} is not one of "
                             f"the classes {class_values}")
    task_index = {t: i for i, t in enumerate(tasks)}
    worker_index = {w: j for j, w in enumerate(workers)}
    class_index = {c: k for k, c in enumerate(class_values)}
    rows = np.array([task_index[plain(t)] for t in table[task_col]], dtype=np.int64)
    cols = np.array([worker_index[plain(w)] for w in table[worker_col]], dtype=np.int64)
    labels = np.array([class_index[plain(c)] for c in table[label_col]], dtype=np.int64)
    flat = rows * len(workers) + cols
    order = np.argsort(flat, kind="stable")
    repeated = np.flatnonzero(flat[order][1:] == flat[order][:-1])
    if len(repeated):
        first, second = order[repeated], order[repeated + 1]
        conflict = np.flatnonzero(labels[first] != labels[second])
        if len(conflict):
            r1, r2 = sorted((int(first[conflict[0]]), int(second[conflict[0]])))
            raise ValueError(f"annotations rows {r1} and {r2}: task {tasks[rows[r1]]!r} has two labels by worker "
                             f"{workers[cols[r1]]!r}, {class_values[labels[r1]]!r} and {class_values[labels[r2]]!r}")
        warnings.warn(f"collapsed {len(repeated)} identical repeated annotation row(s)", stacklevel=3)
    matrix_labels = torch.full((len(tasks), len(workers)), -1, dtype=torch.int64)
    matrix_labels[torch.from_numpy(rows), torch.from_numpy(cols)] = torch.from_numpy(labels)
    matrix = AnnotationMatrix(matrix_labels, _ids(tasks, "task"), _ids(workers, "worker"),
                              _ids(class_values, "class"))
    return Annotations(matrix, tasks, workers, class_values)
