"""The imputation store's part of an epoch checkpoint: saved sparse (the store's ``state_dict``) against the dense
``[N, A]`` fields that checkpoints of format ``simlabel-checkpoint-1`` held.

A store shaped like sentiment_polarity's (N = 4,999 items, A = 203 annotators, 27,746 observed labels) with
2,000 imputed entries is written with :func:`simlabel_ext.storage.save_torch` (temporary file, fsync, rename), as
every epoch checkpoint is. Baseline: its six dense fields; candidate: ``ImputationStore.state_dict()`` (which
includes building the sparse form). The bytes written by each are in ``extra_info`` and printed; both are read back
and checked to hold the same store.

Run ``OMP_NUM_THREADS=1 pytest benchmarks/bench_checkpoint.py --benchmark-only``.
"""
from __future__ import annotations

import pytest
import torch

from simlabel_ext.imputation import ImputationStore
from simlabel_ext.storage import load_torch, save_torch

ITEMS, ANNOTATORS, OBSERVED, IMPUTED = 4999, 203, 27746, 2000


@pytest.fixture(scope="module")
def store() -> ImputationStore:
    g = torch.Generator().manual_seed(0)
    observed = torch.full((ITEMS, ANNOTATORS), -1, dtype=torch.int64)
    flat = torch.randperm(ITEMS * ANNOTATORS, generator=g)[:OBSERVED + IMPUTED]
    observed.view(-1)[flat[:OBSERVED]] = torch.randint(0, 2, (OBSERVED,), generator=g)
    store = ImputationStore(observed, 2)
    free = flat[OBSERVED:]
    store.update(free // ANNOTATORS, free % ANNOTATORS, torch.randint(0, 2, (IMPUTED,), generator=g),
                 torch.rand(IMPUTED, generator=g), epoch=3, step=120)
    return store


def dense_state(store: ImputationStore) -> dict[str, torch.Tensor]:
    """The store as format-1 checkpoints held it: ``observed`` and the five fields, each ``[N, A]``."""
    return {"observed": store.observed, **{name: getattr(store, name).clone()
                                           for name in ("classes", "confidence", "epoch", "step", "revisions")}}


@pytest.mark.benchmark(min_rounds=5, max_time=3.0)
@pytest.mark.parametrize("role", ["baseline", "candidate"])
def test_store_checkpoint_save(ratio, store, role, tmp_path):
    path = tmp_path / "store.pt"
    group = f"store checkpoint save N={ITEMS} A={ANNOTATORS} (bytes in extra_info)"
    build = (lambda: dense_state(store)) if role == "baseline" else store.state_dict
    ratio(group, role, lambda: save_torch(build(), path))
    restored = ImputationStore(store.observed, 2)
    restored.load_state_dict(load_torch(path, "checkpoint"))
    assert torch.equal(restored.labels(), store.labels()) and len(restored) == IMPUTED
    ratio._benchmark.extra_info["bytes"] = path.stat().st_size
    print(f"\n{group} {role}: {path.stat().st_size:,} bytes")
