"""Resuming a run (``simlabel train --resume``): after a SIGKILL in the middle of an epoch, after a truncated newest
checkpoint, and refusing a changed option.

The kill is made deterministic: the killed ``simlabel train`` process runs with its ``Trainer._step`` wrapped so
that, right after a chosen optimizer step in the middle of epoch 3, it writes a marker file and waits; the test
sees the marker and sends SIGKILL from outside. So the kill always lands mid-epoch, with the model, optimizer and
imputation store already changed in memory beyond the newest checkpoint (epoch 2), which the resumed run must
not depend on.

The configuration imputes from epoch 2 on and uses dropout, so a resumed run that did not restore the
imputation store, the similarity or the random-number state would end differently.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from simlabel_ext.cli import main

EPOCHS = 4
STEPS_PER_EPOCH = 13  # 193 training items, batch size 16
KILL_AFTER_STEP = 2 * STEPS_PER_EPOCH + 6  # the 7th of 13 steps of epoch 3
ARGS = [
    "--dataset", "synthetic", "--preset", "custom", "--items", "277", "--annotators", "8", "--classes", "4",
    "--missing", "0.6", "--accuracy", "0.9", "--separation", "2.0", "--model", "heads", "--model-option", "hidden=8",
    "--model-option", "depth=1", "--model-option", "dropout=0.2", "--mode", "simlabel+confidence",
    "--epochs", str(EPOCHS), "--batch-size", "16", "--lr", "0.03", "--threshold", "0.5", "--device", "cpu",
    "--no-progress",
]
KILLABLE = """
import os, sys, time
from pathlib import Path
from simlabel_ext.train.trainer import Trainer

marker, stop_at = Path(sys.argv[1]), int(sys.argv[2])
step = Trainer._step

def paused_step(self, *args, **kwargs):
    step(self, *args, **kwargs)
    if self.global_step == stop_at:
        marker.write_text(str(self.epoch))
        while True:
            time.sleep(1)

Trainer._step = paused_step
from simlabel_ext.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test of this module runs with one intra-op thread (see conftest.one_thread)."""


def train(out: Path, *extra: str) -> int:
    return main(["train", *ARGS, "--out", str(out), *extra])


def outputs(out: Path) -> dict:
    """What must be identical between runs: metrics without train_seconds, history without seconds, the CSV."""
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("train_seconds")
    history = json.loads((out / "history.json").read_text())
    for record in history:
        record.pop("seconds")
    return {"metrics": metrics, "history": history, "imputed": (out / "imputed_labels.csv").read_text()}


@pytest.fixture(scope="module")
def kill_job(tmp_path_factory):
    """The run to be killed, started first so that the uninterrupted run below overlaps with its start-up."""
    base = tmp_path_factory.mktemp("killed")
    out, marker, log = base / "run", base / "paused", base / "stderr.txt"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(marker), str(KILL_AFTER_STEP), "train", *ARGS,
                                 "--out", str(out)], env=dict(os.environ, OMP_NUM_THREADS="1"),
                                stdout=subprocess.DEVNULL, stderr=fh)
    yield proc, out, marker, log
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, kill_job):
    out = tmp_path_factory.mktemp("whole") / "run"
    assert train(out) == 0
    result = outputs(out)
    assert result["metrics"]["imputations"] > 50 and result["metrics"]["epochs_run"] == EPOCHS
    assert result["metrics"]["missing_rate"] == 0.0  # --missing is the data set's option, not --missing-rate
    assert result["history"][1]["imputed"] > 0  # the epoch-2 checkpoint already holds imputations
    return result


@pytest.fixture(scope="module")
def killed(kill_job, uninterrupted):
    """A run directory whose process was SIGKILLed in the middle of epoch 3."""
    proc, out, marker, log = kill_job
    deadline = time.monotonic() + 240
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the training process ended before the kill point:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail("the training process did not reach the kill point within 240 s")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert marker.read_text() == "2"  # 0-based epoch 2 = the third epoch was running
    names = sorted(p.name for p in (out / "checkpoints").glob("epoch-*.pt"))
    assert names == ["epoch-0001.pt", "epoch-0002.pt"]
    assert not (out / "metrics.json").exists()
    text = (out / "train.log").read_text()
    assert f"epoch 2/{EPOCHS}" in text and f"epoch 3/{EPOCHS}" not in text
    return out


def test_resume_after_sigkill_mid_epoch_ends_identical(killed, uninterrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(killed, out)
    with pytest.warns(UserWarning, match=r"took over the lock left by process \d+, which is no longer running"):
        assert train(out, "--resume") == 0
    assert outputs(out) == uninterrupted
    assert f"resumed from {out / 'checkpoints' / 'epoch-0002.pt'} (epoch 2, step {2 * STEPS_PER_EPOCH}" in (
        out / "train.log").read_text()


@pytest.mark.filterwarnings("ignore:.*took over the lock")
def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(killed, uninterrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(killed, out)
    newest = out / "checkpoints" / "epoch-0002.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match=r"epoch-0002\.pt"):
        assert train(out, "--resume") == 0
    assert f"resumed from {out / 'checkpoints' / 'epoch-0001.pt'} (epoch 1," in (out / "train.log").read_text()
    assert outputs(out) == uninterrupted


def _dense_store(sparse: dict) -> dict:
    """The imputation store as checkpoints of format simlabel-checkpoint-1 held it: every field ``[N, A]``."""
    n, a = sparse["shape"].tolist()
    dense = {}
    for name, at, empty in [("observed", "observed_at", -1), ("classes", "imputed_at", -1),
                            ("confidence", "imputed_at", 0), ("epoch", "imputed_at", -1), ("step", "imputed_at", -1),
                            ("revisions", "imputed_at", 0)]:
        field = torch.full((n * a,), empty, dtype=sparse[name].dtype)
        field[sparse[at]] = sparse[name]
        dense[name] = field.view(n, a)
    return dense


@pytest.mark.filterwarnings("ignore:.*took over the lock")
def test_a_checkpoint_of_the_earlier_dense_format_resumes_identically(killed, uninterrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(killed, out)
    newest = out / "checkpoints" / "epoch-0002.pt"
    state = torch.load(newest, weights_only=True)
    assert state["format"] == "simlabel-checkpoint-2" and len(state["store"]["imputed_at"]) > 0
    state["format"], state["store"] = "simlabel-checkpoint-1", _dense_store(state["store"])
    torch.save(state, newest)
    assert train(out, "--resume") == 0
    assert f"resumed from {newest} (epoch 2," in (out / "train.log").read_text()
    assert outputs(out) == uninterrupted


@pytest.mark.filterwarnings("ignore:.*took over the lock")
def test_resume_refuses_a_changed_option(killed, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(killed, out)
    def listing():  # the run's files; the killed process's stale .lock is taken over and released on refusal
        return sorted((p.relative_to(out), p.stat().st_mtime_ns) for p in out.rglob("*") if p.name != ".lock")

    before = listing()
    args = list(ARGS)
    args[args.index("--lr") + 1] = "0.05"
    capsys.readouterr()
    assert main(["train", *args, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'lr'" in err[0] and "0.03" in err[0] and "0.05" in err[0], err
    assert listing() == before  # untouched
