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
