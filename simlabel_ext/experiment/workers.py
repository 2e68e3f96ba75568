"""Runs of a grid in worker processes that stop when the grid stops.

:func:`run_in_workers` trains each task in its own spawned process, at most ``jobs`` at a time, and yields each
result as it comes. Stopping is the parent's alone:

- a worker ignores SIGINT (Ctrl-C reaches the whole process group; the parent decides) and turns SIGTERM into an
  orderly exit (``SystemExit``), so the run directory's lock is released and its last checkpoint stays;
- when the parent is interrupted (KeyboardInterrupt, or SIGTERM turned into it by the caller), fails, or closes
  the generator, it sends SIGTERM to every live worker, waits :data:`STOP_GRACE_S` seconds and SIGKILLs what is
  left, then re-raises: no worker goes on training the rest of the queue;
- a worker whose parent dies without cleaning up (SIGKILL) is sent SIGTERM by the kernel (Linux
  ``PR_SET_PDEATHSIG``), so none is left behind holding memory.

A worker that fails sends its error back; the parent stops the others and raises :class:`WorkerError` naming the
task. One process per task costs an interpreter start-up (about a second) per run.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

__all__ = ["STOP_GRACE_S", "WorkerError", "run_in_workers"]

#: Seconds a worker has to exit after SIGTERM before it is killed.
STOP_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1


class WorkerError(RuntimeError):
    """A task failed in its worker process (the message names it and the error)."""


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGTERM this process when its parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):  # not glibc: the parent's own cleanup still stops the workers
            pass
    if os.getppid() != parent:
        sys.exit(143)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)


def _worker(function: Callable[..., Any], args: tuple, parent: int, conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _die_with_parent(parent)
    try:
        conn.send(("ok", function(*args)))
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent, which reports it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _stop(processes: Sequence[multiprocessing.Process]) -> None:
    """SIGTERM every live process, wait up to :data:`STOP_GRACE_S` for all, then SIGKILL the rest."""
    live = [p for p in processes if p.is_alive()]
    for p in live:
        p.terminate()
    deadline = STOP_GRACE_S
    for p in live:
        p.join(deadline)
    for p in live:
        if p.is_alive():
            p.kill()
            p.join()


def run_in_workers(function: Callable[..., Any], tasks: Sequence[tuple[Any, tuple]], jobs: int,
                   label: Callable[[Any], str] = str) -> Iterator[tuple[Any, Any]]:
    """``(key, function(*args))`` for every ``(key, args)`` of ``tasks``, as they finish, computed in at most
    ``jobs`` spawned processes (``function`` and ``args`` must pickle). ``label(key)`` names a task in errors."""
    context = multiprocessing.get_context("spawn")
    pending = deque(tasks)
    running: dict[Any, tuple[multiprocessing.Process, Connection, Any]] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                key, args = pending.popleft()
                receive, send = context.Pipe(duplex=False)
                process = context.Process(target=_worker, args=(function, args, os.getpid(), send),
                                          name=f"simlabel worker: {label(key)}")
                process.start()
                send.close()
                running[process.sentinel] = (process, receive, key)
            for sentinel in wait(list(running)):
                process, receive, key = running.pop(sentinel)
                outcome = receive.recv() if receive.poll() else ("error", f"exit status {process.exitcode}")
                receive.close()
                process.join()
                status, value = outcome
                if status != "ok":
                    raise WorkerError(f"{label(key)}: {value}")
                yield key, value
    finally:
        _stop([process for process, _, _ in running.values()])
