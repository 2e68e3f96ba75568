"""The model a user would pick: per missing rate, the best (model, mode) by validation Avg under Skip and under
SimLabel, and the second's paired gain over the first on test items.

The main table answers "does SimLabel help this backbone?"; this answers "does SimLabel improve the best model the
grid trains?". Both picks are made on validation only (``best_val_avg_accuracy`` of ``metrics.json``, the mean
over a group's seeds; the first in (model, mode) order among equals), never on test. The gain pairs the two picks'
runs seed by seed, over the seeds both have, with the criterion of :mod:`.paired`. Accuracies are fractions.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .paired import PairedGain, SplitOutcome, paired_gain_or_none
from .tables import defined, interval_cell, mean_std, percent, verdict_cell

__all__ = ["Choice", "Pick", "best_by_validation", "choose", "markdown_choice"]


@dataclass(frozen=True)
class Pick:
    """One (model, mode) group: its mean validation Avg over all its seeds, and the mean and std of its test Avg
    over the seeds of the comparison."""

    model: str
    mode: str
    val_avg: float
    test_avg: float
    test_std: float


@dataclass(frozen=True)
class Choice:
    """At ``missing_rate``: the best group under Skip, the best under SimLabel, the ``seeds`` both have and the
    SimLabel pick's paired test gain over the Skip pick (None where they share no seed or a run of those seeds
    has no test outcome)."""

    missing_rate: float
    skip: Pick
    simlabel: Pick
    seeds: tuple[int, ...]
    gain: PairedGain | None

    def as_dict(self) -> dict[str, Any]:
        """For ``results.json``: the rate, both picks, the seeds and the gain (mean, se, low, high, verdict)."""
        gain = None if self.gain is None else {"mean": self.gain.mean, "se": self.gain.se, "low": self.gain.low,
                                               "high": self.gain.high, "verdict": self.gain.verdict}
        return {"missing_rate": self.missing_rate, "skip": asdict(self.skip), "simlabel": asdict(self.simlabel),
                "seeds": list(self.seeds), "gain": gain}


def best_by_validation(runs: Iterable[dict[str, Any]]) -> tuple[str, str] | None:
    """The (model, mode) of ``runs`` (``metrics.json`` dicts) with the highest mean validation Avg over its seeds,
    the first in (model, mode) order among equals; None where no group has a defined one."""
    values: dict[tuple[str, str], list[float | None]] = {}
    for m in runs:
        values.setdefault((m["model"], m["mode"]), []).append(m.get("best_val_avg_accuracy"))
    best, best_val = None, None
    for key in sorted(values):
        val = mean_std(values[key])[0]
        if defined(val) and (best_val is None or val > best_val):
            best, best_val = key, val
    return best


def choose(runs: Sequence[dict[str, Any]], outcomes: Sequence[SplitOutcome | None],
           simlabel_modes: Iterable[str] | None = None) -> list[Choice]:
    """One :class:`Choice` per missing rate of ``runs`` (``metrics.json`` dicts; ``outcomes[i]`` the test outcome
    of ``runs[i]`` or None) that has both a Skip run and a run of ``simlabel_modes`` (default: every mode but
    Skip), in increasing rate."""
    if len(outcomes) != len(runs):
        raise ValueError(f"choose: {len(outcomes)} outcomes for {len(runs)} runs")
    wanted = None if simlabel_modes is None else set(simlabel_modes)
    choices = []
    for rate in sorted({float(m["missing_rate"]) for m in runs}):
        here = [(m, o) for m, o in zip(runs, outcomes) if float(m["missing_rate"]) == rate]
        skip = best_by_validation(m for m, _ in here if m["mode"] == "skip")
        simlabel = best_by_validation(m for m, _ in here if m["mode"] != "skip"
                                      and (wanted is None or m["mode"] in wanted))
        if skip is None or simlabel is None:
            continue
        of = {key: {m["seed"]: (m, o) for m, o in here if (m["model"], m["mode"]) == key} for key in (skip, simlabel)}
        common = sorted(set(of[skip]) & set(of[simlabel]))
        pairs = [(seed, of[simlabel][seed][1], of[skip][seed][1]) for seed in common]
        choices.append(Choice(rate, _pick(skip, of[skip], common), _pick(simlabel, of[simlabel], common),
                              tuple(common), paired_gain_or_none(pairs)))
    return choices


def _pick(key: tuple[str, str], seeds: dict[int, tuple[dict[str, Any], Any]], common: Sequence[int]) -> Pick:
    val = mean_std([m.get("best_val_avg_accuracy") for m, _ in seeds.values()])[0]
    return Pick(key[0], key[1], val, *mean_std([seeds[seed][0]["avg_accuracy"] for seed in common]))


def markdown_choice(choices: Sequence[Choice]) -> list[str]:
    """The section of ``results.md`` for ``choices``: a reading line and one table row per missing rate."""
    if not choices:
        return []
    lines = ["### The model to use", "",
             "Per missing rate, the best model by validation Avg (mean over seeds) under Skip and the best model and "
             "mode under SimLabel (either SimLabel mode), their test Avg (%, mean ± std over the seeds both have), "
             "the SimLabel pick's paired gain over the Skip pick on test items with the criterion above, and the "
             "one of the two with the higher validation Avg (use). Where the verdict is not *beats*, SimLabel did "
             "not improve the best model this grid trains.", "",
             "| extra missing | best with Skip | val. Avg | test Avg | best with SimLabel | val. Avg | test Avg "
             "| Δ | 95 % CI | verdict | use |",
             "|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for c in choices:
        g, use = c.gain, c.simlabel if c.simlabel.val_avg > c.skip.val_avg else c.skip
        lines.append(
            f"| {c.missing_rate:g} | {c.skip.model} | {percent(c.skip.val_avg)} | "
            f"{percent(c.skip.test_avg, c.skip.test_std)} | {c.simlabel.model} {c.simlabel.mode} | "
            f"{percent(c.simlabel.val_avg)} | {percent(c.simlabel.test_avg, c.simlabel.test_std)} | "
            f"{percent(g.mean, g.se, signed=True) if g else '–'} | {interval_cell(g.low, g.high) if g else '–'} | "
            f"{verdict_cell(g.verdict) if g else '–'} | {use.model} {use.mode} |")
    return [*lines, ""]
