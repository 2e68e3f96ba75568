import importlib.util
import os
from pathlib import Path

import pytest

# Triton reads TRITON_INTERPRET when it is imported: set it before any test module imports triton so that the
# Triton kernels run in the interpreter on CPU tensors (this machine has no GPU). setdefault keeps an explicit
# TRITON_INTERPRET=0 from the environment (e.g. on a GPU runner).
os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module: faster for tiny models on a shared machine, and the same thread count
    as the ``OMP_NUM_THREADS=1`` subprocesses some tests compare with."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """Under ``--benchmark-only`` the tests that are not benchmarks are deselected (one count in the summary)
    instead of being skipped one by one (hundreds of SKIPPED lines around the benchmark table)."""
    if not config.getoption("benchmark_only", default=False):
        return
    keep = [item for item in items if "benchmark" in getattr(item, "fixturenames", ())]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep


@pytest.fixture(scope="session")
def load_study_script():
    """``load(name)``: import ``docs/study/<name>.py`` as a module (the study's scripts are not a package)."""
    folder = Path(__file__).resolve().parents[1] / "docs" / "study"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def study_grid():
    """``build(root, seeds=(0, 1), predict=None) -> (grid, truth_avgs)``: a compare output of Skip runs over the
    custom synthetic preset (80 items, 4 annotators, 3 classes) under ``root/grid``. ``predict`` maps each model to
    ``(prediction(truth [N], labels [N, A]) -> int [N, A], validation Avg)``; by default heads predicts the true
    class everywhere and madl the next class, and madl has the better validation Avg, so it is the Skip pick.
    ``truth_avgs``: per seed, the test Avg (%) of the true label given as every annotator's label."""
    import json

    import numpy as np

    from simlabel_ext.registry import get_registry
    from simlabel_ext.train import TrainConfig

    def everywhere(column):
        return lambda truth, labels: np.repeat(column(truth)[:, None], labels.shape[1], 1)

    default = {"heads": (everywhere(lambda t: t), 0.2), "madl": (everywhere(lambda t: (t + 1) % 3), 0.6)}

    def build(root: Path, seeds=(0, 1), predict=None):
        options = {"preset": "custom", "items": 80, "annotators": 4, "classes": 3, "missing": 0.3}
        runs, truth_avgs = [], []
        for seed in seeds:
            data = get_registry().load_dataset("synthetic", **options, seed=seed, missing_rate=0.0)
            split = np.zeros(data.num_items, dtype=np.int8)
            split[data.split.val.numpy()], split[data.split.test.numpy()] = 1, 2
            labels, truth = data.annotations.labels.numpy().astype(np.int16), data.truth.numpy()
            truth_avgs.append(study_avg(np.repeat(truth[:, None], labels.shape[1], 1), labels, split == 2))
            for model, (prediction, val) in (predict or default).items():
                run_dir = root / "grid" / "runs" / model / "skip" / "mr0.0" / f"seed{seed}"
                run_dir.mkdir(parents=True)
                np.savez(run_dir / "predictions.npz", classes=np.array(["a", "b", "c"]), split=split,
                         labels=labels, hidden=np.full_like(labels, -1), imputed=np.full_like(labels, -1),
                         prediction=prediction(truth, labels).astype(np.int16))
                runs.append({"model": model, "mode": "skip", "seed": seed, "missing_rate": 0.0,
                             "run_dir": str(run_dir), "avg_accuracy": 0.5, "best_val_avg_accuracy": val})
        config = TrainConfig(dataset="synthetic", dataset_options=options, model="heads", epochs=4, patience=2)
        results = {"dataset": "synthetic", "dataset_options": options, "runs": runs, "config": config.to_dict()}
        (root / "grid" / "results.json").write_text(json.dumps(results), encoding="utf-8")
        return root / "grid", truth_avgs

    return build


@pytest.fixture(scope="session")
def naive_avg():
    """``avg(prediction, labels, rows) -> float``: :func:`study_avg`."""
    return study_avg


def study_avg(prediction, labels, rows) -> float:
    """The Avg (%) of ``prediction`` against ``labels`` (both int ``[N, A]``, -1 = none) on the items where the
    boolean ``rows [N]`` holds, by a naive loop over annotators (those without such a label are left out)."""
    accuracies = []
    for a in range(labels.shape[1]):
        seen = [n for n in range(labels.shape[0]) if rows[n] and labels[n, a] >= 0]
        if seen:
            accuracies.append(sum(prediction[n, a] == labels[n, a] for n in seen) / len(seen))
    return 100 * sum(accuracies) / len(accuracies)
