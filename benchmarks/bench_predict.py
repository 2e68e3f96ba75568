"""Throughput of ``SimLabel.predict_proba`` on the CPU, model ``heads``, at A = 44 (music_genre) and A = 1,000.

For each A, a ``heads`` model (the default sizes: two hidden layers of 128) is fitted for one epoch on a random
crowd with A annotators and 124 features, then asked for the distributions of N = 4,096 new items given as a
float64 NumPy array. Candidate: ``predict_proba`` end to end (input checks, the feature scaling, batches of
``eval_batch_size``, softmax, the NumPy copy). Baseline, in the same run: the bare network on the same items,
already scaled and as one float32 tensor (``model(x).logits.softmax(-1)``), i.e. what the estimator adds around
it is the gap. The items per second of both are in each entry's ``extra_info`` and printed.

Run ``OMP_NUM_THREADS=1 pytest benchmarks/bench_predict.py --benchmark-only``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from simlabel_ext import SimLabel

ITEMS = 4096
FEATURES = 124


@pytest.fixture(scope="module", params=[44, 1000], ids=lambda a: f"A={a}")
def fitted(request):
    annotators = request.param
    g = np.random.default_rng(0)
    n = 256
    labels = np.full((n, annotators), -1)  # a wide array: every annotator is a column, labelled or not
    for i in range(n):
        labels[i, g.choice(annotators, 5, replace=False)] = g.integers(0, 10, 5)
    x = g.normal(size=(n, FEATURES)).astype(np.float32)
    model = SimLabel(model="heads", epochs=1, progress=False, device="cpu").fit(x, labels, classes=range(10))
    new = g.normal(size=(ITEMS, FEATURES))
    return annotators, model, new


def bare_network(model: SimLabel, scaled: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.model_.model(scaled).logits.softmax(-1)


@pytest.mark.benchmark(min_rounds=10, max_time=2.0)
@pytest.mark.parametrize("role", ["baseline", "candidate"])
def test_predict_proba_throughput(ratio, fitted, role):
    annotators, model, new = fitted
    group = f"predict_proba heads N={ITEMS} A={annotators} (items/s in extra_info)"
    if role == "baseline":
        scaled = model.model_.scaling.apply(torch.from_numpy(new))
        out = ratio(group, role, bare_network, model, scaled).numpy()
    else:
        out = ratio(group, role, model.predict_proba, new)
    assert out.shape == (ITEMS, annotators, 10)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    stats = getattr(ratio._benchmark, "stats", None)
    if stats is not None:
        per_second = ITEMS / stats.stats.min
        ratio._benchmark.extra_info["items_per_second"] = round(per_second)
        print(f"\n{group} {role}: {per_second:,.0f} items/s")
