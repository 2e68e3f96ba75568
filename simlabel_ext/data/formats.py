"""Reading and writing annotation files: the long format (one row per label) and the wide format (one row per item).

Long format (crowd-kit / truth-inference style): one row per annotation with an item column (``task_col``,
default ``"task"``), an annotator column (``worker_col``, ``"worker"``) and a label column (``label_col``,
``"label"``); any other columns are ignored. Items and annotators are numbered in order of first appearance.

Wide format: one row per item; the ``task_col`` column holds the item id and every other column is an
annotator (its header is the annotator id); a cell holds a class name, or is empty / ``"-1"`` for a missing
label (so ``""`` and ``"-1"`` cannot be class names in this format). Annotators keep the header's order.

Common rules
- ``file_format``: ``None`` picks the format from the suffix (``.csv``, ``.tsv``, ``.txt`` -> delimited text;
  ``.parquet``, ``.pq`` -> Parquet); ``"csv"`` or ``"parquet"`` forces one. Delimited text is UTF-8 (a BOM is
  skipped) with any line endings (LF, CRLF, CR only); ``.tsv`` files are tab-separated, other files are
  comma-separated unless their header line holds a tab and no comma. Blank lines are skipped.
- Parquet needs ``pyarrow`` (``pip install pyarrow``); every value is read as its ``str()`` and a null is an
  empty cell. Writers store every column as strings.
- Cells are stripped and compared as strings: ``"3"`` and ``"3.0"`` are different labels.
- ``classes=None`` infers the class names: the sorted distinct labels, sorted by integer value when all of them
  are integers (``"2" < "10"``). Given ``classes``, C is their number (classes nobody used are kept) and any
  other label is an error.
- Errors are :class:`AnnotationFormatError` (a ``ValueError``) and name the file, the place (``line k`` of a
  text file with the header as line 1, or ``row k`` of a Parquet file, 1-based) and the value: an empty file or
  a header without annotations, missing columns, a row with the wrong number of fields, an empty id or label
  cell, a non-finite label (``nan``, ``inf``, ... in any case), a label outside ``classes``, conflicting labels
  for one (item, annotator) pair, a repeated item (wide) or annotator column (wide).
- Identical repeated (item, annotator, label) rows of the long format are collapsed, with one warning giving
  their number. An annotator without labels (declared in ``annotators=`` of :func:`read_long`, or an all-empty
  wide column) is kept, with a warning naming it.
- Writers refuse ids and class names that would not read back the same (empty, surrounding whitespace,
  non-finite class names, and ``"-1"`` as a class in the wide format).
"""
from __future__ import annotations

import csv
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from .annotations import AnnotationMatrix

__all__ = ["AnnotationFormatError", "read_long", "read_table", "utf8_error", "write_long", "read_wide", "write_table",
           "write_wide"]

PathLike = str | os.PathLike

_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
_INTEGER = re.compile(r"[+-]?\d+")
_WIDE_MISSING = ("", "-1")


class AnnotationFormatError(ValueError):
    """An annotation file that cannot be read as asked; the message names the file, the place and the value."""


def utf8_error(path: PathLike) -> AnnotationFormatError:
    """The error for a text file that is not UTF-8: its line and column (1-based) and the first bad byte."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start]
        line = before.count(b"\n") + 1 if b"\n" in data else before.count(b"\r") + 1  # LF / CRLF, or CR only
        column = exc.start - max(before.rfind(b"\n"), before.rfind(b"\r"))
        return AnnotationFormatError(f"{path}, line {line}: byte 0x{data[exc.start]:02x} at column {column} is not "
                                     "UTF-8 text; save the file as UTF-8")
    return AnnotationFormatError(f"{path}: not UTF-8 text; save the file as UTF-8")


# ---------------------------------------------------------------------------------------------------- tables


def _file_format(path: Path, file_format: str | None) -> str:
    if file_format is None:
        try:
            return _SUFFIXES[path.suffix.lower()]
        except KeyError:
            raise ValueError(
                f"cannot tell the format of {path} from its suffix (known: {', '.join(_SUFFIXES)}); rename it, or "
                "name the format: --format csv|parquet on the command line, file_format= in Python"
            ) from None
    if file_format not in ("csv", "parquet"):
        raise ValueError(f"file_format must be None, 'csv' or 'parquet', not {file_format!r}")
    return file_format


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ImportError("reading or writing Parquet needs pyarrow: pip install pyarrow") from exc
    return pyarrow, pyarrow.parquet


class _Table:
    """The header and the rows ``(place, cells)`` of a delimited or Parquet file; cells are stripped strings."""

    def __init__(self, path: PathLike, file_format: str | None) -> None:
        self.path = Path(path)
        self.format = _file_format(self.path, file_format)
        self.header_place = "line 1" if self.format == "csv" else "schema"
        if self.format == "parquet":
            self.header = [str(name).strip() for name in _pyarrow()[1].read_schema(self.path).names]
        else:
            try:
                with open(self.path, newline="", encoding="utf-8-sig") as fh:
                    first = fh.readline()
            except UnicodeDecodeError:
                raise utf8_error(self.path) from None
            if not first:
                raise self.error("line 1", "the file is empty (no header line)")
            if not first.strip():
                raise self.error("line 1", "blank line where the header should be")
            tab = self.path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first)
            self.delimiter = "\t" if tab else ","
            self.header = [name.strip() for name in next(csv.reader([first], delimiter=self.delimiter))]

    def error(self, place: str, message: str) -> AnnotationFormatError:
        return AnnotationFormatError(f"{self.path}, {place}: {message}")

    def columns(self, names: Sequence[str]) -> list[int]:
        """Positions of ``names`` in the header; error listing the missing and the available columns."""
        missing = [n for n in names if n not in self.header]
        if missing:
            raise self.error(self.header_place, f"missing column(s) {missing}; available columns: {self.header}")
        for name in names:
            if self.header.count(name) > 1:
                pos = [i + 1 for i, h in enumerate(self.header) if h == name]
                raise self.error(self.header_place, f"column {name!r} appears more than once (fields {pos})")
        return [self.header.index(n) for n in names]

    def rows(self, used: Sequence[int]) -> Iterator[tuple[str, list[str]]]:
        """``(place, cells)`` per data row; ``cells`` holds the columns at ``used`` in that order."""
        if self.format == "parquet":
            table = _pyarrow()[1].read_table(self.path)
            cols = [table.column(i).to_pylist() for i in used]
            for r in range(table.num_rows):
                yield f"row {r + 1}", ["" if col[r] is None else str(col[r]).strip() for col in cols]
            return
        with open(self.path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=self.delimiter)
            try:
                next(reader)
                end = reader.line_num
                for row in reader:
                    start, end = end + 1, reader.line_num
                    if not row:
                        continue
                    if len(row) != len(self.header):
                        raise self.error(
                            f"line {start}",
                            f"{len(row)} field(s) but the header has {len(self.header)}: {row!r}",
                        )
                    yield f"line {start}", [row[i].strip() for i in used]
            except UnicodeDecodeError:
                raise utf8_error(self.path) from None


def read_table(path: PathLike, columns: Sequence[str], file_format: str | None = None
               ) -> Iterator[tuple[str, list[str]]]:
    """``(place, cells)`` for every data row of a CSV/TSV/Parquet table (the rules of this module): ``cells`` are
    the stripped values of ``columns``, in that order; ``place`` is ``line k`` or ``row k`` for messages. A missing
    or repeated column is an :class:`AnnotationFormatError` listing the available ones."""
    table = _Table(path, file_format)
    return table.rows(table.columns(list(columns)))


def write_table(path: PathLike, file_format: str | None, header: list[str], rows: list[list[str | None]]) -> None:
    """Write ``rows`` of strings (``None`` = empty cell / null) under ``header`` as CSV, TSV (``.tsv``) or Parquet
    (``.parquet`` or ``file_format="parquet"``, needs pyarrow)."""
    path = Path(path)
    if _file_format(path, file_format) == "parquet":
        pa, pq = _pyarrow()
        columns = [pa.array([row[j] for row in rows], type=pa.string()) for j in range(len(header))]
        pq.write_table(pa.Table.from_arrays(columns, names=header), path)
        return
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])


# ---------------------------------------------------------------------------------------------------- names


def _non_finite(value: str) -> bool:
    try:
        return not math.isfinite(float(value))
    except ValueError:
        return False


def _infer_classes(labels: set[str]) -> tuple[str, ...]:
    if labels and all(_INTEGER.fullmatch(s) for s in labels):
        return tuple(sorted(labels, key=lambda s: (int(s), s)))
    return tuple(sorted(labels))


def _declared(names: Sequence[str], what: str) -> tuple[str, ...]:
    """A declared list of classes or annotators: unique, non-empty, stripped strings."""
    if isinstance(names, str):
        raise ValueError(f"{what} must be a sequence of strings, not the string {names!r}")
    first: dict[str, int] = {}
    for pos, name in enumerate(names):
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"{what}[{pos}] = {name!r} must be a non-empty string without surrounding spaces")
        if name in first:
            raise ValueError(f"{what} lists {name!r} twice (positions {first[name]} and {pos})")
        first[name] = pos
    return tuple(first)


def _check_writable(matrix: AnnotationMatrix, wide: bool) -> None:
    """Refuse names that the readers would not give back unchanged."""
    for what, names in (("item id", matrix.item_ids), ("annotator id", matrix.annotator_ids),
                        ("class name", matrix.class_names)):
        for name in names:
            if not name or name != name.strip():
                raise ValueError(f"{what} {name!r} is empty or has surrounding whitespace: it cannot be read back")
    for name in matrix.class_names:
        if _non_finite(name) or (wide and name in _WIDE_MISSING):
            raise ValueError(f"class name {name!r} cannot be written: it would read back as invalid or missing")


def _check_label(table: _Table, place: str, column: str, value: str, classes: tuple[str, ...] | None) -> None:
    if not value:
        raise table.error(place, f"empty {column!r} cell")
    if _non_finite(value):
        raise table.error(place, f"non-finite label {value!r} in column {column!r}")
    if classes is not None and value not in classes:
        raise table.error(place, f"label {value!r} in column {column!r} is not one of the classes {list(classes)}")


def _warn_empty(matrix: AnnotationMatrix, path: Path) -> None:
    empty = matrix.empty_annotators()
    if empty:
        warnings.warn(f"{path}: annotator(s) without any label kept: {', '.join(empty)}", stacklevel=3)


# ---------------------------------------------------------------------------------------------------- long


def read_long(
    path: PathLike,
    *,
    task_col: str = "task",
    worker_col: str = "worker",
    label_col: str = "label",
    classes: Sequence[str] | None = None,
    annotators: Sequence[str] | None = None,
    file_format: str | None = None,
) -> AnnotationMatrix:
    """An :class:`AnnotationMatrix` from a long-format file (one row per annotation).

    ``classes`` declares the class names (and C); ``annotators`` declares the full annotator list and its
    order (a label by another annotator is an error). See the module docstring for every rule.
    """
    if len({task_col, worker_col, label_col}) != 3:
        raise ValueError(f"task_col, worker_col and label_col must differ: {task_col!r}, {worker_col!r}, {label_col!r}")
    declared_classes = None if classes is None else _declared(classes, "classes")
    declared_annotators = None if annotators is None else _declared(annotators, "annotators")
    table = _Table(path, file_format)
    used = table.columns([task_col, worker_col, label_col])
    items: dict[str, int] = {}
    workers: dict[str, int] = {} if declared_annotators is None else {a: j for j, a in enumerate(declared_annotators)}
    seen: dict[tuple[str, str], tuple[str, str]] = {}  # (item, worker) -> (label, place)
    duplicates = 0
    for place, (item, worker, label) in table.rows(used):
        if not item:
            raise table.error(place, f"empty {task_col!r} cell")
        if not worker:
            raise table.error(place, f"empty {worker_col!r} cell")
        _check_label(table, place, label_col, label, declared_classes)
        if worker not in workers:
            if declared_annotators is not None:
                raise table.error(place, f"annotator {worker!r} is not one of the declared annotators")
            workers[worker] = len(workers)
        items.setdefault(item, len(items))
        key = (item, worker)
        if key in seen:
            first_label, first_place = seen[key]
            if first_label != label:
                raise table.error(
                    place,
                    f"conflicting labels for item {item!r} by annotator {worker!r}: "
                    f"{first_label!r} ({first_place}) and {label!r} ({place})",
                )
            duplicates += 1
            continue
        seen[key] = (label, place)
    if not seen:
        raise table.error(table.header_place, "no annotations after the header")
    if duplicates:
        warnings.warn(f"{table.path}: collapsed {duplicates} identical duplicate annotation row(s)", stacklevel=2)
    class_names = (
        declared_classes if declared_classes is not None else _infer_classes({label for label, _ in seen.values()})
    )
    class_index = {c: k for k, c in enumerate(class_names)}
    labels = torch.full((len(items), len(workers)), -1, dtype=torch.int64)
    rows = torch.tensor([items[i] for i, _ in seen], dtype=torch.int64)
    cols = torch.tensor([workers[w] for _, w in seen], dtype=torch.int64)
    labels[rows, cols] = torch.tensor([class_index[label] for label, _ in seen.values()], dtype=torch.int64)
    matrix = AnnotationMatrix(labels, tuple(items), tuple(workers), class_names)
    _warn_empty(matrix, table.path)
    return matrix


def write_long(
    matrix: AnnotationMatrix,
    path: PathLike,
    *,
    task_col: str = "task",
    worker_col: str = "worker",
    label_col: str = "label",
    file_format: str | None = None,
) -> None:
    """Write the present labels, item-major (items, then annotators, in matrix order), labels as class names.

    ``read_long(path, classes=matrix.class_names, annotators=matrix.annotator_ids)`` gives ``matrix`` back,
    except for items without any label, which the long format cannot hold.
    """
    if len({task_col, worker_col, label_col}) != 3:
        raise ValueError(f"task_col, worker_col and label_col must differ: {task_col!r}, {worker_col!r}, {label_col!r}")
    _check_writable(matrix, wide=False)
    labels = matrix.labels.cpu()
    rows: list[list[str | None]] = [
        [matrix.item_ids[i], matrix.annotator_ids[j], matrix.class_names[int(labels[i, j])]]
        for i, j in (labels >= 0).nonzero().tolist()
    ]
    write_table(path, file_format, [task_col, worker_col, label_col], rows)


# ---------------------------------------------------------------------------------------------------- wide


def read_wide(
    path: PathLike,
    *,
    task_col: str = "task",
    classes: Sequence[str] | None = None,
    file_format: str | None = None,
) -> AnnotationMatrix:
    """An :class:`AnnotationMatrix` from a wide-format file (one row per item, one column per annotator).

    Empty and ``"-1"`` cells are missing labels. See the module docstring for every rule.
    """
    declared_classes = None if classes is None else _declared(classes, "classes")
    if declared_classes is not None and "-1" in declared_classes:
        raise ValueError("'-1' marks a missing label in the wide format and cannot be a class")
    table = _Table(path, file_format)
    (task_pos,) = table.columns([task_col])
    annotator_pos = [j for j in range(len(table.header)) if j != task_pos]
    annotator_ids = [table.header[j] for j in annotator_pos]
    if not annotator_ids:
        raise table.error(table.header_place, f"no annotator columns beside {task_col!r}")
    first: dict[str, int] = {}
    for j, ann in zip(annotator_pos, annotator_ids):
        if not ann:
            raise table.error(table.header_place, f"empty annotator id in the header (field {j + 1})")
        if ann in first:
            raise table.error(
                table.header_place, f"annotator column {ann!r} appears twice (fields {first[ann] + 1} and {j + 1})"
            )
        first[ann] = j
    item_ids: list[str] = []
    item_place: dict[str, str] = {}
    cells: list[list[str]] = []
    for place, (item, *row) in table.rows([task_pos, *annotator_pos]):
        if not item:
            raise table.error(place, f"empty {task_col!r} cell")
        if item in item_place:
            raise table.error(place, f"item {item!r} repeats the row at {item_place[item]}")
        for ann, value in zip(annotator_ids, row):
            if value not in _WIDE_MISSING:
                _check_label(table, place, ann, value, declared_classes)
        item_place[item] = place
        item_ids.append(item)
        cells.append(row)
    if not item_ids:
        raise table.error(table.header_place, "no items after the header")
    class_names = (
        declared_classes
        if declared_classes is not None
        else _infer_classes({v for row in cells for v in row if v not in _WIDE_MISSING})
    )
    if not class_names:
        raise table.error(table.header_place, "every cell is missing and no classes were given")
    class_index = {c: k for k, c in enumerate(class_names)}
    labels = torch.tensor([[class_index.get(v, -1) for v in row] for row in cells], dtype=torch.int64)
    matrix = AnnotationMatrix(labels, tuple(item_ids), tuple(annotator_ids), class_names)
    _warn_empty(matrix, table.path)
    return matrix


def write_wide(
    matrix: AnnotationMatrix, path: PathLike, *, task_col: str = "task", file_format: str | None = None
) -> None:
    """Write one row per item: the item id, then each annotator's class name (empty / null when missing).

    ``read_wide(path, task_col=task_col, classes=matrix.class_names)`` gives ``matrix`` back.
    """
    if task_col in matrix.annotator_ids:
        raise ValueError(f"task_col {task_col!r} is also an annotator id; choose another task_col")
    _check_writable(matrix, wide=True)
    names = matrix.class_names
    rows: list[list[str | None]] = [
        [item, *(names[k] if k >= 0 else None for k in row)]
        for item, row in zip(matrix.item_ids, matrix.labels.cpu().tolist())
    ]
    write_table(path, file_format, [task_col, *matrix.annotator_ids], rows)
