"""Tests of simlabel_ext.data: the annotation matrix, its summary, and the long / wide file formats."""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from simlabel_ext.data import (
    AnnotationFormatError,
    AnnotationMatrix,
    AnnotationSummary,
    from_arrays,
    read_long,
    read_wide,
    write_long,
    write_wide,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# 4 items x 4 annotators x 3 classes; annotator "d" has no label. Counts a=3, b=1, c=2, d=0 (6 of 16 present).
SMALL = [[0, -1, 2, -1], [1, 1, -1, -1], [-1, -1, -1, -1], [2, -1, 0, -1]]


def small() -> AnnotationMatrix:
    return AnnotationMatrix(torch.tensor(SMALL), ("i1", "i2", "i3", "i4"), ("a", "b", "c", "d"), ("x", "y", "z"))


def write(path: Path, text: str, newline: str = "\n", bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.replace("\n", newline).encode())
    return path


# ---------------------------------------------------------------------------------------------------- matrix


def test_properties():
    m = small()
    assert (m.num_items, m.num_annotators, m.num_classes, m.num_labels) == (4, 4, 3, 6)
    assert m.mask.dtype == torch.bool and m.mask.shape == (4, 4)
    assert m.mask[0].tolist() == [True, False, True, False]
    assert m.empty_annotators() == ("d",)


def test_summary_exact():
    s = small().summary()
    assert isinstance(s, AnnotationSummary)
    assert (s.num_items, s.num_annotators, s.num_classes, s.num_labels) == (4, 4, 3, 6)
    assert s.labels_per_annotator == (3, 1, 2, 0)
    assert s.missing_rate_per_annotator == (0.25, 0.75, 0.5, 1.0)
    assert s.missing_rate == 10 / 16
    assert s.empty_annotators == ("d",)


def test_summary_str_table():
    assert str(small().summary()).splitlines() == [
        "4 items, 4 annotators, 3 classes, 6 labels",
        "annotator   #labels  missing %",
        "a                 3       25.0",
        "b                 1       75.0",
        "c                 2       50.0",
        "d                 0      100.0",
        "overall           6       62.5",
        "annotators without labels: d",
    ]


def test_summary_to_dict_is_json():
    d = json.loads(json.dumps(small().summary().to_dict()))
    assert d["num_labels"] == 6 and d["missing_rate"] == 0.625
    assert d["labels_per_annotator"] == {"a": 3, "b": 1, "c": 2, "d": 0}
    assert d["missing_rate_per_annotator"]["b"] == 0.75
    assert d["empty_annotators"] == ["d"]


def test_frozen_and_equality():
    m = small()
    with pytest.raises(AttributeError):
        m.item_ids = ("z",)  # type: ignore[misc]
    assert m == small()
    other = AnnotationMatrix(m.labels.clone(), m.item_ids, m.annotator_ids, ("x", "y", "w"))
    assert m != other
    ids = AnnotationMatrix(m.labels, list(m.item_ids), list(m.annotator_ids), list(m.class_names))
    assert ids.item_ids == m.item_ids and isinstance(ids.class_names, tuple)


@pytest.mark.parametrize(
    ("labels", "items", "annotators", "classes", "match"),
    [
        ([[0, 9]], ["i"], ["a", "b"], ["x", "y", "z"], r"labels\[0, 1\] = 9 is outside 0\.\.2 \(3 classes\) or -1"),
        ([[0, -2]], ["i"], ["a", "b"], ["x"], r"labels\[0, 1\] = -2 is outside 0\.\.0 \(1 classes\)"),
        ([[0, 0, 0]], ["i"], ["w1", "w7", "w7"], ["x"], r"duplicate annotator id 'w7' at positions 1 and 2"),
        ([[0], [0]], ["i", "i"], ["a"], ["x"], r"duplicate item id 'i' at positions 0 and 1"),
        ([[0]], ["i"], ["a"], ["x", "x"], r"duplicate class name 'x'"),
        ([[0, 0]], ["i"], ["a"], ["x"], r"shape \(1, 2\) but there are 1 item ids and 1 annotator ids"),
        ([[0]], ["i"], ["a"], [], r"class_names is empty"),
        ([[0]], [1], ["a"], ["x"], r"item_ids\[0\] = 1 is a int"),
    ],
)
def test_constructor_errors(labels, items, annotators, classes, match):
    with pytest.raises(ValueError, match=match):
        AnnotationMatrix(torch.tensor(labels), items, annotators, classes)


def test_constructor_dtype_and_dim():
    with pytest.raises(ValueError, match=r"dtype torch\.int64, got torch\.int32"):
        AnnotationMatrix(torch.zeros(1, 1, dtype=torch.int32), ["i"], ["a"], ["x"])
    with pytest.raises(ValueError, match=r"2-D .* got shape \(3,\)"):
        AnnotationMatrix(torch.zeros(3, dtype=torch.int64), ["i"], ["a"], ["x"])
    with pytest.raises(ValueError, match="must be a torch.Tensor"):
        AnnotationMatrix(np.zeros((1, 1), dtype=np.int64), ["i"], ["a"], ["x"])  # type: ignore[arg-type]


def test_from_arrays_defaults():
    m = from_arrays(np.array([[0, -1], [3, 1], [-1, -1]], dtype=np.int32))
    assert m.labels.dtype == torch.int64
    assert m.item_ids == ("0", "1", "2") and m.annotator_ids == ("0", "1")
    assert m.class_names == ("0", "1", "2", "3")
    assert from_arrays(torch.full((2, 2), -1)).class_names == ("0",)
    named = from_arrays([[1]], item_ids=["q"], annotator_ids=["w"], class_names=["no", "yes"])
    assert (named.item_ids, named.class_names) == (("q",), ("no", "yes"))
    with pytest.raises(ValueError, match="integer array, got dtype torch.float64"):
        from_arrays(np.array([[0.0, 1.0]]))


# ---------------------------------------------------------------------------------------------------- long


def test_read_long_order_extra_columns_and_numeric_classes(tmp_path):
    p = write(tmp_path / "a.csv", "note,task,worker,label\nx, t2 ,w1,10\ny,t1,w2,2\nz,t2,w2,1\n")
    m = read_long(p)
    assert m.item_ids == ("t2", "t1") and m.annotator_ids == ("w1", "w2")
    assert m.class_names == ("1", "2", "10")  # numeric order, not "1" < "10" < "2"
    assert m.labels.tolist() == [[2, 0], [-1, 1]]


def test_read_long_string_classes_sorted(tmp_path):
    p = write(tmp_path / "a.csv", "task,worker,label\n1,w,rock\n2,w,blues\n3,w,3\n")
    assert read_long(p).class_names == ("3", "blues", "rock")


def test_read_long_declared_classes(tmp_path):
    p = write(tmp_path / "a.csv", "task,worker,label\n1,w,b\n")
    m = read_long(p, classes=["a", "b", "c"])
    assert m.class_names == ("a", "b", "c") and m.labels.tolist() == [[1]]
    with pytest.raises(AnnotationFormatError, match=r"a\.csv, line 2: label 'b' in column 'label' is not one of"):
        read_long(p, classes=["a", "c"])


def test_read_long_declared_annotators(tmp_path):
    p = write(tmp_path / "a.csv", "task,worker,label\n1,w2,0\n2,w1,1\n")
    with pytest.warns(UserWarning, match="without any label kept: w3"):
        m = read_long(p, annotators=["w1", "w2", "w3"])
    assert m.annotator_ids == ("w1", "w2", "w3")
    assert m.labels.tolist() == [[-1, 0, -1], [1, -1, -1]]
    with pytest.raises(AnnotationFormatError, match=r"line 3: annotator 'w1' is not one of the declared"):
        read_long(p, annotators=["w2"])


def test_read_long_custom_columns_and_tsv(tmp_path):
    p = write(tmp_path / "a.tsv", "question\tworker\tanswer\n1\t9\t3\n")
    m = read_long(p, task_col="question", label_col="answer")
    assert (m.item_ids, m.annotator_ids, m.class_names) == (("1",), ("9",), ("3",))


@pytest.mark.parametrize(("newline", "bom"), [("\r", False), ("\r\n", False), ("\n", True), ("\r", True)])
def test_read_long_line_endings_and_bom(tmp_path, newline, bom):
    p = write(tmp_path / "a.csv", "task,worker,label\n1,w,a\n2,w,b\n", newline=newline, bom=bom)
    m = read_long(p)
    assert m.item_ids == ("1", "2") and m.labels.tolist() == [[0], [1]]


def test_txt_tab_separated_is_detected(tmp_path):
    p = write(tmp_path / "a.txt", "task\tworker\tlabel\n1\tw\ta,b\n")
    assert read_long(p).class_names == ("a,b",)


def test_line_numbers_with_cr_only_and_blank_lines(tmp_path):
    p = write(tmp_path / "a.csv", "task,worker,label\n1,w,a\n\n2,w,nan\n", newline="\r")
    with pytest.raises(AnnotationFormatError, match=r"line 4: non-finite label 'nan'"):
        read_long(p)


def test_identical_duplicates_collapsed_with_warning(tmp_path):
    p = write(tmp_path / "a.csv", "task,worker,label\n1,w,a\n1,w,a\n2,w,b\n1,w,a\n")
    with pytest.warns(UserWarning, match="collapsed 2 identical duplicate"):
        m = read_long(p)
    assert m.num_labels == 2


def test_error_empty_file(tmp_path):
    with pytest.raises(AnnotationFormatError, match=r"e\.csv, line 1: the file is empty"):
        read_long(write(tmp_path / "e.csv", ""))


def test_error_header_only(tmp_path):
    with pytest.raises(AnnotationFormatError, match=r"h\.csv, line 1: no annotations after the header"):
        read_long(write(tmp_path / "h.csv", "task,worker,label\n"))


def test_error_missing_columns(tmp_path):
    p = write(tmp_path / "a.csv", "question,worker,answer\n1,w,a\n")
    with pytest.raises(
        AnnotationFormatError,
        match=r"line 1: missing column\(s\) \['task', 'label'\]; available columns: \['question', 'worker', 'answer'\]",
    ):
        read_long(p)


@pytest.mark.parametrize(
    ("row", "column"), [(",w,a", "task"), ("1, ,a", "worker"), ("1,w,", "label")]
)
def test_error_empty_cell(tmp_path, row, column):
    p = write(tmp_path / "a.csv", f"task,worker,label\n1,v,a\n{row}\n")
    with pytest.raises(AnnotationFormatError, match=rf"a\.csv, line 3: empty '{column}' cell"):
        read_long(p)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "-NAN"])
def test_error_non_finite_label(tmp_path, value):
    p = write(tmp_path / "a.csv", f"task,worker,label\n1,w,1\n2,w,{value}\n")
    with pytest.raises(AnnotationFormatError, match=rf"line 3: non-finite label '{value}'"):
        read_long(p)


def test_error_conflicting_duplicate(tmp_path):
    p = write(tmp_path / "a.csv", "task,worker,label\n7,w3,a\n8,w3,a\n7,w3,b\n")
    with pytest.raises(
        AnnotationFormatError,
        match=r"line 4: conflicting labels for item '7' by annotator 'w3': 'a' \(line 2\) and 'b' \(line 4\)",
    ):
        read_long(p)


def test_error_wrong_field_count(tmp_path):
    p = write(tmp_path / "a.csv", "task,worker,label\n1,w,a,extra\n")
    with pytest.raises(AnnotationFormatError, match=r"line 2: 4 field\(s\) but the header has 3"):
        read_long(p)


def test_error_unknown_suffix_and_forced_format(tmp_path):
    p = write(tmp_path / "a.dat", "task,worker,label\n1,w,a\n")
    with pytest.raises(ValueError, match=r"cannot tell the format of .*a\.dat.*file_format="):
        read_long(p)
    assert read_long(p, file_format="csv").num_labels == 1


def test_long_round_trip_csv_and_tsv(tmp_path):
    m = small()
    for name in ("m.csv", "m.tsv"):
        write_long(m, tmp_path / name)
        with pytest.warns(UserWarning, match="without any label kept: d"):
            back = read_long(tmp_path / name, classes=m.class_names, annotators=m.annotator_ids)
        # item i3 has no label, so the long format cannot hold it
        assert back.item_ids == ("i1", "i2", "i4")
        assert torch.equal(back.labels, m.labels[[0, 1, 3]])
        assert back.class_names == m.class_names and back.annotator_ids == m.annotator_ids
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[:4] == ["task,worker,label", "i1,a,x", "i1,c,z", "i2,a,y"]  # item-major


def test_long_round_trip_custom_columns(tmp_path):
    m = from_arrays([[0, 1], [1, 0]], class_names=["neg", "pos"])
    write_long(m, tmp_path / "m.csv", task_col="q", worker_col="w", label_col="y")
    assert read_long(tmp_path / "m.csv", task_col="q", worker_col="w", label_col="y") == m


def test_writers_refuse_unreadable_names(tmp_path):
    m = from_arrays([[0]], class_names=[" x"])
    with pytest.raises(ValueError, match="class name ' x' is empty or has surrounding whitespace"):
        write_long(m, tmp_path / "m.csv")
    with pytest.raises(ValueError, match="class name 'nan' cannot be written"):
        write_long(from_arrays([[0]], class_names=["nan"]), tmp_path / "m.csv")
    with pytest.raises(ValueError, match="class name '-1' cannot be written"):
        write_wide(from_arrays([[0]], class_names=["-1"]), tmp_path / "m.csv")
    with pytest.raises(ValueError, match="task_col 'a' is also an annotator id"):
        write_wide(from_arrays([[0]], annotator_ids=["a"]), tmp_path / "m.csv", task_col="a")


# ---------------------------------------------------------------------------------------------------- wide


def test_wide_round_trip_csv(tmp_path):
    m = small()
    write_wide(m, tmp_path / "w.csv")
    assert (tmp_path / "w.csv").read_text().splitlines()[:2] == ["task,a,b,c,d", "i1,x,,z,"]
    with pytest.warns(UserWarning, match="without any label kept: d"):
        assert read_wide(tmp_path / "w.csv", classes=m.class_names) == m


def test_read_wide_missing_markers(tmp_path):
    p = write(tmp_path / "w.csv", "item,w1,w2\nq1,-1,2\nq2,1,\n")
    m = read_wide(p, task_col="item")
    assert m.annotator_ids == ("w1", "w2") and m.class_names == ("1", "2")
    assert m.labels.tolist() == [[-1, 1], [0, -1]]


def test_read_wide_empty_column_warns(tmp_path):
    p = write(tmp_path / "w.csv", "task,w1,w2\nq1,a,\nq2,b,-1\n")
    with pytest.warns(UserWarning, match="without any label kept: w2"):
        m = read_wide(p)
    assert m.empty_annotators() == ("w2",)


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        ("task,w1,w2\nq1,a,b\nq2,a,c\n", {"classes": ["a", "b"]}, r"line 3: label 'c' in column 'w2' is not one of"),
        ("task,w1,w2\nq1,a,inf\n", {}, r"line 2: non-finite label 'inf' in column 'w2'"),
        ("task,w1,w2\nq1,a,b\nq1,a,b\n", {}, r"line 3: item 'q1' repeats the row at line 2"),
        ("task,w1,w1\nq1,a,b\n", {}, r"line 1: annotator column 'w1' appears twice \(fields 2 and 3\)"),
        ("item,w1\nq1,a\n", {}, r"line 1: missing column\(s\) \['task'\]; available columns: \['item', 'w1'\]"),
        ("task,w1\n,a\n", {}, r"line 2: empty 'task' cell"),
        ("task,w1\n", {}, r"line 1: no items after the header"),
        ("task\nq1\n", {}, r"no annotator columns beside 'task'"),
    ],
)
def test_read_wide_errors(tmp_path, text, kwargs, match):
    with pytest.raises(AnnotationFormatError, match=match):
        read_wide(write(tmp_path / "w.csv", text), **kwargs)


def test_read_wide_cr_only_and_bom(tmp_path):
    p = write(tmp_path / "w.csv", "task,w1\nq1,a\nq2,b\n", newline="\r", bom=True)
    assert read_wide(p).labels.tolist() == [[0], [1]]


# ---------------------------------------------------------------------------------------------------- parquet


def test_parquet_round_trips(tmp_path):
    pytest.importorskip("pyarrow")
    m = small()
    write_long(m, tmp_path / "m.parquet")
    with pytest.warns(UserWarning, match="without any label kept: d"):
        back = read_long(tmp_path / "m.parquet", classes=m.class_names, annotators=m.annotator_ids)
    assert torch.equal(back.labels, m.labels[[0, 1, 3]])
    write_wide(m, tmp_path / "w.pq")
    with pytest.warns(UserWarning, match="without any label kept: d"):
        assert read_wide(tmp_path / "w.pq", classes=m.class_names) == m
    write_wide(m, tmp_path / "w.bin", file_format="parquet")
    with pytest.warns(UserWarning):
        assert read_wide(tmp_path / "w.bin", classes=m.class_names, file_format="parquet") == m


def test_parquet_typed_columns_and_errors(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"task": [1, 2, 2], "worker": ["w", "w", "v"], "label": [3.0, float("nan"), 1.0]})
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(AnnotationFormatError, match=r"t\.parquet, row 2: non-finite label 'nan'"):
        read_long(tmp_path / "t.parquet")
    pq.write_table(pa.table({"task": [1, 2], "worker": ["w", None], "label": [3, 1]}), tmp_path / "n.parquet")
    with pytest.raises(AnnotationFormatError, match=r"row 2: empty 'worker' cell"):
        read_long(tmp_path / "n.parquet")
    pq.write_table(pa.table({"task": [1, 2], "worker": ["w", "w"], "label": [3, 10]}), tmp_path / "i.parquet")
    m = read_long(tmp_path / "i.parquet")
    assert m.item_ids == ("1", "2") and m.class_names == ("3", "10")
    with pytest.raises(AnnotationFormatError, match=r"schema: missing column\(s\) \['answer'\]"):
        read_long(tmp_path / "i.parquet", label_col="answer")


def test_parquet_without_pyarrow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match="pip install pyarrow"):
        write_long(small(), tmp_path / "m.parquet")
    with pytest.raises(ImportError, match="pip install pyarrow"):
        read_wide(tmp_path / "m.parquet")


# ---------------------------------------------------------------------------------------------------- real sets


def shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"real data set not available: {path} (expects the shared data folder beside the checkout)")
    return path


def test_real_dog():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean set: no duplicate or empty-annotator warnings
        m = read_long(shared("truth_inference/dog/answer.csv"), task_col="question", label_col="answer")
    s = m.summary()
    assert (s.num_items, s.num_annotators, s.num_classes) == (807, 109, 4)
    assert m.class_names == ("0", "1", "2", "3")
    assert round(100 * s.missing_rate, 1) == 90.8
    assert s.num_labels == 8070 and s.empty_annotators == ()


def test_real_music_genre():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = read_long(
            shared("music_genre/music_genre_mturk.csv"), task_col="id", worker_col="annotator", label_col="class"
        )
    s = m.summary()
    assert (s.num_items, s.num_annotators, s.num_classes, s.num_labels) == (700, 44, 10, 2945)
    assert round(100 * s.missing_rate, 1) == 90.4
    assert min(s.labels_per_annotator) == 2 and max(s.labels_per_annotator) == 368
    assert m.class_names[:3] == ("blues", "classical", "country")
    assert len(str(s).splitlines()) == 44 + 3


def test_real_music_genre_raw_export_cr_only():
    path = shared("music_genre/mturk_answers.csv")
    assert b"\n" not in path.read_bytes()[:4096]  # old Mac line endings
    m = read_long(path, task_col="Input.song", worker_col="WorkerID", label_col="Answer.pred_label")
    s = m.summary()
    assert (s.num_items, s.num_annotators, s.num_classes, s.num_labels) == (700, 44, 10, 2945)
