"""Resuming a data-parallel run (2 gloo processes under ``torchrun``) that was SIGKILLed in the middle of an epoch.

One rank is killed while the other waits in a collective (torchrun then ends the job); ``--resume`` with the same
command must end with the same metrics, history, imputed labels and parameters as an uninterrupted 2-process run.
Each process restores its own random-number state from the checkpoint's stacked states, which crashed torch
2.13 (a row of a stacked tensor given to ``torch.set_rng_state``) before the row was copied.

SLOWER THAN MOST TEST FILES: three torchrun launches (the uninterrupted one runs beside the killed one).
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed
from test_distributed import Job
from test_resume import outputs as run_outputs

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                       reason="torch.distributed with gloo is not available"),
]

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 300
STEPS_PER_EPOCH = 13  # 193 training items, global batch 16
KILL_AFTER_STEP = 2 * STEPS_PER_EPOCH + 5  # in the middle of epoch 3, after imputations began
ARGS = [
    "--dataset", "synthetic", "--preset", "custom", "--items", "277", "--annotators", "8", "--classes", "4",
    "--missing", "0.6", "--accuracy", "0.9", "--separation", "2.0", "--model", "heads", "--model-option", "hidden=8",
    "--model-option", "depth=1", "--mode", "simlabel+confidence", "--epochs", "4", "--batch-size", "16",
    "--lr", "0.03", "--threshold", "0.5", "--device", "cpu", "--no-progress",
]


def torchrun(out: Path, marker: Path, stop_at: int, *extra: str) -> Job:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "ddp_killable.py"), str(marker), str(stop_at), "train", *ARGS, "--out", str(out), *extra]
    return Job(cmd, TIMEOUT_S, out.parent / f"{out.name}-{len(extra)}.log")


def outputs(out: Path) -> dict:
    """What must be identical: the one-process resume test's outputs, and the weights of model.pt."""
    return {**run_outputs(out), "weights": torch.load(out / "model.pt", weights_only=True)["state_dict"]}


def test_resume_of_a_killed_two_process_run_ends_as_the_uninterrupted_run(tmp_path):
    killed_dir, whole_dir = tmp_path / "killed", tmp_path / "whole"
    marker = tmp_path / "paused"
    killed = torchrun(killed_dir, marker, KILL_AFTER_STEP)
    whole = torchrun(whole_dir, tmp_path / "unused", 0)
    deadline = time.monotonic() + TIMEOUT_S
    while not marker.exists():
        assert killed.proc.poll() is None, f"the job ended before the kill point:\n{killed.log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, "the job did not reach the kill point"
        time.sleep(0.1)
    time.sleep(0.2)  # the marker is written: its content is complete
    pid, epoch = (int(v) for v in marker.read_text().split())
    assert epoch == 2  # 0-based: the third of four epochs was running
    os.kill(pid, signal.SIGKILL)  # rank 0; torchrun then stops rank 1, which waits in a collective
    code, log = killed.wait()
    assert code not in (0, None), log[-4000:]
    assert sorted(p.name for p in (killed_dir / "checkpoints").glob("epoch-*.pt")) == ["epoch-0001.pt",
                                                                                        "epoch-0002.pt"]
    assert not (killed_dir / "metrics.json").exists()

    code, log = torchrun(killed_dir, tmp_path / "unused", 0, "--resume").wait()
    assert code == 0, log[-4000:]
    assert "resumed from" in (killed_dir / "train.log").read_text()
    code, log = whole.wait()
    assert code == 0, log[-4000:]

    resumed, uninterrupted = outputs(killed_dir), outputs(whole_dir)
    assert resumed["metrics"] == uninterrupted["metrics"]
    assert resumed["metrics"]["world_size"] == 2 and resumed["metrics"]["imputations"] > 50
    assert resumed["history"] == uninterrupted["history"]
    assert resumed["imputed"] == uninterrupted["imputed"]
    for name, value in uninterrupted["weights"].items():
        assert torch.equal(resumed["weights"][name], value), name
