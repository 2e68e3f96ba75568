"""Shared benchmark plumbing: every candidate is measured beside its baseline in the same run, and the session
ends with a table of the ratios (baseline time / candidate time) and peak memories.

Use the ``ratio`` fixture instead of ``benchmark``: ``ratio(group, role, fn, *args)`` benchmarks ``fn`` under
``group`` and records it as ``"baseline"`` or ``"candidate"`` (plus any name: the table compares each
non-baseline entry with the group's baseline). ``ratio.memory(group, role, nbytes)`` records a peak.
"""
from __future__ import annotations

import os
import sys
from collections import defaultdict

import pytest

sys.path.insert(0, os.path.dirname(__file__))

_TIMES: dict[str, dict[str, float]] = defaultdict(dict)
_MEMORY: dict[str, dict[str, int]] = defaultdict(dict)


class _Ratio:
    def __init__(self, benchmark):
        self._benchmark = benchmark

    def __call__(self, group: str, role: str, fn, *args, **kwargs):
        self._benchmark.group = group
        self._benchmark.name = role
        result = self._benchmark(fn, *args, **kwargs)
        stats = getattr(self._benchmark, "stats", None)
        if stats is not None:  # None under --benchmark-disable: nothing was timed
            _TIMES[group][role] = stats.stats.min
        return result

    def memory(self, group: str, role: str, nbytes: int | None) -> None:
        if nbytes is not None:
            _MEMORY[group][role] = nbytes
            self._benchmark.extra_info["peak_extra_MiB"] = round(nbytes / 2**20, 1)


@pytest.fixture
def ratio(benchmark):
    return _Ratio(benchmark)


def pytest_terminal_summary(terminalreporter):
    groups = sorted(set(_TIMES) | set(_MEMORY))
    if not groups:
        return
    tr = terminalreporter
    tr.section("speed-ups against the baseline measured in the same run (min time)")
    for group in groups:
        times, memory = _TIMES.get(group, {}), _MEMORY.get(group, {})
        base = times.get("baseline")
        for role in sorted(set(times) | set(memory)):
            line = f"{group:<58} {role:<22}"
            if role in times:
                line += f" {times[role] * 1e3:12.3f} ms"
                if base is not None and role != "baseline":
                    line += f"   x{base / times[role]:,.1f}"
            if role in memory:
                line += f"   peak +{memory[role] / 2**20:,.1f} MiB"
            tr.write_line(line)
