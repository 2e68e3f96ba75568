"""``simlabel kappa`` end to end: the written matrices against scikit-learn, and one-line errors with status 2."""
from __future__ import annotations

import csv
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from simlabel_ext.cli import main

MUSIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "music_genre" / "music_genre_mturk.csv"


def read_matrix(path: Path) -> tuple[list[str], list[list[float]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "annotator"
    return rows[0][1:], [[float(c) if c else math.nan for c in row[1:]] for row in rows[1:]]


def write_answers(path: Path, rows: list[tuple[str, str, str]], header=("task", "worker", "label")) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def sklearn_kappa(labels: dict[tuple[str, str], str], a: str, b: str) -> float:
    items = sorted({t for t, w in labels if w == a} & {t for t, w in labels if w == b})
    if not items:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score([labels[t, a] for t in items], [labels[t, b] for t in items]))


def test_kappa_cli_small_file_against_sklearn(tmp_path, capsys):
    rows = [
        ("i1", "ann", "cat"), ("i1", "bob", "cat"), ("i1", "cy", "dog"),
        ("i2", "ann", "dog"), ("i2", "bob", "dog"),
        ("i3", "ann", "cat"), ("i3", "bob", "dog"), ("i3", "cy", "dog"),
        ("i4", "ann", "dog"), ("i4", "bob", "dog"),
        ("i5", "dan", "cat"),
    ]  # fmt: skip
    answers = write_answers(tmp_path / "answers.csv", rows)
    out, overlap, sim = tmp_path / "kappa.csv", tmp_path / "overlap.csv", tmp_path / "s.csv"
    code = main(
        [
            "kappa", str(answers), "--out", str(out), "--overlap-out", str(overlap),
            "--similarity-out", str(sim), "--n0", "2",
        ]
    )  # fmt: skip
    assert code == 0
    ids, kappa = read_matrix(out)
    assert ids == ["ann", "bob", "cy", "dan"]
    labels = {(t, w): y for t, w, y in rows}
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            expected = sklearn_kappa(labels, a, b)
            if math.isnan(expected):
                assert math.isnan(kappa[i][j]), (a, b)
            else:
                assert kappa[i][j] == pytest.approx(expected, abs=1e-12), (a, b)
    # ann/bob share 4 items: agreement 3/4; hand check of the shrunk similarity with n0 = 2
    _, n = read_matrix(overlap)
    assert n[0][1] == 4 and n[0][3] == 0 and n[3][3] == 1
    _, s = read_matrix(sim)
    assert s[0][1] == pytest.approx(4 / 6 * max(kappa[0][1], 0.0), abs=1e-12)
    assert s[0][0] == 0 and s[0][3] == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kappa: 5 items, 4 annotators, 2 classes, 11 labels")


@pytest.mark.skipif(not MUSIC.exists(), reason="../shared/data/music_genre is not present")
def test_kappa_cli_on_music_genre_against_sklearn(tmp_path):
    out = tmp_path / "kappa.csv"
    args = ["kappa", str(MUSIC), "--task-col", "id", "--worker-col", "annotator", "--label-col", "class"]
    assert main([*args, "--out", str(out)]) == 0
    ids, kappa = read_matrix(out)
    labels = {}
    with open(MUSIC, newline="") as f:
        for row in csv.DictReader(f):
            labels[row["id"], row["annotator"]] = row["class"]
    assert len(ids) == 44
    rng = np.random.default_rng(0)
    pairs = [(i, j) for i in range(44) for j in range(44)]
    for k in rng.choice(len(pairs), size=300, replace=False):
        i, j = pairs[k]
        expected = sklearn_kappa(labels, ids[i], ids[j])
        if math.isnan(expected):
            assert math.isnan(kappa[i][j])
        else:
            assert abs(kappa[i][j] - expected) < 1e-9


@pytest.mark.parametrize(
    "content, args, message",
    [
        (None, [], r"No such file or directory: .*missing\.csv"),
        ("task,worker\n1,a\n", [], r"missing column.*label"),
        ("task,worker,label\n", [], r"no annotations|empty"),
        ("task,worker,label\n1,a,x\n1,a,y\n", [], r"line 3.*'1'.*'a'"),
        ("task,worker,label\n1,a,x\n2,a,z\n", ["--classes", "x,y"], r"line 3.*'z'"),
        ("task,worker,label\n1,a,nan\n", [], r"line 2.*nan"),
        ("task,worker,label\n1,a,x\n", ["--n0", "-1"], r"--n0"),
    ],
)
def test_kappa_cli_errors_exit_2_with_one_line(tmp_path, capsys, content, args, message):
    path = tmp_path / "missing.csv"
    if content is not None:
        path = tmp_path / "answers.csv"
        path.write_text(content)
    assert main(["kappa", str(path), "--out", str(tmp_path / "k.csv"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simlabel kappa: error: ")
    import re

    assert re.search(message, err[0], flags=re.IGNORECASE), err[0]


def test_console_script_and_module_entry_point(tmp_path):
    answers = write_answers(tmp_path / "a.csv", [("1", "a", "x"), ("1", "b", "x"), ("2", "a", "y"), ("2", "b", "y")])
    result = subprocess.run(
        [sys.executable, "-m", "simlabel_ext", "kappa", str(answers)], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["annotator,a,b", "a,1.0,1.0", "b,1.0,1.0"]
    help_text = subprocess.run(
        [sys.executable, "-m", "simlabel_ext", "kappa", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--out", "--task-col", "--worker-col", "--label-col", "--overlap-out", "--similarity-out", "--n0"):
        assert option in help_text
    assert "default: 10.0" in help_text
