"""The comparison table: one row per (missing rate, model, mode), mean ± std over seeds, gain over Skip with the
criterion of :mod:`.paired`. Where the data set knows the true labels, each annotator's own agreement with them is
in ``per_annotator`` (results.json) and in a last Markdown row ``(labels) vs truth``.

Input: the ``metrics.json`` dicts of finished runs (:mod:`simlabel_ext.rundir`), optionally with the test
outcomes of their ``predictions.npz`` and, for SimLabel + Confidence runs, ``imputation_baselines``
(:mod:`.imputation`). Accuracies are fractions in [0, 1] in the data and percentages in the rendered tables.
``std`` is the sample standard deviation over seeds (0 with one seed). The gain of a mode over Skip is computed
per seed (same split, same removed labels) and then averaged: ``gain_std`` is the std of the paired difference,
``gain_se`` its standard error, ``gain_low`` / ``gain_high`` the paired bootstrap interval over test items and
``verdict`` ``beats`` / ``worse`` / ``inconclusive`` (undefined without outcomes). Every mode, Skip included,
is also paired with its own consensus given to every annotator (:mod:`.consensus`): ``consensus_mean`` is that
broadcast's Avg, ``over_consensus_*`` the run's gain over it (mean, se, low, high, verdict). Runs trained with
``lam = "auto"`` add the λ each seed chose (``lam_selected``), as a column of the Markdown table and of the CSV.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .paired import PairedGain, SplitOutcome, paired_gain_or_none, split_avg

__all__ = ["aggregate", "markdown_tables", "write_csv"]

#: Above this many annotators the Markdown table leaves out the per-annotator columns (they stay in the CSV).
MAX_ANNOTATOR_COLUMNS = 13
#: A run converged when its best validation epoch is at most this share of its epoch limit.
CONVERGED_SHARE = 0.9


def converged(m: dict[str, Any]) -> bool | None:
    """Whether the run of ``metrics.json`` dict ``m`` converged (:data:`CONVERGED_SHARE`); None when its epoch
    limit is not recorded (runs written before metrics.json had one)."""
    limit, best = m.get("epoch_limit"), m.get("best_epoch")
    return None if limit is None or best is None else best <= CONVERGED_SHARE * limit


def defined(value: float | None) -> bool:
    """A number that is neither ``None`` (JSON's undefined) nor NaN."""
    return value is not None and not math.isnan(value)


def mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and sample std of the defined values (std 0 for one value); ``(nan, nan)`` for none."""
    values = [v for v in values if defined(v)]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _key(m: dict[str, Any]) -> tuple[float, str, str]:
    return float(m["missing_rate"]), m["model"], m["mode"]


def aggregate(runs: Sequence[dict[str, Any]], outcomes: Sequence[SplitOutcome | None] | None = None,
              consensus: Sequence[SplitOutcome | None] | None = None) -> list[dict[str, Any]]:
    """One row per (missing rate, model, mode) in first-seen order (see the module docstring for the fields);
    ``outcomes[i]``: the test outcome of ``runs[i]``, ``consensus[i]`` that of its consensus given to every
    annotator (None where unknown)."""
    outcomes = list(outcomes) if outcomes is not None else [None] * len(runs)
    consensus = list(consensus) if consensus is not None else [None] * len(runs)
    for name, given in (("outcomes", outcomes), ("consensus outcomes", consensus)):
        if len(given) != len(runs):
            raise ValueError(f"aggregate: {len(given)} {name} for {len(runs)} runs")
    outcome_of = {id(m): o for m, o in zip(runs, outcomes)}
    consensus_of = {id(m): o for m, o in zip(runs, consensus)}
    groups: dict[tuple[float, str, str], list[dict[str, Any]]] = {}
    for m in runs:
        groups.setdefault(_key(m), []).append(m)
    skips = {(float(m["missing_rate"]), m["model"], m["seed"]): m for m in runs if m["mode"] == "skip"}
    skip_avg = {key: m["avg_accuracy"] for key, m in skips.items()}
    rows = []
    for (rate, model, mode), members in groups.items():
        members = sorted(members, key=lambda m: m["seed"])
        annotators = [a["id"] for a in members[0]["annotators"]]
        per_annotator = {}
        for k, ann in enumerate(annotators):
            mean, std = mean_std([m["annotators"][k]["accuracy"] for m in members])
            truth, _ = mean_std([m["annotators"][k].get("truth_accuracy") for m in members])
            per_annotator[ann] = {"mean": mean, "std": std,
                                  "test_count": sum(m["annotators"][k]["test_count"] for m in members),
                                  "truth_accuracy": truth}
        gains = [m["avg_accuracy"] - skip_avg[(rate, model, m["seed"])] for m in members
                 if defined(m["avg_accuracy"]) and defined(skip_avg.get((rate, model, m["seed"])))]
        avg, micro, gain = mean_std([m["avg_accuracy"] for m in members]), \
            mean_std([m["micro_accuracy"] for m in members]), mean_std(gains)
        imputed = mean_std([float(m["imputations"]) for m in members])
        imp_acc = mean_std([m["imputation_accuracy"] for m in members])
        baselines = [m.get("imputation_baselines") or {} for m in members]
        criterion = None if mode == "skip" else _criterion(members, skips, rate, model, outcome_of)
        against = paired_gain_or_none([(m["seed"], outcome_of.get(id(m)), consensus_of.get(id(m))) for m in members])
        rows.append({
            "missing_rate": rate, "model": model, "mode": mode, "seeds": [m["seed"] for m in members],
            "avg_mean": avg[0], "avg_std": avg[1], "micro_mean": micro[0], "micro_std": micro[1],
            "gain_mean": gain[0] if mode != "skip" else 0.0, "gain_std": gain[1] if mode != "skip" else 0.0,
            "gain_se": gain[1] / math.sqrt(len(gains)) if mode != "skip" and len(gains) > 1 else math.nan,
            "gain_low": criterion.low if criterion else math.nan,
            "gain_high": criterion.high if criterion else math.nan,
            "verdict": criterion.verdict if criterion else None,
            "consensus_mean": mean_std([split_avg(consensus_of[id(m)]) for m in members])[0] if against else math.nan,
            "over_consensus_mean": against.mean if against else math.nan,
            "over_consensus_se": against.se if against else math.nan,
            "over_consensus_low": against.low if against else math.nan,
            "over_consensus_high": against.high if against else math.nan,
            "over_consensus_verdict": against.verdict if against else None,
            "imputations_mean": imputed[0], "imputation_accuracy_mean": imp_acc[0],
            "imputations_scored_mean": mean_std([b.get("scored") for b in baselines])[0],
            "imputation_majority_mean": mean_std([b.get("majority") for b in baselines])[0],
            "imputation_own_skip_mean": mean_std([b.get("own_skip") for b in baselines])[0],
            "lam_selected": [m["lam_selected"] for m in members if "lam_selected" in m],
            "unconverged": [(m["seed"], m["best_epoch"], m["epoch_limit"]) for m in members if converged(m) is False],
            "convergence_unknown": sum(converged(m) is None for m in members),
            "per_annotator": per_annotator,
        })
    return rows


def _criterion(members: Sequence[dict[str, Any]], skips: dict[tuple[float, str, int], dict[str, Any]], rate: float,
               model: str, outcome_of: dict[int, SplitOutcome | None]) -> PairedGain | None:
    """The paired criterion of a mode's ``members`` against their Skip twins; None unless every seed has both
    outcomes."""
    pairs = []
    for m in members:
        skip = skips.get((rate, model, m["seed"]))
        pairs.append((m["seed"], outcome_of.get(id(m)), outcome_of.get(id(skip)) if skip is not None else None))
    return paired_gain_or_none(pairs)


def percent(mean: float | None, std: float | None = None, signed: bool = False) -> str:
    """A fraction as a table cell in percent with one decimal, ``"mean ± std"`` where ``std`` is defined; ``–``
    for an undefined mean."""
    if not defined(mean):
        return "–"
    text = f"{100 * mean:+.1f}" if signed else f"{100 * mean:.1f}"
    return text if not defined(std) else f"{text} ± {100 * std:.1f}"


def markdown_tables(rows: Sequence[dict[str, Any]]) -> str:
    """One Markdown table per missing rate, like the paper's Tables 2–4 (percentages, mean ± std over seeds)."""
    out = []
    for rate in sorted({r["missing_rate"] for r in rows}):
        part = [r for r in rows if r["missing_rate"] == rate]
        annotators = list(part[0]["per_annotator"])
        wide = len(annotators) <= MAX_ANNOTATOR_COLUMNS
        seeds = sorted({s for r in part for s in r["seeds"]})
        title = "natural missingness" if rate == 0 else f"extra missing rate {rate:g} of the training labels removed"
        out.append(f"### {title}\n")
        seed_list = ", ".join(map(str, seeds))
        out.append(f"Per-annotator test accuracy (%), mean ± std over {len(seeds)} seed(s) ({seed_list}). Δ Skip:"
                   " paired gain in Avg over Skip, mean ± standard error over seeds; 95 % CI: paired bootstrap"
                   " interval over test items; verdict: *beats* / *worse* when the interval lies above / below 0."
                   " Imputations (SimLabel + Confidence): their number, and where hidden labels are known, the"
                   " accuracy of the imputed labels, of the item's majority among the other annotators and of the"
                   " annotator's own Skip model on the same entries." + ("" if wide else
                   f" {len(annotators)} annotators: per-annotator columns are in results.csv."))
        out.append("")
        chose = any(r["lam_selected"] for r in part)
        header = ["Model", "Mode"] + (annotators if wide else []) + ["Avg", "Δ Skip", "95 % CI", "verdict", "micro",
                                                                      "imputed", "imp. acc", "majority", "own Skip"] \
            + (["λ chosen"] if chose else [])
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
        for r in part:
            cells = [r["model"], r["mode"]]
            if wide:
                cells += [percent(r["per_annotator"][a]["mean"], r["per_annotator"][a]["std"]) for a in annotators]
            skip = r["mode"] == "skip"
            confidence = r["mode"] == "simlabel+confidence"
            cells += [
                f"**{percent(r['avg_mean'], r['avg_std'])}**",
                "–" if skip else percent(r["gain_mean"], r["gain_se"], signed=True),
                "–" if skip else interval_cell(r["gain_low"], r["gain_high"]),
                "–" if skip else verdict_cell(r["verdict"]),
                percent(r["micro_mean"], r["micro_std"]),
                f"{r['imputations_mean']:.0f}" if confidence else "–",
                percent(r["imputation_accuracy_mean"]),
                percent(r["imputation_majority_mean"]) if confidence else "–",
                percent(r["imputation_own_skip_mean"]) if confidence else "–",
            ] + ([_lams(r)] if chose else [])
            out.append("| " + " | ".join(cells) + " |")
        truth = _truth_row(part[0])
        if truth is not None:
            cells = [TRUTH_ROW[0], TRUTH_ROW[1]] + ([percent(truth[a]) for a in annotators] if wide else [])
            out.append("| " + " | ".join(cells + [f"**{percent(truth['Avg'])}**"] + ["–"] * (len(header) - len(cells)
                                                                                          - 1)) + " |")
            out.append("")
            out.append(f"{TRUTH_ROW[0]} {TRUTH_ROW[1]}: how often each annotator's own labels equal the true labels "
                       "(all its labels, of items whose truth is known), beside what its model learned.")
        out += _consensus_table(part)
        out += _convergence_lines(part)
        out.append("")
    return "\n".join(out)


def interval_cell(low: float, high: float) -> str:
    """``[low, high]`` in signed percent, ``–`` where undefined."""
    return "–" if not defined(low) else f"[{percent(low, signed=True)}, {percent(high, signed=True)}]"


def verdict_cell(verdict: str | None) -> str:
    """A verdict as a table cell: *beats* and *worse* in bold, ``–`` for none."""
    return "–" if verdict is None else verdict if verdict == "inconclusive" else f"**{verdict}**"


def _consensus_table(part: Sequence[dict[str, Any]]) -> list[str]:
    """The table under a rate's table: each row's Avg against its consensus given to every annotator; nothing
    when no run has predictions."""
    if not any(defined(r["consensus_mean"]) for r in part):
        return []
    reading = ("Own predictions against their consensus: each run's consensus (the most frequent of its predicted"
               " labels on an item) given as every annotator's label, scored like the run. Δ consensus: the run's"
               " paired gain over it. Where it is not above 0, the annotator models learnt nothing the interval can"
               " see beyond one label per item.")
    lines = ["", reading, "", "| Model | Mode | Avg | consensus | Δ consensus | 95 % CI | verdict |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in part:
        gain = percent(r["over_consensus_mean"], r["over_consensus_se"], signed=True)
        lines.append(f"| {r['model']} | {r['mode']} | {percent(r['avg_mean'], r['avg_std'])} | "
                     f"{percent(r['consensus_mean'])} | {gain} | "
                     f"{interval_cell(r['over_consensus_low'], r['over_consensus_high'])} | "
                     f"{verdict_cell(r['over_consensus_verdict'])} |")
    return lines


def _convergence_lines(part: Sequence[dict[str, Any]]) -> list[str]:
    """A line under the table: every run converged, or which did not (best epoch of epoch limit)."""
    late = [f"{r['model']} {r['mode']} seed {seed} (best epoch {best} of {limit})" for r in part
            for seed, best, limit in r["unconverged"]]
    unknown = sum(r["convergence_unknown"] for r in part)
    if late:
        line = (f"**Not converged** (best validation epoch above {CONVERGED_SHARE:.0%} of the epoch limit): "
                + "; ".join(late) + ".")
    elif unknown:
        line = f"Convergence unknown for {unknown} run(s): their metrics.json records no epoch limit."
    else:
        line = f"Every run converged: its best validation epoch is at most {CONVERGED_SHARE:.0%} of its epoch limit."
    return ["", line]


#: The (Model, Mode) cells of the row that compares each annotator's own labels with the true labels.
TRUTH_ROW = ("(labels)", "vs truth")


def _truth_row(row: dict[str, Any]) -> dict[str, float] | None:
    """Each annotator's agreement with the truth and their mean (``Avg``), or None when no run knows the truth."""
    values = {a: v.get("truth_accuracy") for a, v in row["per_annotator"].items()}
    if not any(defined(v) for v in values.values()):
        return None
    return {**values, "Avg": mean_std(list(values.values()))[0]}


def _lams(row: dict[str, Any]) -> str:
    """The λ each seed chose (``lam = "auto"``), in seed order; ``–`` for fixed-λ runs."""
    return ", ".join(f"{lam:g}" for lam in row["lam_selected"]) or "–"


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """The aggregated table as CSV, accuracies as fractions; one ``acc_<annotator>`` column per annotator; with
    ``lam = "auto"`` runs, a ``lam_selected`` column (the λ per seed, space-separated)."""
    annotators: list[str] = []
    for r in rows:
        annotators += [a for a in r["per_annotator"] if a not in annotators]
    fields = ["missing_rate", "model", "mode", "seeds", "avg_mean", "avg_std", "gain_mean", "gain_std", "gain_se",
              "gain_low", "gain_high", "verdict", "micro_mean", "micro_std", "imputations_mean",
              "imputation_accuracy_mean", "imputations_scored_mean", "imputation_majority_mean",
              "imputation_own_skip_mean", "consensus_mean", "over_consensus_mean", "over_consensus_se",
              "over_consensus_low", "over_consensus_high", "over_consensus_verdict"]
    chose = any(r["lam_selected"] for r in rows)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields + (["lam_selected"] if chose else []) + [f"acc_{a}" for a in annotators])
        for r in rows:
            values = [r[f] for f in fields]
            values[3] = " ".join(map(str, r["seeds"]))
            if chose:
                values.append(" ".join(f"{lam:g}" for lam in r["lam_selected"]))
            values += [r["per_annotator"].get(a, {}).get("mean", math.nan) for a in annotators]
            writer.writerow(["" if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values])
