"""Peak extra resident memory of a callable, for CPU benchmarks (Linux).

tracemalloc does not see torch's or C++ allocations, so this resets the kernel's peak-RSS counter
(``/proc/self/clear_refs``, value 5), runs the callable and reads ``VmHWM``: the peak resident set size reached
while it ran, minus the resident size before it started. Returns ``None`` where /proc is not writable.
"""
from __future__ import annotations

import gc
from collections.abc import Callable


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_extra_bytes(fn: Callable[[], object]) -> int | None:
    """Bytes of resident memory above the starting level at the peak of ``fn()``."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        before = _status_kib("VmRSS")
    except OSError:
        return None
    fn()
    return max(0, _status_kib("VmHWM") - before) * 1024
