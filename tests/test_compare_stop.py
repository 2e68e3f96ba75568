"""Stopping ``simlabel compare --jobs 2`` with SIGINT (Ctrl-C) or SIGTERM: the grid stops within seconds, no
worker is left behind (checked by PID), and running the same command again resumes the interrupted runs and ends
with the report of an uninterrupted comparison.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simlabel_ext.cli import main

GRID = ["compare", "--dataset", "synthetic", "--preset", "custom", "--items", "300", "--annotators", "6",
        "--classes", "3", "--model-option", "hidden=8", "--model-option", "depth=1", "--modes", "skip,simlabel",
        "--seeds", "0,1", "--epochs", "40", "--batch-size", "16", "--lr", "0.03", "--device", "cpu", "--no-plots"]


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except (FileNotFoundError, ProcessLookupError):
        return False


def report(out: Path) -> dict[str, str]:
    """The report without the command line (it names the output folder)."""
    table = (out / "results.md").read_text().split("\n", 5)[-1]
    return {"results.md": table, "results.csv": (out / "results.csv").read_text()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("whole")
    assert main([*GRID, "--jobs", "2", "--out", str(out)]) == 0
    return report(out)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_grid_and_a_rerun_resumes_it(tmp_path, uninterrupted, capsys, signum, status):
    out = tmp_path / "cmp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "simlabel_ext", *GRID, "--jobs", "2", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not list(out.glob("runs/*/*/*/*/checkpoints/epoch-*.pt")):  # training is under way
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.05)
    workers = children(proc.pid)
    assert workers, "the grid runs in worker processes"
    started = time.monotonic()
    os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10, "the grid took more than 10 s to stop"
    assert proc.returncode == status
    lines = err.strip().splitlines()
    expected = "stopped by SIGTERM" if signum == signal.SIGTERM else "interrupted"
    assert lines[-1] == f"simlabel compare: {expected}; rerun the same command to resume the grid", err
    gone = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < gone:
        time.sleep(0.05)
    assert not [pid for pid in workers if alive(pid)], "a worker outlived the grid"
    assert not list(out.glob("**/.lock")), "a run directory was left locked"
    assert not (out / "results.md").exists()

    stopped = [log.parent for log in out.glob("runs/*/*/*/*/train.log") if not (log.parent / "metrics.json").exists()]
    resumable = [run for run in stopped if list(run.glob("checkpoints/epoch-*.pt"))]
    assert stopped, "the signal came after the last run"
    capsys.readouterr()
    assert main([*GRID, "--jobs", "2", "--out", str(out)]) == 0
    for run in resumable:  # the runs stopped after an epoch checkpoint resume from it
        assert "resumed from" in (run / "train.log").read_text(), run
    assert report(out) == uninterrupted
