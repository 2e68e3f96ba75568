"""Feature vectors per item: files, pandas frames and arrays, checked and aligned to a list of items.

A features file is a table (CSV / TSV / Parquet, read like the annotation files of :mod:`.formats`: a ``.tsv``
or a header with tabs and no comma is tab-separated) with a task column and numeric feature columns, or a
``.npz`` file with arrays ``task`` (``[n]``, integers or strings) and ``features`` (``[n, D]``, numbers).
``feature_names`` selects columns by name (any other column is ignored); without it every column but the task
column is a feature, in header order.

Every value must be a finite number that float32 can hold: the errors name the file, the line or row, the task,
the column and the value.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .formats import _Table

__all__ = ["FeatureTable", "read_features"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class FeatureTable:
    """``tasks`` (ids as strings, one per row), ``names`` (the ``D`` feature columns) and ``values`` (float64
    ``[n, D]``) of a features source; ``source`` names it and ``places[r]`` row ``r`` (``line 7``) in messages."""

    tasks: list[str]
    names: list[str]
    values: np.ndarray
    source: str
    places: list[str]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, source: str = "X", feature_names: Sequence[str] | None = None
                   ) -> FeatureTable:
        """A table of a :class:`pandas.DataFrame` indexed by task: its columns (or ``feature_names`` of them, in
        that order; others are ignored) must be numeric."""
        names = [str(c) for c in frame.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{source}: two columns have the same name: {names}")
        if feature_names is not None:
            absent = [name for name in feature_names if name not in names]
            if absent:
                raise ValueError(f"{source} lacks the feature column(s) {absent[:5]} the model was fit on")
            frame = frame.iloc[:, [names.index(name) for name in feature_names]]
            names = list(feature_names)
        for name, dtype in zip(names, frame.dtypes):
            if dtype.kind not in "iufb":
                raise ValueError(f"{source}: column {name!r} holds {dtype}, not numbers")
        return cls([str(t) for t in frame.index], names, frame.to_numpy(dtype=np.float64), source,
                   [f"row {r} (index {t!r})" for r, t in enumerate(frame.index)])

    def align(self, items: Sequence[str], what: str = "task") -> torch.Tensor:
        """``float32 [len(items), D]``: the rows of ``items`` in that order. Errors for a task with two rows, for
        items without a row (the first five are named; ``what`` says what they are) and for a value of those rows
        that is not finite or does not fit in float32."""
        row_of: dict[str, int] = {}
        for r, task in enumerate(self.tasks):
            if task in row_of:
                raise ValueError(f"{self.source}: task {task!r} has more than one feature row (data rows "
                                 f"{row_of[task] + 1} and {r + 1})")
            row_of[task] = r
        absent = [item for item in items if item not in row_of]
        if absent:
            shown = ", ".join(map(repr, absent[:5])) + (", ..." if len(absent) > 5 else "")
            raise ValueError(f"{self.source}: {len(absent)} {what}(s) have no features: {shown}")
        return self._take([row_of[item] for item in items])

    def to_tensor(self) -> torch.Tensor:
        """``float32 [n, D]``: every row in order, with the value checks of :meth:`align`."""
        return self._take(list(range(len(self.tasks))))

    def _take(self, rows: list[int]) -> torch.Tensor:
        values = self.values[rows]
        bad = np.argwhere(~np.isfinite(values) | (np.abs(values) > _FLOAT32_MAX))
        if len(bad):
            i, j = (int(v) for v in bad[0])
            r, value = rows[i], float(values[i, j])
            why = f"non-finite value {value}" if not np.isfinite(value) else \
                f"value {value!r} does not fit in float32 (|x| > 3.4e38)"
            raise ValueError(f"{self.source}, {self.places[r]}: task {self.tasks[r]!r}, column {self.names[j]!r}: "
                             f"{why}")
        return torch.from_numpy(values.astype(np.float32))


def read_features(path: str | Path, task_col: str = "task", feature_names: Sequence[str] | None = None
                  ) -> FeatureTable:
    """The :class:`FeatureTable` of a features file (see the module docstring); :meth:`FeatureTable.align` checks
    the values of the rows it takes."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        return _read_npz(path, feature_names)
    table = _Table(path, None)
    if table.header.count(task_col) != 1:
        raise ValueError(f"{path}: needs exactly one column {task_col!r}; its columns are {table.header}")
    key = table.header.index(task_col)
    if feature_names is None:
        feature_names = [name for j, name in enumerate(table.header) if j != key]
        if not feature_names:
            raise ValueError(f"{path}: no feature columns besides {task_col!r}")
    used = table.columns(list(feature_names))  # a name twice in the header is an error naming both fields
    names = [table.header[j] for j in used]
    tasks, places, values = [], [], []
    for place, (task, *cells) in table.rows([key, *used]):
        row = []
        for name, cell in zip(names, cells):
            try:
                row.append(float(cell))
            except ValueError:
                raise ValueError(f"{path}, {place}: task {task!r}, column {name!r}: {cell!r} is not a number") from None
        tasks.append(task)
        places.append(place)
        values.append(row)
    return FeatureTable(tasks, names, np.array(values, dtype=np.float64).reshape(len(values), len(names)), str(path),
                        places)


def _read_npz(path: Path, feature_names: Sequence[str] | None) -> FeatureTable:
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
    if feature_names is not None and list(feature_names) != names:
        raise ValueError(f"{path}: a .npz file has no column names; the model expects the columns "
                         f"{list(feature_names)[:3]}...: give a table with those columns")
    return FeatureTable([str(t) for t in tasks.tolist()], names, values.astype(np.float64), str(path),
                        [f"row {r + 1}" for r in range(len(tasks))])
