"""The run directory's single writer: a second process is refused at once, naming the directory and the holder's
PID; a lock left by a process that died is taken over with a warning; the lock is released when a run ends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from simlabel_ext.cli import main
from simlabel_ext.rundir import RunDirectory, RunDirectoryInUse

TINY = ["--preset", "custom", "--items", "60", "--annotators", "4", "--model-option", "hidden=4", "--model-option",
        "depth=0", "--epochs", "1", "--batch-size", "64", "--no-progress", "--device", "cpu"]


def test_a_second_writer_is_refused_at_once_naming_the_directory_and_the_holder(tmp_path):
    out = tmp_path / "run"
    with RunDirectory(out).lock():
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "simlabel_ext", "train", *TINY, "--out", str(out)],
                              capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=120)
        assert time.monotonic() - started < 60
        assert proc.returncode == 2
        (line,) = proc.stderr.strip().splitlines()
        assert line == (f"simlabel train: error: {out} is in use by process {os.getpid()} (a run writing there); "
                        "wait for it to end, stop it, or choose another directory")
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing was written
        with pytest.raises(RunDirectoryInUse, match=rf"in use by process {os.getpid()}"):
            with RunDirectory(out).lock():  # another holder in this process too (a second open file)
                pass
    assert not (out / ".lock").exists()  # released and removed
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert not (out / ".lock").exists()


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from simlabel_ext.rundir import RunDirectory\n"
         "lock = RunDirectory(sys.argv[1]).lock(); lock.__enter__(); print('locked', flush=True); time.sleep(300)",
         str(out)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    assert (out / ".lock").read_text().strip() == str(holder.pid)
    with pytest.raises(RunDirectoryInUse, match=rf"in use by process {holder.pid}"):
        with RunDirectory(out).lock():
            pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (out / ".lock").read_text().strip() == str(holder.pid)  # the file stays, its flock is gone
    with pytest.warns(UserWarning, match=rf"took over the lock left by process {holder.pid}, which is no longer "
                                         "running"):
        assert main(["train", *TINY, "--out", str(out)]) == 0
    assert (out / "metrics.json").is_file() and not (out / ".lock").exists()
