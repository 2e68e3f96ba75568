"""The similarity engine against independent oracles, for both backends.

Oracles: scikit-learn's ``cohen_kappa_score`` on each pair's co-labelled items (|diff| < 1e-9, NaN exactly where
it is undefined), plain numpy loops for the overlap counts, and the similarity formula written out by hand. Real
annotation matrices from ``shared/data`` (skipped when absent), hypothesis-generated matrices and random
add/remove/replace sequences, a hand-computed case, the error messages, and the memory bound at CIFAR-10H size.
"""
from __future__ import annotations

import csv
import math
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simlabel_ext import _extension
from simlabel_ext.similarity import (
    DEFAULT_N0,
    SimilarityEngine,
    dense_similarity,
    kappa_from_counts,
    pair_counts,
    similarity_from_kappa,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_SETS = {
    # name: (relative path, item column, annotator column, label column)
    "dog": ("truth_inference/dog/answer.csv", "question", "worker", "answer"),
    "face_sentiment": ("truth_inference/face_sentiment/answer.csv", "question", "worker", "answer"),
    "duck": ("truth_inference/duck/answer.csv", "question", "worker", "answer"),
    "music_genre": ("music_genre/music_genre_mturk.csv", "id", "annotator", "class"),
}

BACKENDS = [
    "torch",
    pytest.param(
        "cpp",
        marks=pytest.mark.skipif(not _extension.has_compiled(), reason="simlabel_ext._C was not built"),
    ),
]
AVAILABLE_BACKENDS = ["torch", "cpp"] if _extension.has_compiled() else ["torch"]

FAST = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------------- oracles
def oracle_overlap(y: np.ndarray) -> np.ndarray:
    """n[a, b] = number of items both a and b labelled, by a plain loop."""
    A = y.shape[1]
    n = np.zeros((A, A), dtype=np.int64)
    for a in range(A):
        for b in range(A):
            n[a, b] = int(np.sum((y[:, a] >= 0) & (y[:, b] >= 0)))
    return n


_SKLEARN_CACHE: dict[bytes, float] = {}


def sklearn_kappa(ya: np.ndarray, yb: np.ndarray) -> float:
    """``cohen_kappa_score(ya, yb)``, memoised on the multiset of label pairs.

    Cohen's kappa does not depend on the order of the items, so two pairs of raters whose co-labelled items give
    the same multiset of (label_a, label_b) pairs have the same kappa; sklearn is called once per multiset (on
    the first pair that has it), which keeps the oracle affordable on the real sets (sklearn ~5 ms per call).
    """
    order = np.lexsort((yb, ya))
    key = np.stack([ya[order], yb[order]]).astype(np.int64).tobytes()
    if key not in _SKLEARN_CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # UndefinedMetricWarning / RuntimeWarning where kappa is undefined
            _SKLEARN_CACHE[key] = float(sklearn_metrics.cohen_kappa_score(ya, yb))
    return _SKLEARN_CACHE[key]


def oracle_kappa(y: np.ndarray) -> np.ndarray:
    """sklearn's cohen_kappa_score on each pair's shared items; NaN where there are none or sklearn says NaN."""
    A = y.shape[1]
    kappa = np.full((A, A), np.nan)
    for a in range(A):
        for b in range(a, A):
            shared = (y[:, a] >= 0) & (y[:, b] >= 0)
            if shared.any():
                kappa[a, b] = kappa[b, a] = sklearn_kappa(y[shared, a], y[shared, b])
    return kappa


def oracle_similarity(kappa: np.ndarray, n: np.ndarray, n0: float, min_overlap: int) -> np.ndarray:
    """S[a, b] = n / (n + n0) * max(kappa, 0); 0 for NaN kappa, n < min_overlap, n = 0 and the diagonal."""
    A = kappa.shape[0]
    s = np.zeros((A, A))
    for a in range(A):
        for b in range(A):
            k, m = kappa[a, b], int(n[a, b])
            if a == b or m == 0 or m < min_overlap or math.isnan(k):
                continue
            s[a, b] = m / (m + n0) * max(k, 0.0)
    return s


def assert_kappa_equal(got: torch.Tensor, want: np.ndarray, atol: float = 1e-9) -> None:
    got = got.numpy()
    assert got.dtype == np.float64
    nan_got, nan_want = np.isnan(got), np.isnan(want)
    bad = np.argwhere(nan_got != nan_want)
    assert bad.size == 0, f"NaN pattern differs at pairs {bad[:5].tolist()}: got {got[tuple(bad[0])]}, " \
                          f"sklearn {want[tuple(bad[0])]}"
    diff = np.abs(np.where(nan_want, 0.0, got - want))
    worst = np.unravel_index(diff.argmax(), diff.shape) if diff.size else None
    assert diff.max(initial=0.0) < atol, f"max |kappa - sklearn| = {diff.max()} at pair {worst}"


def check_against_oracle(engine: SimilarityEngine, y: np.ndarray, kappa: np.ndarray | None = None) -> None:
    """Everything the engine reports vs the oracles, for the label matrix y."""
    kappa = oracle_kappa(y) if kappa is None else kappa
    n = oracle_overlap(y)
    np.testing.assert_array_equal(engine.labels().numpy(), y)
    np.testing.assert_array_equal(engine.overlap().numpy(), n)
    assert_kappa_equal(engine.kappa(), kappa)
    for n0, min_overlap in [(0.0, 0), (DEFAULT_N0, 0), (3.5, 4)]:
        got = engine.similarity(n0, min_overlap, dtype=torch.float64).numpy()
        np.testing.assert_allclose(got, oracle_similarity(kappa, n, n0, min_overlap), rtol=0, atol=1e-9)
    assert engine.similarity().dtype == torch.float32


def assert_same_state(e1: SimilarityEngine, e2: SimilarityEngine) -> None:
    """Bit-for-bit equal labels, counts, kappa and similarity."""
    assert torch.equal(e1.labels(), e2.labels())
    assert torch.equal(e1.overlap(), e2.overlap())
    assert torch.equal(e1.agreement(), e2.agreement())
    assert torch.equal(e1.marginals(), e2.marginals())
    assert e1.num_labels == e2.num_labels
    torch.testing.assert_close(e1.kappa(), e2.kappa(), rtol=0, atol=0, equal_nan=True)
    # the engines' own parameters first: the C++ engine answers these from its incrementally updated S cache
    torch.testing.assert_close(e1.similarity(dtype=torch.float64), e2.similarity(dtype=torch.float64), rtol=0, atol=0)
    for n0, min_overlap in [(0.0, 0), (DEFAULT_N0, 2)]:
        torch.testing.assert_close(
            e1.similarity(n0, min_overlap, dtype=torch.float64),
            e2.similarity(n0, min_overlap, dtype=torch.float64),
            rtol=0,
            atol=0,
        )


# ------------------------------------------------------------------------------------------------- real data
def load_real(name: str) -> tuple[np.ndarray, int]:
    """The [N, A] label matrix (-1 missing) of a shared real set, ids mapped to positions in sorted order."""
    rel, item_col, worker_col, label_col = REAL_SETS[name]
    path = DATA / rel
    if not path.is_file():
        pytest.skip(f"real data set {name} not found at {path} (shared/data is not present beside the repository)")
    with open(path, newline="") as fh:
        rows = [(r[item_col], r[worker_col], r[label_col]) for r in csv.DictReader(fh)]
    items = {v: k for k, v in enumerate(sorted({r[0] for r in rows}))}
    workers = {v: k for k, v in enumerate(sorted({r[1] for r in rows}))}
    classes = {v: k for k, v in enumerate(sorted({r[2] for r in rows}))}
    y = np.full((len(items), len(workers)), -1, dtype=np.int64)
    for item, worker, label in rows:
        assert y[items[item], workers[worker]] == -1, f"{name}: duplicate annotation {item}, {worker}"
        y[items[item], workers[worker]] = classes[label]
    return y, len(classes)


_REAL_CACHE: dict[str, tuple[np.ndarray, int, np.ndarray]] = {}


def real_with_oracle(name: str) -> tuple[np.ndarray, int, np.ndarray]:
    if name not in _REAL_CACHE:
        y, C = load_real(name)
        _REAL_CACHE[name] = (y, C, oracle_kappa(y))
    return _REAL_CACHE[name]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(REAL_SETS))
def test_real_data_matches_sklearn(name, backend):
    y, C, kappa = real_with_oracle(name)
    engine = SimilarityEngine(torch.from_numpy(y), C, backend=backend)
    assert engine.backend == backend
    assert (engine.num_items, engine.num_annotators, engine.num_classes) == (*y.shape, C)
    assert engine.num_labels == int((y >= 0).sum())
    check_against_oracle(engine, y, kappa)


def test_real_data_shapes():
    """The shared sets are the ones the README describes (guards the parsing above)."""
    expected = {
        "dog": (807, 109, 4), "face_sentiment": (584, 27, 4), "duck": (108, 39, 2), "music_genre": (700, 44, 10)
    }
    for name, shape in expected.items():
        y, C = load_real(name)
        assert (*y.shape, C) == shape


@pytest.mark.parametrize("name", ["music_genre", "dog"])
def test_real_data_random_edits_match_fresh_build(name):
    """Remove / impute / revise labels on a real matrix: every backend ends equal to a fresh build."""
    y, C = load_real(name)
    rng = np.random.default_rng(7)
    engines = [SimilarityEngine(torch.from_numpy(y), C, backend=b) for b in AVAILABLE_BACKENDS]
    current = y.copy()
    for step in range(300):
        i, a = int(rng.integers(y.shape[0])), int(rng.integers(y.shape[1]))
        if current[i, a] >= 0 and rng.random() < 0.5:
            current[i, a] = -1
            for e in engines:
                e.remove(i, a)
        elif current[i, a] >= 0:
            current[i, a] = int(rng.integers(C))
            for e in engines:
                e.replace(i, a, current[i, a])
        else:
            current[i, a] = int(rng.integers(C))
            for e in engines:
                e.add(i, a, current[i, a])
        if step % 50 in (0, 25):  # exercise the dirty-row refresh of both caches between edits
            for e in engines:
                e.similarity() if step % 50 == 0 else e.kappa()
    for e in engines:  # the fresh build is checked against sklearn by test_real_data_matches_sklearn
        assert_same_state(e, SimilarityEngine(torch.from_numpy(current), C, backend=e.backend))
    if len(engines) == 2:
        assert_same_state(*engines)


# ------------------------------------------------------------------------------------------ hand-computed case
@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed(backend):
    # item:  a   b
    #   0    0   0
    #   1    1   1
    #   2    1   0
    #   3    0  -1
    # Shared items 0..2: n = 3, agree = 2, r_ab = [1, 2] (a said 0 once, 1 twice), r_ba = [2, 1].
    # po = 2/3, pe = (1*2 + 2*1) / 9 = 4/9, kappa = (2/3 - 4/9) / (1 - 4/9) = (2/9) / (5/9) = 0.4.
    y = torch.tensor([[0, 0], [1, 1], [1, 0], [0, -1]])
    e = SimilarityEngine(y, 2, backend=backend)
    assert e.overlap().tolist() == [[4, 3], [3, 3]]
    assert e.agreement().tolist() == [[4, 2], [2, 3]]
    assert e.marginals()[0, 1].tolist() == [1, 2] and e.marginals()[1, 0].tolist() == [2, 1]
    k = e.kappa()
    assert k[0, 1].item() == pytest.approx(0.4, abs=1e-15) and k[1, 0].item() == k[0, 1].item()
    assert k[0, 0].item() == 1.0 and k[1, 1].item() == 1.0
    s = e.similarity(0.0, 0, dtype=torch.float64)
    assert s.flatten().tolist() == pytest.approx([0.0, 0.4, 0.4, 0.0], abs=1e-15)
    s = e.similarity(10.0, 0, dtype=torch.float64)
    assert s[0, 1].item() == pytest.approx(3 / 13 * 0.4, abs=1e-15)  # n / (n + n0) * kappa
    assert e.similarity(10.0, 4, dtype=torch.float64).abs().sum().item() == 0.0  # n = 3 < min_overlap = 4

    # b labels item 3 with 0: shared items 0..3, agree = 3, r_ab = [2, 2], r_ba = [3, 1],
    # po = 3/4, pe = (2*3 + 2*1) / 16 = 1/2, kappa = (3/4 - 1/2) / (1/2) = 0.5.
    e.add(3, 1, 0)
    assert e.kappa()[0, 1].item() == pytest.approx(0.5, abs=1e-15)
    # a's item 2 from 1 to 0: a = [0,1,0,0], b = [0,1,0,0]: perfect agreement, kappa = 1.
    e.replace(2, 0, 0)
    assert e.kappa()[0, 1].item() == 1.0
    # b loses item 1: b = [0, -, 0, 0] uses one class only: kappa_bb and kappa_ab are NaN (pe = 1), S = 0.
    e.remove(1, 1)
    k = e.kappa()
    assert math.isnan(k[1, 1].item()) and math.isnan(k[0, 1].item()) and k[0, 0].item() == 1.0
    assert e.similarity(0.0, 0).abs().sum().item() == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_and_undefined_kappa(backend):
    # a and b always disagree (kappa = -1 -> S = 0); c and d share no item (NaN); d uses one class (NaN diagonal).
    y = torch.tensor([[0, 1, 0, -1], [1, 0, 1, -1], [-1, -1, -1, 2], [-1, -1, -1, 2]])
    e = SimilarityEngine(y, 3, backend=backend)
    k = e.kappa()
    assert k[0, 1].item() == -1.0
    assert math.isnan(k[2, 3].item()) and math.isnan(k[3, 3].item())
    assert e.overlap()[2, 3].item() == 0
    s = e.similarity(0.0, 0, dtype=torch.float64)
    assert s[0, 1].item() == 0.0 and s[2, 3].item() == 0.0
    assert s[0, 2].item() == 1.0  # a and c agree on both shared items, both classes used
    assert torch.count_nonzero(s.diagonal()).item() == 0


def test_formula_helpers_match_sklearn():
    """kappa_from_counts / similarity_from_kappa on counts written by hand."""
    n = torch.tensor([[3, 0], [0, 2]])
    agree = torch.tensor([[3, 0], [0, 2]])
    r = torch.tensor([[[1, 2], [0, 0]], [[0, 0], [2, 0]]])
    k = kappa_from_counts(n, agree, r)
    assert k[0, 0].item() == 1.0 and math.isnan(k[0, 1].item()) and math.isnan(k[1, 1].item())
    ya, yb = [0, 1, 1, 2, 0, 1], [0, 1, 0, 2, 1, 1]
    counts = lambda y, c: sum(v == c for v in y)  # noqa: E731
    r_ab = torch.tensor([counts(ya, c) for c in range(3)])
    r_ba = torch.tensor([counts(yb, c) for c in range(3)])
    got = kappa_from_counts(torch.tensor(6), torch.tensor(4), r_ab, r_ba).item()
    assert abs(got - sklearn_metrics.cohen_kappa_score(ya, yb)) < 1e-12
    s = similarity_from_kappa(torch.tensor([[1.0, 0.5], [0.5, float("nan")]]), torch.tensor([[4, 6], [6, 2]]), n0=2)
    assert s.tolist() == [[0.0, 6 / 8 * 0.5], [6 / 8 * 0.5, 0.0]]


def test_dense_similarity_blends_observed_and_predicted_kappa():
    """dense_similarity against scikit-learn's kappa: (n K + m K_pred) / (n + m), clipped at 0, zero diagonal."""
    # 3 annotators, 6 items; observed: annotators 0 and 1 share items 0-3 (kappa 0), annotator 2 shares nothing
    observed = torch.tensor([[0, 0, -1], [1, 0, -1], [0, 1, -1], [1, 1, -1], [-1, -1, 0], [-1, -1, 1]])
    predicted = torch.tensor([[0, 0, 0], [1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 1, 0], [1, 0, 1]])
    engine = SimilarityEngine(observed, 2)
    k_obs = sklearn_metrics.cohen_kappa_score(observed[:4, 0], observed[:4, 1])
    k_pred = lambda a, b: sklearn_metrics.cohen_kappa_score(predicted[:, a], predicted[:, b])  # noqa: E731
    assert (k_obs, k_pred(0, 1), k_pred(0, 2), k_pred(1, 2)) == pytest.approx((0.0, 1 / 3, 1 / 3, -1 / 3))
    predicted_kappa = kappa_from_counts(*pair_counts(predicted, 2))
    s = dense_similarity(engine.kappa(), engine.overlap(), predicted_kappa, m=20.0)
    expected = torch.zeros(3, 3, dtype=torch.float64)
    expected[0, 1] = expected[1, 0] = (4 * k_obs + 20 * k_pred(0, 1)) / 24   # 4 shared observed items
    expected[0, 2] = expected[2, 0] = k_pred(0, 2)                            # none shared: K_pred alone
    # (1, 2): K_pred = -1/3 is clipped to 0
    torch.testing.assert_close(s, expected, rtol=0, atol=1e-12)
    for m in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="m must be a finite number > 0"):
            dense_similarity(engine.kappa(), engine.overlap(), predicted_kappa, m=m)


# ------------------------------------------------------------------------------------------ property tests
@st.composite
def label_matrices(draw, max_items=30, max_annotators=7, max_classes=5):
    N = draw(st.integers(0, max_items))
    A = draw(st.integers(1, max_annotators))
    C = draw(st.integers(1, max_classes))
    missing = draw(st.sampled_from([0.0, 0.3, 0.6, 0.9]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, size=(N, A))
    if draw(st.booleans()):  # skewed classes make pe = 1 (NaN) cases common
        y = np.where(rng.random((N, A)) < 0.7, 0, y)
    y[rng.random((N, A)) < missing] = -1
    return y.astype(np.int64), C


@FAST
@given(label_matrices())
def test_property_build_matches_sklearn(data):
    y, C = data
    kappa = oracle_kappa(y)
    engines = [SimilarityEngine(torch.from_numpy(y), C, backend=b) for b in AVAILABLE_BACKENDS]
    for e in engines:
        check_against_oracle(e, y, kappa)
    if len(engines) == 2:
        assert_same_state(*engines)


@st.composite
def edit_sequences(draw):
    y, C = draw(label_matrices(max_items=15, max_annotators=6, max_classes=4))
    N, A = y.shape
    if N == 0:
        return y, C, []
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["add", "remove", "replace", "set", "kappa", "similarity"]),
                st.integers(0, N - 1),
                st.integers(0, A - 1),
                st.integers(-1, C - 1),
            ),
            max_size=40,
        )
    )
    return y, C, ops


@FAST
@given(edit_sequences())
def test_property_edits_equal_fresh_build(data):
    y, C, ops = data
    engines = [SimilarityEngine(torch.from_numpy(y), C, backend=b) for b in AVAILABLE_BACKENDS]
    current = y.copy()
    for kind, i, a, c in ops:
        present = current[i, a] >= 0
        for e in engines:
            if kind == "kappa":
                e.kappa()
            elif kind == "similarity":  # fills / refreshes the similarity cache between edits
                e.similarity()
            elif kind == "set":
                e.set_label(i, a, c)
            elif kind == "add" and not present and c >= 0:
                e.add(i, a, c)
            elif kind == "remove" and present:
                e.remove(i, a)
            elif kind == "replace" and present and c >= 0:
                e.replace(i, a, c)
        if kind == "set" or (kind == "add" and not present and c >= 0) or (kind == "replace" and present and c >= 0):
            current[i, a] = c
        elif kind == "remove" and present:
            current[i, a] = -1
    fresh = SimilarityEngine(torch.from_numpy(current), C, backend="torch")
    for e in engines:
        assert_same_state(e, fresh)
    if len(engines) == 2:
        assert_same_state(*engines)


@FAST
@given(edit_sequences())
def test_property_batched_set_labels_equals_sequential(data):
    y, C, ops = data
    triples = [(i, a, c) for kind, i, a, c in ops]
    for backend in AVAILABLE_BACKENDS:
        one = SimilarityEngine(torch.from_numpy(y), C, backend=backend)
        batch = SimilarityEngine(torch.from_numpy(y), C, backend=backend)
        for i, a, c in triples:
            one.set_label(i, a, c)
        cols = list(zip(*triples)) if triples else [(), (), ()]
        batch.set_labels(torch.tensor(cols[0], dtype=torch.int64), list(cols[1]), torch.tensor(cols[2]))
        assert_same_state(one, batch)


# ------------------------------------------------------------------------------------------ API and errors
@pytest.mark.parametrize("backend", BACKENDS)
def test_errors_name_the_culprit(backend):
    mk = lambda y, C=3: SimilarityEngine(y, C, backend=backend)  # noqa: E731
    with pytest.raises(ValueError, match=r"2-D"):
        mk(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"labels\[1, 2\] = 3 .*out of range"):
        mk(torch.tensor([[0, 1, 2], [0, 1, 3]]))
    with pytest.raises(ValueError, match=r"labels\[0, 1\] = -2 "):
        mk(torch.tensor([[0, -2, 2], [0, 1, 7]]))
    with pytest.raises(ValueError, match=r"integer"):
        mk(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"num_classes"):
        mk(torch.zeros(2, 2, dtype=torch.int64), 0)
    with pytest.raises(ValueError, match=r"n0"):
        SimilarityEngine(torch.zeros(2, 2, dtype=torch.int64), 2, n0=-1.0, backend=backend)
    with pytest.raises(ValueError, match=r"backend"):
        SimilarityEngine(torch.zeros(2, 2, dtype=torch.int64), 2, backend="cuda")

    e = mk(torch.tensor([[0, -1], [1, 2]]))
    with pytest.raises(IndexError, match=r"item index 2 is out of range for 2 items"):
        e.add(2, 0, 0)
    with pytest.raises(IndexError, match=r"item index -1 "):
        e.label(-1, 0)
    with pytest.raises(IndexError, match=r"annotator index 5 is out of range for 2 annotators"):
        e.set_label(0, 5, 0)
    with pytest.raises(ValueError, match=r"class 3 is out of range"):
        e.add(0, 1, 3)
    with pytest.raises(ValueError, match=r"class -1 is out of range"):
        e.replace(0, 0, -1)
    with pytest.raises(ValueError, match=r"class -2 is out of range"):
        e.set_label(0, 1, -2)
    with pytest.raises(ValueError, match=r"\[item 0, annotator 0\].*already holds class 0"):
        e.add(0, 0, 1)
    with pytest.raises(ValueError, match=r"\[item 0, annotator 1\].*missing"):
        e.remove(0, 1)
    with pytest.raises(ValueError, match=r"\[item 0, annotator 1\].*missing"):
        e.replace(0, 1, 1)
    with pytest.raises(ValueError, match=r"n0"):
        e.similarity(n0=float("nan"))
    with pytest.raises(ValueError, match=r"min_overlap"):
        e.similarity(min_overlap=-1)
    # a bad batch names its entry and changes nothing
    before = e.labels()
    with pytest.raises(IndexError, match=r"set_labels entry 1: item index 9"):
        e.set_labels(torch.tensor([0, 9]), torch.tensor([1, 0]), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match=r"set_labels entry 0: class 4"):
        e.set_labels(torch.tensor([0]), torch.tensor([1]), torch.tensor([4]))
    with pytest.raises(ValueError, match=r"classes must hold integers"):
        e.set_labels([0], [1], [1.0])
    with pytest.raises(ValueError, match=r"same length"):
        e.set_labels(torch.tensor([0, 1]), torch.tensor([1]), torch.tensor([1]))
    assert torch.equal(e.labels(), before)
    # no-ops are fine
    e.set_label(0, 1, -1)
    e.set_label(0, 0, 0)
    assert torch.equal(e.labels(), before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_api_inputs(backend):
    y = torch.tensor([[0, 1, -1], [1, 1, 0], [2, -1, 0]])
    # an AnnotationMatrix-like object
    matrix = types.SimpleNamespace(labels=y, num_classes=3, annotator_ids=("x", "y", "z"))
    e1 = SimilarityEngine.from_matrix(matrix, backend=backend, n0=2.0, min_overlap=1)
    e2 = SimilarityEngine(matrix, backend=backend)
    e3 = SimilarityEngine(y.to(torch.int32).t().contiguous().t(), 3, backend=backend)  # int32, non-contiguous
    assert torch.equal(e1.overlap(), e2.overlap()) and torch.equal(e1.labels(), e3.labels())
    assert (e1.n0, e1.min_overlap, e2.n0) == (2.0, 1, DEFAULT_N0)
    assert torch.equal(e1.similarity(), e1.similarity(2.0, 1))
    assert e1.similarity(dtype=torch.float64).dtype == torch.float64
    assert e1.label(1, 2) == 0 and e1.label(0, 2) == -1
    assert backend in repr(e1)
    y_before = y.clone()
    e1.add(0, 2, 1)
    assert torch.equal(y, y_before), "the engine must keep its own copy of the labels"
    try:
        from simlabel_ext.data import from_arrays
    except ImportError:  # the data package is developed separately
        return
    am = from_arrays(y.numpy())  # classes named from the values present: 0, 1, 2
    assert am.num_classes == 3
    assert torch.equal(SimilarityEngine.from_matrix(am, backend=backend).labels(), y)
    assert torch.equal(SimilarityEngine(am, backend=backend).overlap(), e2.overlap())


def test_backend_selection(monkeypatch):
    y = torch.zeros(2, 2, dtype=torch.int64)
    monkeypatch.setattr(_extension, "_compiled", None)
    monkeypatch.setattr(_extension, "_warned", False)
    with pytest.raises(RuntimeError, match=r"backend='cpp'.*not available"):
        SimilarityEngine(y, 1, backend="cpp")
    with pytest.warns(RuntimeWarning, match=r"pure-PyTorch fallback"):
        assert SimilarityEngine(y, 1).backend == "torch"
    assert SimilarityEngine(y, 1, backend="torch").backend == "torch"


@pytest.mark.skipif(not _extension.has_compiled(), reason="simlabel_ext._C was not built")
def test_auto_prefers_cpp():
    assert SimilarityEngine(torch.zeros(2, 2, dtype=torch.int64), 1).backend == "cpp"


# ------------------------------------------------------------------------------------------ memory
@pytest.mark.skipif(not _extension.has_compiled(), reason="simlabel_ext._C was not built")
def test_memory_cifar10h_size():
    """A = 2,571 annotators, C = 10, N = 10,000 items (~50 labels each): the engine holds well under 1 GB."""
    N, A, C, per_item = 10_000, 2_571, 10, 50
    g = torch.Generator().manual_seed(0)
    y = torch.full((N, A), -1, dtype=torch.int64)
    y.scatter_(1, torch.randint(0, A, (N, per_item), generator=g), torch.randint(0, C, (N, per_item), generator=g))
    e = SimilarityEngine(y, C, backend="cpp")
    del y
    e.similarity()  # allocates the similarity cache too
    dense = 4 * (N * A + 2 * A * A + A * A * C) + 2 * 8 * A * A  # int32 labels, n, agree, r + float64 caches
    assert dense <= e.memory_bytes() < 1_000_000_000
    assert e.overlap().diagonal().sum().item() == e.num_labels
