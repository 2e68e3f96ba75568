"""``simlabel train`` under ``torchrun``, with rank 0 pausing after one chosen optimizer step so that a test can
SIGKILL it in the middle of an epoch (used by ``tests/test_distributed_resume.py``)::

    torchrun --standalone --nproc_per_node=2 tests/ddp_killable.py MARKER STOP_AT train ARGS...

With ``STOP_AT`` > 0, rank 0 writes its PID and epoch (0-based) to ``MARKER`` right after global step ``STOP_AT``
and sleeps; the other ranks wait in the next collective. ``STOP_AT`` = 0 runs the command unchanged.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from simlabel_ext.train.trainer import Trainer

marker, stop_at = Path(sys.argv[1]), int(sys.argv[2])
step = Trainer._step


def paused_step(self, *args, **kwargs):
    step(self, *args, **kwargs)
    if stop_at and self.dist.rank == 0 and self.global_step == stop_at:
        marker.write_text(f"{os.getpid()} {self.epoch}")
        while True:
            time.sleep(1)


Trainer._step = paused_step

from simlabel_ext.cli import main  # noqa: E402 - after the patch

sys.exit(main(sys.argv[3:]))
