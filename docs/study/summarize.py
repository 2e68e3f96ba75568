"""The tables of docs/results.md, from the `simlabel compare` outputs that docs/study/*.sh write.

    python docs/study/summarize.py ablation runs/study/ablation   # validation Avg per lever (the ablation)
    python docs/study/summarize.py main runs/study/music ...      # test Avg per model and missing rate

Accuracies are percentages, mean ± sample std over seeds. Gains over Skip are paired per seed (same split, same
removed labels). Two verdicts per mode: "paired" — the mean gain exceeds the std of the per-seed gains; "unpaired"
— it exceeds the seed std of both modes' Avg (which also holds the split-to-split spread of the test items).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simlabel_ext.report.tables import aggregate, mean_std

MODES = ("skip", "simlabel", "simlabel+confidence")


def _runs(directory: Path) -> list[dict]:
    path = directory / "results.json"
    if not path.is_file():
        raise SystemExit(f"summarize: {path} does not exist (run the study script first)")
    return json.loads(path.read_text(encoding="utf-8"))["runs"]


def _pct(mean: float, std: float | None = None, signed: bool = False) -> str:
    text = f"{100 * mean:+.1f}" if signed else f"{100 * mean:.1f}"
    return text if std is None else f"{text} ± {100 * std:.1f}"


def ablation(directories: list[Path]) -> str:
    """One row per variant directory: SimLabel + Confidence's best-epoch validation Avg per (model, rate)."""
    rows, columns = [], None
    for directory in directories:
        runs = [m for m in _runs(directory) if m["mode"] == "simlabel+confidence"] or \
            [m for m in _runs(directory) if m["mode"] == "skip"]
        cells: dict[tuple[str, float], list[float]] = {}
        for m in runs:
            cells.setdefault((m["model"], float(m["missing_rate"])), []).append(m["best_val_avg_accuracy"])
        columns = columns or sorted(cells)
        label = directory.name if runs[0]["mode"] != "skip" else f"{directory.name} (Skip)"
        means = [mean_std(cells.get(c, []))[0] for c in columns]
        rows.append((label, [mean_std(cells.get(c, [])) for c in columns], sum(means) / len(means)))
        if directory.name == "defaults":  # the defaults grid also holds Skip and SimLabel alone
            for mode in ("skip", "simlabel"):
                per = {}
                for m in _runs(directory):
                    if m["mode"] == mode:
                        per.setdefault((m["model"], float(m["missing_rate"])), []).append(m["best_val_avg_accuracy"])
                if not per:
                    continue
                means = [mean_std(per.get(c, []))[0] for c in columns]
                rows.append((f"defaults ({mode})", [mean_std(per.get(c, [])) for c in columns],
                             sum(means) / len(means)))
    header = ["variant"] + [f"{model} mr {rate:g}" for model, rate in columns] + ["mean"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for label, stats, overall in rows:
        lines.append("| " + " | ".join([label] + [_pct(m, s) for m, s in stats] + [_pct(overall)]) + " |")
    return "\n".join(lines)


def main_table(directory: Path) -> str:
    """Test Avg per (model, missing rate): Skip, SimLabel and SimLabel + Confidence with paired gains."""
    rows = {(r["model"], r["missing_rate"], r["mode"]): r for r in aggregate(_runs(directory))}
    keys = sorted({(model, rate) for model, rate, _ in rows}, key=lambda k: (k[0], k[1]))
    lines = [f"**{directory.name}** — test Avg (%), mean ± std over seeds; Δ = paired gain over Skip",
             "",
             "| model | extra missing | Skip | SimLabel | Δ | SimLabel + Conf. | Δ | imputed | imp. acc "
             "| beats Skip: paired | unpaired |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for model, rate in keys:
        skip, simlabel, conf = (rows.get((model, rate, mode)) for mode in MODES)
        if skip is None:
            continue
        cells = [model, f"{rate:g}", _pct(skip["avg_mean"], skip["avg_std"])]
        paired, unpaired = [], []
        for name, row in (("SimLabel", simlabel), ("+Conf", conf)):
            if row is None:
                cells += ["–", "–"]
                continue
            cells += [_pct(row["avg_mean"], row["avg_std"]), _pct(row["gain_mean"], row["gain_std"], signed=True)]
            paired.append(f"{name} {'yes' if row['gain_mean'] > row['gain_std'] else 'NO'}")
            unpaired.append(f"{name} {'yes' if row['gain_mean'] > max(skip['avg_std'], row['avg_std']) else 'NO'}")
        imp_acc = conf["imputation_accuracy_mean"] if conf else None
        cells += [f"{conf['imputations_mean']:.0f}" if conf else "–",
                  _pct(imp_acc) if imp_acc is not None and imp_acc == imp_acc else "–", ", ".join(paired),
                  ", ".join(unpaired)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=("ablation", "main"))
    parser.add_argument("dirs", nargs="+", type=Path, help="compare output directories (ablation: their parent)")
    args = parser.parse_args(argv)
    if args.table == "ablation":
        parent = args.dirs[0]
        order = ["defaults", "lr-1e-4"]
        found = sorted(p for p in parent.iterdir() if (p / "results.json").is_file())
        found.sort(key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name))
        print(ablation(found))
    else:
        print("\n\n".join(main_table(d) for d in args.dirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
