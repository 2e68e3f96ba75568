"""The similarity engine against its anchors, measured in the same run (ratios in the session-end table).

Anchor ("baseline"): a loop of ``sklearn.metrics.cohen_kappa_score`` over every annotator pair's co-labelled items
(the full recount a naive implementation does after each change). Candidates, for the C++ and the PyTorch backend:

- ``build+S``: a fresh :class:`SimilarityEngine` plus its similarity matrix (target: C++ >= 100x the anchor);
- ``1 label+S``: one imputed (or removed) label followed by the refreshed similarity matrix, written into a reused
  buffer (target: >= 1,000x the anchor); a second group compares it with a full engine rebuild.

Sizes: AMER scale (synthetic, seeded: N=5,207 items, A=13 annotators, C=8 classes, 69.6 % missing), the real
music_genre crowd (skipped when ``shared/data`` is absent), and CIFAR-10H size (A=2,571, N=10,000, ~50 labels per
item, C=10: C++ build time and peak extra resident memory; no sklearn anchor there: 3.3 M pairs would take hours,
and the pure-PyTorch build is dense one-hot matrix products, far too slow at this size).

Run ``pytest benchmarks/bench_similarity.py --benchmark-only`` for the numbers. Under ``--benchmark-disable``
every code path runs once on smaller inputs (anchors over a few pairs, CIFAR size scaled down by 10).
"""
from __future__ import annotations

import csv
import functools
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from memory import peak_extra_bytes

from simlabel_ext import _extension
from simlabel_ext.similarity import SimilarityEngine

cohen_kappa_score = pytest.importorskip("sklearn.metrics").cohen_kappa_score

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BACKENDS = [
    "torch",
    pytest.param("cpp", marks=pytest.mark.skipif(not _extension.has_compiled(), reason="simlabel_ext._C not built")),
]
CPP_ONLY = pytest.mark.skipif(not _extension.has_compiled(), reason="simlabel_ext._C not built")


# ------------------------------------------------------------------------------------------------------ data
@functools.lru_cache(maxsize=None)
def amer_like(
    N: int = 5207, A: int = 13, C: int = 8, missing: float = 0.696, seed: int = 0
) -> tuple[torch.Tensor, int]:
    """Synthetic crowd of AMER's shape: annotator a is right with probability acc[a], else uniform at random."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, C, N)
    acc = rng.uniform(0.4, 0.9, A)
    y = np.where(rng.random((N, A)) < acc, truth[:, None], rng.integers(0, C, (N, A)))
    y[rng.random((N, A)) < missing] = -1
    return torch.from_numpy(y.astype(np.int64)), C


@functools.lru_cache(maxsize=None)
def _read_music_genre(path: Path) -> tuple[torch.Tensor, int]:
    with open(path, newline="") as fh:
        rows = [(r["id"], r["annotator"], r["class"]) for r in csv.DictReader(fh)]
    items = {v: k for k, v in enumerate(sorted({r[0] for r in rows}))}
    workers = {v: k for k, v in enumerate(sorted({r[1] for r in rows}))}
    classes = {v: k for k, v in enumerate(sorted({r[2] for r in rows}))}
    y = torch.full((len(items), len(workers)), -1, dtype=torch.int64)
    for item, worker, label in rows:
        y[items[item], workers[worker]] = classes[label]
    return y, len(classes)


def music_genre() -> tuple[torch.Tensor, int]:
    path = DATA / "music_genre" / "music_genre_mturk.csv"
    if not path.is_file():
        pytest.skip(f"music_genre not found at {path} (shared/data is not present beside the repository)")
    return _read_music_genre(path)


def cifar10h_like(N: int, A: int, C: int = 10, per_item: int = 50, seed: int = 0) -> tuple[torch.Tensor, int]:
    """~per_item labels per item from random annotators (repeats collapse, so slightly fewer)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.full((N, A), -1, dtype=torch.int64)
    y.scatter_(1, torch.randint(0, A, (N, per_item), generator=g), torch.randint(0, C, (N, per_item), generator=g))
    return y, C


DATASETS = {
    "AMER-scale N=5207 A=13 C=8 (69.6% missing)": amer_like,
    "music_genre N=700 A=44 C=10 (90.4% missing)": music_genre,
}


# --------------------------------------------------------------------------------------------- the workloads
def sklearn_all_pairs(y: np.ndarray, max_pairs: int | None = None) -> np.ndarray:
    """The anchor: cohen_kappa_score on each pair's shared items (NaN where none), one call per pair a < b."""
    A = y.shape[1]
    kappa = np.full((A, A), np.nan)
    done = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a in range(A):
            for b in range(a + 1, A):
                shared = (y[:, a] >= 0) & (y[:, b] >= 0)
                if shared.any():
                    kappa[a, b] = kappa[b, a] = cohen_kappa_score(y[shared, a], y[shared, b])
                    done += 1
                    if max_pairs is not None and done >= max_pairs:
                        return kappa
    return kappa


def build_and_similarity(labels: torch.Tensor, C: int, backend: str) -> SimilarityEngine:
    engine = SimilarityEngine(labels, C, backend=backend)
    engine.similarity()
    return engine


def one_label_stepper(labels: torch.Tensor, C: int, backend: str, seed: int = 0):
    """A callable that changes one label (alternately imputes a missing entry and removes it again, so the state
    stays put) and refreshes the similarity matrix into a reused float32 buffer."""
    engine = SimilarityEngine(labels, C, backend=backend)
    A = engine.num_annotators
    buffer = torch.empty(A, A)
    engine.similarity(out=buffer)  # the first call fills the caches
    missing = (labels < 0).nonzero()
    pick = torch.randperm(len(missing), generator=torch.Generator().manual_seed(seed))[:512]
    entries = [(int(i), int(a)) for i, a in missing[pick]]
    state = {"k": 0}

    def step() -> torch.Tensor:
        k = state["k"]
        state["k"] = k + 1
        item, annotator = entries[(k // 2) % len(entries)]
        engine.set_label(item, annotator, (k // 2) % C if k % 2 == 0 else -1)
        return engine.similarity(out=buffer)

    return step, engine


# ------------------------------------------------------------------------------------------------ benchmarks
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_anchor_sklearn_all_pairs(ratio, benchmark, dataset):
    labels, _ = DATASETS[dataset]()
    y = labels.numpy()
    max_pairs = 5 if benchmark.disabled else None
    kappa = ratio(f"similarity {dataset}", "baseline", sklearn_all_pairs, y, max_pairs)
    assert not np.isnan(kappa).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_build_and_similarity(ratio, dataset, backend):
    labels, C = DATASETS[dataset]()
    engine = ratio(f"similarity {dataset}", f"{backend} build+S", build_and_similarity, labels, C, backend)
    assert engine.num_labels == int((labels >= 0).sum())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_one_label_and_similarity(ratio, dataset, backend):
    labels, C = DATASETS[dataset]()
    step, engine = one_label_stepper(labels, C, backend)
    S = ratio(f"similarity {dataset}", f"{backend} 1 label+S", step)
    assert S.shape == (engine.num_annotators,) * 2


@pytest.mark.parametrize("role", ["baseline", "candidate"], ids=["rebuild", "update"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_one_label_vs_rebuild_amer(ratio, backend, role):
    """Same comparison with a full engine rebuild (build + S) as the baseline instead of sklearn."""
    labels, C = amer_like()
    group = f"similarity AMER-scale: {backend} 1 label+S vs {backend} rebuild+S"
    if role == "baseline":
        ratio(group, "baseline", build_and_similarity, labels, C, backend)
    else:
        step, _ = one_label_stepper(labels, C, backend)
        ratio(group, "1 label+S", step)


def _cifar(benchmark) -> tuple[torch.Tensor, int, str]:
    N, A = (1_000, 257) if benchmark.disabled else (10_000, 2_571)
    labels, C = cifar10h_like(N, A)
    return labels, C, f"similarity CIFAR-10H-size N={N} A={A} C=10 (~50 labels/item)"


@CPP_ONLY
@pytest.mark.parametrize("role", ["baseline", "candidate"], ids=["rebuild", "update"])
def test_cifar10h_size(ratio, benchmark, role):
    labels, C, group = _cifar(benchmark)
    if role == "baseline":
        # Peak extra resident memory of one build + S (includes the CSR temporaries and the returned S), and the
        # bytes the engine keeps afterwards (its memory_bytes()) in extra_info and in the report line's role.
        peak = peak_extra_bytes(lambda: build_and_similarity(labels, C, "cpp"))
        engine = ratio(group, "baseline", build_and_similarity, labels, C, "cpp")
        kept = engine.memory_bytes()
        benchmark.extra_info["engine_memory_bytes"] = kept
        ratio.memory(group, "baseline", peak)
        print(f"\n{group}: peak extra RSS of build+S {peak / 2**20 if peak else float('nan'):.1f} MiB, "
              f"engine.memory_bytes() {kept / 2**20:.1f} MiB")
        assert kept < 1_000_000_000
    else:
        step, engine = one_label_stepper(labels, C, "cpp")
        ratio(group, "cpp 1 label+S", step)
