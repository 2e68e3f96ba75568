"""The tables of docs/results.md, from the `simlabel compare` outputs that docs/study/*.sh write.

    python docs/study/summarize.py budget runs/study/budget            # validation Avg and best epoch per lr
    python docs/study/summarize.py ablation runs/study/ablation        # round 1: validation Avg per lever
    python docs/study/summarize.py sharing runs/study/sharing          # this round: candidates on validation
    python docs/study/summarize.py main runs/study/music ...           # test Avg, gain, interval, verdict
    python docs/study/summarize.py aim runs/study/music ...            # best backbone with SimLabel vs with Skip
    python docs/study/summarize.py imputation runs/study/music ...     # imputed labels against two baselines
    python docs/study/summarize.py buckets runs/study/music ...        # gains by the annotator's training labels
    python docs/study/summarize.py dense runs/study/music runs/study/dense-music  # the dense lever on test
    python docs/study/summarize.py groups runs/study/grouped-t1 ...    # a synthetic grid's kappa by group

Accuracies are percentages. Gains over Skip are paired per seed (same split, same removed labels): mean ± standard
error over seeds, with the 95 % paired bootstrap interval over items of simlabel_ext.report.paired (test items
for test numbers, validation items for the choices made on validation). A verdict is *beats* / *worse* when the
interval lies above / below 0, else *inconclusive*.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from simlabel_ext.report.choice import best_by_validation, choose
from simlabel_ext.report.paired import paired_gain, split_outcome
from simlabel_ext.report.tables import converged, defined, mean_std, percent
from simlabel_ext.rundir import RunDirectory

MODES = ("skip", "simlabel", "simlabel+confidence")
TEST, VALIDATION = 2, 1


def _results(directory: Path) -> dict:
    path = directory / "results.json"
    if not path.is_file():
        raise SystemExit(f"summarize: {path} does not exist (run the study script first)")
    return json.loads(path.read_text(encoding="utf-8"))


def _runs(directory: Path) -> list[dict]:
    return _results(directory)["runs"]


def _outcome(run: dict, split: int = TEST):
    return split_outcome(RunDirectory(run["run_dir"]).predictions(), split)


def _interval(pairs: Sequence[tuple[int, dict, dict]], split: int) -> str:
    """``+g ± se [low, high] verdict`` of the runs ``(seed, candidate, baseline)`` on ``split``."""
    return _format(paired_gain([(seed, _outcome(a, split), _outcome(b, split)) for seed, a, b in pairs]))


def _format(g) -> str:
    verdict = g.verdict if g.verdict == "inconclusive" else f"**{g.verdict}**"
    return (f"{percent(g.mean, g.se if defined(g.se) else None, signed=True)} "
            f"[{percent(g.low, signed=True)}, {percent(g.high, signed=True)}] {verdict}")


def _index(runs: Sequence[dict]) -> dict[tuple[str, str, float, int], dict]:
    return {(m["model"], m["mode"], float(m["missing_rate"]), m["seed"]): m for m in runs}


# ------------------------------------------------------------------------------------------------ budget
def budget(parent: Path) -> str:
    """One row per (data set, model, mode) of the lr probe: validation Avg and best epoch / epoch limit per lr
    (sub-directories ``<data set>-lr<lr>``), and per lr the mean validation Avg over the cells every lr has and
    how many of them converged (best epoch <= 90 % of the limit)."""
    cells: dict[tuple[str, str, str], dict[str, dict]] = {}
    lrs: list[str] = []
    for directory in sorted(p for p in parent.iterdir() if (p / "results.json").is_file()):
        name, _, lr = directory.name.rpartition("-lr")
        lrs += [lr] if lr not in lrs else []
        for m in _runs(directory):
            cells.setdefault((name, m["model"], m["mode"]), {})[lr] = m
    lrs.sort(key=float, reverse=True)
    header = ["data set", "model", "mode"] + [f"lr {lr}" for lr in lrs]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|" + "---:|" * len(lrs)]
    for (name, model, mode), by_lr in sorted(cells.items()):
        row = [name, model, mode]
        for lr in lrs:
            m = by_lr.get(lr)
            row.append("–" if m is None else f"{percent(m['best_val_avg_accuracy'])} (epoch {m['best_epoch']} of "
                                             f"{m['epoch_limit']})")
        lines.append("| " + " | ".join(row) + " |")
    common = [c for c, by_lr in cells.items() if all(lr in by_lr for lr in lrs)]
    summary = []
    for lr in lrs:
        runs = [cells[c][lr] for c in common]
        mean = sum(m["best_val_avg_accuracy"] for m in runs) / len(runs)
        done = sum(bool(converged(m)) for m in runs)
        summary.append(f"lr {lr}: mean validation Avg {percent(mean)}, converged {done} of {len(runs)}")
    return "\n".join(lines) + f"\n\nOver the {len(common)} cells every lr has: " + "; ".join(summary) + "."


# ------------------------------------------------------------------------------------------------ ablations
def ablation(directories: list[Path]) -> str:
    """Round 1: best-epoch validation Avg per (model, rate), one row per variant directory and mode (SimLabel +
    Confidence rows carry the variant's name; other modes, e.g. the Skip baseline, get it in brackets)."""
    rows, columns = [], None
    for directory in directories:
        runs = _runs(directory)
        for mode in ("simlabel+confidence", "skip", "simlabel"):
            cells: dict[tuple[str, float], list[float]] = {}
            for m in runs:
                if m["mode"] == mode:
                    cells.setdefault((m["model"], float(m["missing_rate"])), []).append(m["best_val_avg_accuracy"])
            if not cells:
                continue
            columns = columns or sorted(cells)
            stats = [mean_std(cells.get(c, [])) for c in columns]
            label = directory.name if mode == "simlabel+confidence" else f"{directory.name} ({mode})"
            rows.append((label, stats, sum(mean for mean, _ in stats) / len(stats)))
    header = ["variant"] + [f"{model} mr {rate:g}" for model, rate in columns] + ["mean"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for label, stats, overall in rows:
        lines.append("| " + " | ".join([label] + [percent(m, s) for m, s in stats] + [percent(overall)]) + " |")
    return "\n".join(lines)


def sharing(parent: Path) -> str:
    """This round's candidates on validation, from the run directories ``parent/<data set>/<model>/s<seed>/<variant>``
    that docs/study/sharing.py writes: each variant against the ``skip`` run of the same seed, paired gain in
    validation Avg with its interval over validation items."""
    lines = []
    for data_dir in sorted(p for p in parent.iterdir() if p.is_dir()):
        models = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
        runs: dict[tuple[str, str], dict[int, RunDirectory]] = {}
        for model in models:
            for d in sorted((data_dir / model).glob("s*/*")):
                if RunDirectory(d).finished:
                    runs.setdefault((model, d.name), {})[int(d.parent.name[1:])] = RunDirectory(d)
        variants = sorted({v for _, v in runs if v != "skip"}, key=lambda v: (v != "base", v))
        lines += [f"**{data_dir.name}**: validation Avg gain over Skip (points), mean ± SE over seeds "
                  "[95 % paired bootstrap interval over validation items]", "",
                  "| variant | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for variant in variants:
            cells = []
            for model in models:
                mine, skip = runs.get((model, variant), {}), runs.get((model, "skip"), {})
                seeds = sorted(set(mine) & set(skip))
                if not seeds:
                    cells.append("–")
                    continue
                g = paired_gain([(s, split_outcome(mine[s].predictions(), VALIDATION),
                                  split_outcome(skip[s].predictions(), VALIDATION)) for s in seeds])
                cells.append(_format(g))
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip()


# ------------------------------------------------------------------------------------------------ test tables
def main_table(directory: Path) -> str:
    """Per missing rate, per model: Skip's test Avg, then each mode's Avg, paired gain ± SE, interval and verdict
    (the rows ``simlabel compare`` computed), and whether every run converged."""
    results = _results(directory)
    table = results["table"]
    lines = [f"**{directory.name}** ({len({s for r in table for s in r['seeds']})} seeds): test Avg (%), mean ± "
             "std over seeds; Δ: paired gain over Skip, mean ± SE [95 % interval] verdict", "",
             "| extra missing | model | Skip | SimLabel | Δ SimLabel | SimLabel + Conf. | Δ SimLabel + Conf. |",
             "|---:|---|---:|---:|---|---:|---|"]
    rows = {(r["missing_rate"], r["model"], r["mode"]): r for r in table}
    for rate, model in sorted({(r, m) for r, m, _ in rows}):
        skip = rows.get((rate, model, "skip"))
        if skip is None:
            continue
        cells = [f"{rate:g}", model, percent(skip["avg_mean"], skip["avg_std"])]
        for mode in MODES[1:]:
            r = rows.get((rate, model, mode))
            if r is None:
                cells += ["–", "–"]
                continue
            verdict = {None: "–", "inconclusive": "inconclusive"}.get(r["verdict"], f"**{r['verdict']}**")
            cells += [percent(r["avg_mean"], r["avg_std"]),
                      f"{percent(r['gain_mean'], r['gain_se'], signed=True)} [{percent(r['gain_low'], signed=True)}, "
                      f"{percent(r['gain_high'], signed=True)}] {verdict}"]
        lines.append("| " + " | ".join(cells) + " |")
    late = [f"{r['model']} {r['mode']} mr {r['missing_rate']:g} seed {s} (epoch {b} of {n})" for r in table
            for s, b, n in r.get("unconverged", [])]
    lines += ["", "Not converged: " + "; ".join(late) + "." if late else
              "Every run converged: its best validation epoch is at most 90 % of its epoch limit."]
    return "\n".join(lines)


def aim(directory: Path) -> str:
    """Per missing rate: the backbone with the best mean validation Avg under Skip, and under SimLabel or
    SimLabel + Confidence (the backbone and mode a user would pick, chosen on validation), and the second's
    paired gain over the first on test items (the runs of each seed paired)."""
    runs = _runs(directory)
    index = _index(runs)
    lines = [f"**{directory.name}**: the best backbone by validation Avg, under Skip and under SimLabel (either "
             "mode); test Avg (%) and the paired gain on test items", "",
             "| extra missing | best with Skip | its test Avg | best with SimLabel | its test Avg | gain [95 % interval] |",
             "|---:|---|---:|---|---:|---|"]
    for rate in sorted({float(m["missing_rate"]) for m in runs}):
        lines.append(_aim_row(index, rate, ("simlabel", "simlabel+confidence")))
    return "\n".join(lines)


def _best(index: dict, rate: float, modes: Sequence[str]) -> tuple[str, str, list[int]]:
    """The (model, mode) among ``modes`` with the best mean validation Avg at ``rate`` (the library's
    best_by_validation), and its seeds."""
    model, mode = best_by_validation(m for (_, md, r, _), m in index.items() if r == rate and md in modes)
    return model, mode, sorted(s for mo, md, r, s in index if (mo, md, r) == (model, mode, rate))


def _aim_row(index: dict, rate: float, modes: Sequence[str]) -> str:
    """One row of the aim: the best backbone under Skip against the best among ``modes`` (both by validation),
    their test Avg and the paired test gain over the seeds both have (the library's choose)."""
    runs = [m for (_, _, r, _), m in index.items() if r == rate]
    (c,) = choose(runs, [_outcome(m) for m in runs], simlabel_modes=modes)
    return (f"| {rate:g} | {c.skip.model} | {percent(c.skip.test_avg, c.skip.test_std)} | {c.simlabel.model} "
            f"{c.simlabel.mode} | {percent(c.simlabel.test_avg, c.simlabel.test_std)} | {_format(c.gain)} |")


def imputation(directory: Path) -> str:
    """Per (model, rate) of SimLabel + Confidence: imputed labels, and where hidden labels are known, the accuracy
    of the imputed labels, of the item's majority among the other annotators and of the annotator's own Skip
    model on the same entries; beside the gain of + Confidence over SimLabel alone (paired, test items)."""
    runs = _runs(directory)
    index = _index(runs)
    rows = {(r["missing_rate"], r["model"], r["mode"]): r for r in _results(directory)["table"]}
    lines = [f"**{directory.name}**: confidence cycling", "",
             "| extra missing | model | imputed | scored | imputed acc. | majority of others | own Skip model "
             "| + Conf. over SimLabel [95 % interval] |", "|---:|---|---:|---:|---:|---:|---:|---|"]
    for rate, model, mode in sorted(rows):
        if mode != "simlabel+confidence":
            continue
        r = rows[(rate, model, mode)]
        seeds = [s for s in r["seeds"] if (model, "simlabel", rate, s) in index]
        pairs = [(s, index[(model, mode, rate, s)], index[(model, "simlabel", rate, s)]) for s in seeds]
        scored = r.get("imputations_scored_mean")
        lines.append(f"| {rate:g} | {model} | {r['imputations_mean']:.0f} | "
                     f"{f'{scored:.0f}' if defined(scored) else '–'} | {percent(r['imputation_accuracy_mean'])} | "
                     f"{percent(r['imputation_majority_mean'])} | {percent(r['imputation_own_skip_mean'])} | "
                     f"{_interval(pairs, TEST) if pairs else '–'} |")
    return "\n".join(lines)


def buckets(directory: Path, rate: float = 0.0, edges: tuple[int, ...] = (0, 10, 50)) -> str:
    """Where the gain comes from: annotators bucketed by their training labels (in each seed's split), mean
    per-annotator test accuracy of each mode per model at ``rate`` (over annotators and seeds)."""
    runs = [m for m in _runs(directory) if float(m["missing_rate"]) == rate]
    names = [f"{lo}–{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:])] + [f"≥ {edges[-1]}"]
    acc: dict[tuple[str, str, int], list[float]] = {}
    members: dict[tuple[str, int], set[tuple[int, str]]] = {}
    for m in runs:
        arrays = RunDirectory(m["run_dir"]).predictions()
        counts = (arrays["labels"][arrays["split"] == 0] >= 0).sum(0)
        for a, row in enumerate(m["annotators"]):
            if row["accuracy"] is None:
                continue
            bucket = int(np.searchsorted(edges, counts[a], side="right")) - 1
            acc.setdefault((m["model"], m["mode"], bucket), []).append(row["accuracy"])
            members.setdefault((m["model"], bucket), set()).add((m["seed"], row["id"]))
    models = sorted({m["model"] for m in runs})
    lines = [f"**{directory.name}**, extra missing {rate:g}: mean per-annotator test accuracy (%) by the annotator's "
             "training labels, Skip → SimLabel → SimLabel + Conf.; (n) = (annotator, seed) pairs with test labels", "",
             "| model | " + " | ".join(f"{n} training labels" for n in names) + " |", "|---|" + "---:|" * len(names)]
    for model in models:
        cells = []
        for b in range(len(names)):
            values = [mean_std(acc.get((model, mode, b), []))[0] for mode in MODES]
            n = len(members.get((model, b), ()))
            cells.append("–" if not n else " → ".join(percent(v) for v in values) + f" ({n})")
        lines.append("| " + " | ".join([model] + cells) + " |")
    return "\n".join(lines)


def lever_runs(parent: Path) -> list[dict]:
    """The finished runs of docs/study/dense.sh under ``parent/runs/<model>/mr<rate>/s<seed>``, as rows like those
    of results.json (metrics plus ``run_dir``), with the mode ``dense``."""
    rows = []
    for d in sorted(parent.glob("runs/*/mr*/s*")):
        if RunDirectory(d).finished:
            m = json.loads((d / "metrics.json").read_text(encoding="utf-8"))
            rows.append({**m, "mode": "dense", "run_dir": str(d)})
    return rows


def dense(grid: Path, lever: Path) -> str:
    """The dense-similarity lever on test, against the grid ``grid`` (same splits and removed labels): per (rate,
    model) its test Avg and its paired gains over the model's Skip and SimLabel runs; per rate, the aim with the
    lever in the choice (the best backbone by validation among SimLabel, + Confidence and the lever, against the
    best under Skip)."""
    runs, extra = _runs(grid), lever_runs(lever)
    index = _index(runs + extra)
    lines = [f"**{grid.name}**, SimLabel with the dense similarity: test Avg (%), mean ± std over seeds; paired "
             "gains, mean ± SE [95 % interval] verdict", "",
             "| extra missing | model | dense | over Skip | over SimLabel |", "|---:|---|---:|---|---|"]
    for rate, model in sorted({(float(m["missing_rate"]), m["model"]) for m in extra}):
        seeds = sorted(s for mo, md, r, s in index if (mo, md, r) == (model, "dense", rate))
        pairs = {base: [(s, index[(model, "dense", rate, s)], index[(model, base, rate, s)]) for s in seeds]
                 for base in ("skip", "simlabel")}
        avg = percent(*mean_std([index[(model, "dense", rate, s)]["avg_accuracy"] for s in seeds]))
        lines.append(f"| {rate:g} | {model} | {avg} | {_interval(pairs['skip'], TEST)} | "
                     f"{_interval(pairs['simlabel'], TEST)} |")
    lines += ["", f"**{grid.name}**, the aim with the lever in the choice: the best backbone by validation Avg under "
              "Skip and under SimLabel, SimLabel + Confidence or the lever; test Avg (%) and the paired gain", "",
              "| extra missing | best with Skip | its test Avg | best with SimLabel or the lever | its test Avg "
              "| gain [95 % interval] |", "|---:|---|---:|---|---:|---|"]
    for rate in sorted({float(m["missing_rate"]) for m in extra}):
        lines.append(_aim_row(index, rate, ("simlabel", "simlabel+confidence", "dense")))
    return "\n".join(lines)


def groups(directory: Path, heatmap: tuple[str, str] = ("heads", "simlabel+confidence")) -> str:
    """The kappa of a synthetic grid (``dataset_options`` with ``groups`` G: annotator ``j`` is in group
    ``j mod G``) inside and between its groups, from the seed-0 run at the natural rate of ``heatmap`` (model,
    mode), the heat map's: the share of the positive entries of the observed similarity S, and of its mass, that
    lie inside a group (against the share of pairs that do, the chance level), and the mean defined kappa of the
    pairs inside and between groups, before training (observed labels) and after (observed + imputed)."""
    results = _results(directory)
    options = results["dataset_options"]
    num_groups = int(options["groups"])
    rows = [r for r in results["runs"] if (r["model"], r["mode"]) == heatmap
            and int(r["seed"]) == 0 and float(r["missing_rate"]) == 0.0]
    if not rows:
        raise SystemExit(f"summarize: {directory} has no {' '.join(heatmap)} run of seed 0 at missing rate 0")
    arrays = RunDirectory(rows[0]["run_dir"]).similarity()
    group = np.arange(len(arrays["annotators"])) % num_groups
    off = ~np.eye(len(group), dtype=bool)
    inside, between = (group[:, None] == group[None, :]) & off, group[:, None] != group[None, :]
    positive = arrays["similarity_initial"] > 0

    def share(mask: np.ndarray, of: np.ndarray) -> str:
        return percent(float(of[mask].sum() / of[off].sum()))

    def kappa(name: str, mask: np.ndarray) -> str:
        return f"{np.nanmean(arrays[name][mask]):+.2f}"

    title = (f"**{directory.name}** (tendency {options.get('tendency', '–')}, {num_groups} groups): observed "
             f"similarity and kappa inside and between groups, seed 0; after training: {' '.join(heatmap)}")
    header = ("| pairs inside a group | positive S inside | S mass inside | kappa before: inside | between "
              "| kappa after: inside | between |")
    row = (f"| {share(inside, off.astype(float))} | {share(inside, positive.astype(float))} "
           f"| {share(inside, arrays['similarity_initial'])} | {kappa('kappa_initial', inside)} "
           f"| {kappa('kappa_initial', between)} | {kappa('kappa_final', inside)} | {kappa('kappa_final', between)} |")
    return f"{title}\n\n{header}\n|---:|---:|---:|---:|---:|---:|---:|\n{row}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tables = ("budget", "ablation", "sharing", "main", "aim", "imputation", "buckets", "dense", "groups")
    parser.add_argument("table", choices=tables)
    parser.add_argument("dirs", nargs="+", type=Path,
                        help="compare output directories (budget, ablation, sharing: their parent; dense: the "
                             "grid's and the lever's)")
    args = parser.parse_args(argv)
    if args.table == "ablation":
        parent = args.dirs[0]
        order = ["base", "lr-1e-4"]
        found = sorted(p for p in parent.iterdir() if (p / "results.json").is_file())
        found.sort(key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name))
        print(ablation(found))
        return 0
    single = {"budget": budget, "sharing": sharing}
    each = {"main": main_table, "aim": aim, "imputation": imputation, "buckets": buckets, "groups": groups}
    if args.table == "dense":
        if len(args.dirs) != 2:
            parser.error("dense takes two directories: the grid's compare output and the lever's (dense.sh)")
        print(dense(*args.dirs))
    elif args.table in single:
        print(single[args.table](args.dirs[0]))
    else:
        print("\n\n".join(each[args.table](d) for d in args.dirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
