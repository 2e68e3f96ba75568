"""Peak extra resident memory of a callable, for CPU benchmarks (Linux).

tracemalloc does not see torch's or C++ allocations, so this resets the kernel's peak-RSS counter
(``/proc/self/clear_refs``, value 5), runs the callable and reads ``VmHWM``: the peak resident set size reached
while it ran, minus the resident size before it started. Returns ``None`` where /proc is not writable.
From the first measurement on, glibc's mmap threshold is pinned at 128 KiB (by default it grows after large frees), so large tensors are
always mapped and unmapped and the resident size tracks what is really alive.
"""
from __future__ import annotations

import gc
import ctypes
from collections.abc import Callable

_M_MMAP_THRESHOLD = -3


def _pin_mmap_threshold() -> None:
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    except OSError:  # not glibc: measurements may under-count reused memory
        pass


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_extra_bytes(fn: Callable[[], object]) -> int | None:
    """Bytes of resident memory above the starting level at the peak of ``fn()``."""
    _pin_mmap_threshold()  # process-wide from the first measurement on; benchmarks run after the tests
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        before = _status_kib("VmRSS")
    except OSError:
        return None
    fn()
    return max(0, _status_kib("VmHWM") - before) * 1024
