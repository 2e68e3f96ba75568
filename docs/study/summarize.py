"""The tables of docs/results.md, from the `simlabel compare` outputs that docs/study/*.sh write.

    python docs/study/summarize.py ablation runs/study/ablation   # validation Avg per lever (the ablation)
    python docs/study/summarize.py main runs/study/music ...      # test Avg per model and missing rate
    python docs/study/summarize.py by-annotator runs/study/music  # Skip vs SimLabel + Conf. by annotator activity
    python docs/study/summarize.py noise runs/study/music          # sampling noise of one seed's test Avg
    python docs/study/summarize.py auto runs/study/music 3:runs/study/music 1:runs/study/music-lam1
                                                                  # lam = "auto" from finished runs (see auto_runs)

Accuracies are percentages, mean ± sample std over seeds. Gains over Skip are paired per seed (same split, same
removed labels). Two verdicts per mode: "paired" — the mean gain exceeds the std of the per-seed gains; "unpaired"
— it exceeds the seed std of both modes' Avg (which also holds the split-to-split spread of the test items).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from simlabel_ext.report.tables import aggregate, defined, mean_std, percent
from simlabel_ext.train.lam_selection import choose_lam

MODES = ("skip", "simlabel", "simlabel+confidence")


def _runs(directory: Path) -> list[dict]:
    path = directory / "results.json"
    if not path.is_file():
        raise SystemExit(f"summarize: {path} does not exist (run the study script first)")
    return json.loads(path.read_text(encoding="utf-8"))["runs"]


def ablation(directories: list[Path]) -> str:
    """Best-epoch validation Avg per (model, rate): one row per variant directory and mode (SimLabel + Confidence
    rows carry the variant's name; other modes, e.g. the Skip baseline, get it in brackets)."""
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


def main_table(title: str, runs: list[dict], note: dict[tuple[str, float], str] | None = None) -> str:
    """Test Avg per (model, missing rate): Skip, SimLabel and SimLabel + Confidence with paired gains; ``note``
    adds a last column per (model, rate)."""
    rows = {(r["model"], r["missing_rate"], r["mode"]): r for r in aggregate(runs)}
    keys = sorted({(model, rate) for model, rate, _ in rows})
    extra = ("", "") if note is None else (" | λ chosen", "---|")
    lines = [f"**{title}** — test Avg (%), mean ± std over seeds; Δ = paired gain over Skip",
             "",
             "| model | extra missing | Skip | SimLabel | Δ | SimLabel + Conf. | Δ | imputed | imp. acc "
             "| beats Skip: paired | unpaired" + extra[0] + " |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|" + extra[1]]
    for model, rate in keys:
        skip, simlabel, conf = (rows.get((model, rate, mode)) for mode in MODES)
        if skip is None:
            continue
        cells = [model, f"{rate:g}", percent(skip["avg_mean"], skip["avg_std"])]
        paired, unpaired = [], []
        for name, row in (("SimLabel", simlabel), ("+Conf", conf)):
            if row is None:
                cells += ["–", "–"]
                continue
            cells += [percent(row["avg_mean"], row["avg_std"]), percent(row["gain_mean"], row["gain_std"], signed=True)]
            paired.append(f"{name} {'yes' if row['gain_mean'] > row['gain_std'] else 'NO'}")
            unpaired.append(f"{name} {'yes' if row['gain_mean'] > max(skip['avg_std'], row['avg_std']) else 'NO'}")
        cells += [f"{conf['imputations_mean']:.0f}" if conf else "–",
                  percent(conf["imputation_accuracy_mean"] if conf else None), ", ".join(paired), ", ".join(unpaired)]
        if note is not None:
            cells.append(note.get((model, rate), "–"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def auto_runs(skip_dir: Path, candidates: dict[float, Path]) -> tuple[list[dict], dict[tuple[str, float], str]]:
    """``lam = "auto"`` evaluated from finished runs: per (model, mode, rate, seed), the candidate λ whose run has
    the best validation Avg (the library's own rule, ``choose_lam``; λ = 0 is the Skip run of the same seed, whose
    model is the one a λ = 0 run trains). Returns Skip's runs plus the chosen runs, and per (model, rate) how often
    each λ was chosen (SimLabel and SimLabel + Confidence together). Models without runs for every λ are left out."""
    skip = {(m["model"], m["missing_rate"], m["seed"]): m for m in _runs(skip_dir) if m["mode"] == "skip"}
    by_lam = {lam: {(m["model"], m["mode"], m["missing_rate"], m["seed"]): m for m in _runs(d) if m["mode"] != "skip"}
              for lam, d in candidates.items()}
    keys = set.intersection(*(set(runs) for runs in by_lam.values()))
    models = {model for model, _, _, _ in keys}
    chosen_runs, counts = [m for key, m in skip.items() if key[0] in models], {}
    for model, mode, rate, seed in sorted(keys):
        base = skip.get((model, rate, seed))
        if base is None:
            continue
        scores = {0.0: base["best_val_avg_accuracy"]}
        scores.update({lam: runs[(model, mode, rate, seed)]["best_val_avg_accuracy"] for lam, runs in by_lam.items()})
        lam = choose_lam(scores)
        run = dict(base, mode=mode, imputations=0) if lam == 0.0 else by_lam[lam][(model, mode, rate, seed)]
        chosen_runs.append(run)
        tally = counts.setdefault((model, rate), {})
        tally[lam] = tally.get(lam, 0) + 1
    note = {key: ", ".join(f"{lam:g}: {n}×" for lam, n in sorted(tally.items())) for key, tally in counts.items()}
    return chosen_runs, note


def sampling_se(run: dict) -> float:
    """Standard error of one run's test Avg from the test sample alone: each annotator's accuracy is a binomial
    proportion over its n_a test labels, with the run's micro accuracy p as the common rate (per-annotator rates
    are 0 or 1 for most annotators with one or two labels). SE = sqrt(Σ_a p(1 - p) / n_a) / A, over the A
    annotators with test labels."""
    counts = [a["test_count"] for a in run["annotators"] if a["test_count"] > 0]
    p = run["micro_accuracy"]
    return math.sqrt(sum(p * (1 - p) / n for n in counts)) / len(counts)


def noise(directory: Path, mode: str = "skip") -> str:
    """Per model and missing rate: the mean over seeds of :func:`sampling_se` for ``mode``'s runs, beside the
    observed seed std of the Avg and the annotators / test labels per seed."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for m in _runs(directory):
        if m["mode"] == mode:
            groups.setdefault((m["model"], float(m["missing_rate"])), []).append(m)
    lines = [f"**{directory.name}**, {mode}: sampling noise of one seed's test Avg", "",
             "| model | extra missing | annotators with test labels | test labels | SE of Avg from the test sample "
             "| seed std of Avg |", "|---|---:|---:|---:|---:|---:|"]
    for (model, rate), runs in sorted(groups.items()):
        counts = [sum(a["test_count"] > 0 for a in m["annotators"]) for m in runs]
        labels = [sum(a["test_count"] for a in m["annotators"]) for m in runs]
        se = sum(sampling_se(m) for m in runs) / len(runs)
        std = mean_std([m["avg_accuracy"] for m in runs])[1]
        lines.append(f"| {model} | {rate:g} | {sum(counts) / len(runs):.0f} | {sum(labels) / len(runs):.0f} "
                     f"| {percent(se)} | {percent(std)} |")
    return "\n".join(lines)


def by_annotator(directory: Path, rate: float = 0.0, bounds: tuple[int, ...] = (3, 10)) -> str:
    """Where the gain comes from: annotators bucketed by their test labels per seed (a proxy for how many labels
    they gave overall), mean per-annotator test accuracy of Skip and SimLabel + Confidence per model at ``rate``."""
    groups: dict[tuple[str, str], dict[str, list[tuple[float, int]]]] = {}
    for m in _runs(directory):
        if float(m["missing_rate"]) == rate:
            per = groups.setdefault((m["model"], m["mode"]), {})
            for a in m["annotators"]:
                per.setdefault(a["id"], []).append((a["accuracy"], a["test_count"]))
    edges = (0, *bounds, None)
    names = [f"{lo}–{hi - 1}" if hi else f"≥ {lo}" for lo, hi in zip(edges[:-1], edges[1:])]
    lines = [f"**{directory.name}**, extra missing {rate:g}: mean per-annotator test accuracy (%) by the annotator's "
             "test labels per seed; (n) = annotators in the bucket", "",
             "| model | " + " | ".join(f"{n} labels: Skip → +Conf" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    for model in sorted({model for model, _ in groups}):
        skip, conf = groups.get((model, "skip"), {}), groups.get((model, "simlabel+confidence"), {})
        cells = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            members = [a for a, v in skip.items() if lo <= sum(n for _, n in v) / len(v) < (hi or 10**9)]
            pairs = [(mean_std([acc for acc, _ in skip[a]])[0], mean_std([acc for acc, _ in conf[a]])[0])
                     for a in members if a in conf]
            pairs = [(x, y) for x, y in pairs if defined(x) and defined(y)]
            if not pairs:
                cells.append("–")
                continue
            before, after = (sum(p[k] for p in pairs) / len(pairs) for k in (0, 1))
            cells.append(f"{percent(before)} → {percent(after)} ({len(pairs)})")
        lines.append("| " + " | ".join([model] + cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=("ablation", "main", "by-annotator", "noise", "auto"))
    parser.add_argument("dirs", nargs="+", help="compare output directories (ablation: their parent; auto: the "
                                                "Skip runs' directory, then LAMBDA:DIR per candidate)")
    args = parser.parse_args(argv)
    if args.table == "auto":
        candidates = {float(lam): Path(d) for lam, _, d in (item.partition(":") for item in args.dirs[1:])}
        runs, note = auto_runs(Path(args.dirs[0]), candidates)
        print(main_table(f"{Path(args.dirs[0]).name}, lam auto", runs, note))
        return 0
    args.dirs = [Path(d) for d in args.dirs]
    if args.table == "ablation":
        parent = args.dirs[0]
        order = ["base", "lr-1e-4"]
        found = sorted(p for p in parent.iterdir() if (p / "results.json").is_file())
        found.sort(key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name))
        print(ablation(found))
    elif args.table == "noise":
        print("\n\n".join(noise(d) for d in args.dirs))
    elif args.table == "main":
        print("\n\n".join(main_table(d.name, _runs(d)) for d in args.dirs))
    else:
        print("\n\n".join(by_annotator(d) for d in args.dirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
