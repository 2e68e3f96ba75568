"""The report's figures (matplotlib, PNG, the non-interactive Agg backend).

- :func:`plot_similarity_heatmaps`: annotator kappa as heat maps side by side (e.g. before / after training, the
  paper's Figure 2 view), annotators ordered by :func:`cluster_order`; undefined pairs (no shared item) grey;
- :func:`plot_accuracy_by_annotator`: per-annotator test accuracy by mode (one panel per model);
- :func:`plot_avg_vs_missing_rate`: Avg accuracy against the missing rate by mode (one panel per model);
- :func:`plot_gain_vs_skip`: each mode's paired gain over Skip with its bootstrap interval (one panel per rate);
- :func:`plot_imputations`: number of imputed labels and their accuracy over epochs.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cluster_order", "plot_accuracy_by_annotator", "plot_avg_vs_missing_rate", "plot_gain_vs_skip",
           "plot_imputations", "plot_similarity_heatmaps"]

MODE_COLOURS = {"skip": "#7f7f7f", "simlabel": "#1f77b4", "simlabel+confidence": "#d62728"}


def _pyplot():
    import matplotlib  # imported on first use: it costs a second at start-up

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cluster_order(similarity: np.ndarray) -> list[int]:
    """A leaf order of average-linkage agglomerative clustering of ``similarity [A, A]`` (NaN counts as 0):
    the two clusters with the highest mean pairwise similarity merge first, so similar annotators sit together."""
    s = np.nan_to_num(np.asarray(similarity, dtype=np.float64), nan=0.0)
    clusters: list[list[int]] = [[a] for a in range(s.shape[0])]
    while len(clusters) > 1:
        best, pair = -math.inf, (0, 1)
        for x in range(len(clusters)):
            for y in range(x + 1, len(clusters)):
                value = s[np.ix_(clusters[x], clusters[y])].mean()
                if value > best:
                    best, pair = value, (x, y)
        x, y = pair
        clusters[x] = clusters[x] + clusters[y]
        del clusters[y]
    return clusters[0] if clusters else []


def plot_similarity_heatmaps(
    path: str | Path,
    matrices: Sequence[tuple[str, np.ndarray]],
    annotators: Sequence[str],
    *,
    order: Sequence[int] | None = None,
    label: str = "Cohen's kappa",
) -> None:
    """Heat maps of ``[A, A]`` matrices ``(title, M)`` side by side on one colour scale ([-1, 1] for kappa)."""
    plt = _pyplot()
    order = list(order) if order is not None else cluster_order(matrices[0][1])
    a = len(order)
    side = max(4.0, min(12.0, 0.18 * a + 2.5))
    fig, axes = plt.subplots(1, len(matrices), figsize=(side * len(matrices) + 1.2, side), squeeze=False)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#d9d9d9")
    image = None
    for ax, (title, m) in zip(axes[0], matrices):
        m = np.asarray(m, dtype=np.float64)[np.ix_(order, order)].copy()
        np.fill_diagonal(m, np.nan)
        image = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(title)
        names = [str(annotators[k]) for k in order]
        step = max(1, a // 30)
        ax.set_xticks(range(0, a, step), names[::step], rotation=90, fontsize=7)
        ax.set_yticks(range(0, a, step), names[::step], fontsize=7)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label=f"{label} (grey: undefined / diagonal)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _models(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in rows))


def _modes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["mode"] for r in rows))


def plot_accuracy_by_annotator(path: str | Path, rows: Sequence[Mapping[str, Any]], missing_rate: float) -> None:
    """Grouped bars: per-annotator test accuracy (mean ± std over seeds) of each mode, one panel per model."""
    plt = _pyplot()
    rows = [r for r in rows if r["missing_rate"] == missing_rate]
    models, modes = _models(rows), _modes(rows)
    annotators = list(rows[0]["per_annotator"])
    width = 0.8 / len(modes)
    fig, axes = plt.subplots(len(models), 1, figsize=(max(6.0, 0.35 * len(annotators) * len(modes) + 2),
                                                      2.8 * len(models)), squeeze=False)
    for ax, model in zip(axes[:, 0], models):
        for k, mode in enumerate(modes):
            match = [r for r in rows if r["model"] == model and r["mode"] == mode]
            if not match:
                continue
            stats = match[0]["per_annotator"]
            means = np.array([100 * stats[a]["mean"] for a in annotators], dtype=np.float64)
            stds = np.array([100 * stats[a]["std"] for a in annotators], dtype=np.float64)
            x = np.arange(len(annotators)) + (k - (len(modes) - 1) / 2) * width
            ax.bar(x, np.nan_to_num(means), width, yerr=np.nan_to_num(stds), capsize=1.5,
                   color=MODE_COLOURS.get(mode), label=f"{mode} (Avg {100 * match[0]['avg_mean']:.1f})")
        ax.set_xticks(range(len(annotators)), annotators, rotation=90 if len(annotators) > 12 else 0, fontsize=7)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{model}: per-annotator accuracy, missing rate {missing_rate:g}")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_avg_vs_missing_rate(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Avg per-annotator accuracy (mean ± std over seeds) against the extra missing rate, a line per mode."""
    plt = _pyplot()
    models, modes = _models(rows), _modes(rows)
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for mode in modes:
            match = sorted((r for r in rows if r["model"] == model and r["mode"] == mode),
                           key=lambda r: r["missing_rate"])
            ax.errorbar([r["missing_rate"] for r in match], [100 * r["avg_mean"] for r in match],
                        yerr=[100 * r["avg_std"] for r in match], marker="o", capsize=3,
                        color=MODE_COLOURS.get(mode), label=mode)
        ax.set_xlabel("extra missing rate of training labels")
        ax.set_ylabel("Avg test accuracy (%)")
        ax.set_title(model)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gain_vs_skip(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Per missing rate, a point per (model, mode other than Skip): the paired gain in Avg over Skip (points) with
    its 95 % bootstrap interval (bar); filled where the verdict is *beats* or *worse*, hollow where inconclusive."""
    plt = _pyplot()
    rates = sorted({r["missing_rate"] for r in rows})
    models = _models(rows)
    modes = [m for m in _modes(rows) if m != "skip"]
    fig, axes = plt.subplots(1, len(rates), figsize=(max(4.0, 0.9 * len(models) * len(modes) + 1.5) * len(rates),
                                                     3.4), squeeze=False)
    width = 0.8 / max(1, len(modes))
    for ax, rate in zip(axes[0], rates):
        for k, mode in enumerate(modes):
            for j, model in enumerate(models):
                match = [r for r in rows if (r["missing_rate"], r["model"], r["mode"]) == (rate, model, mode)]
                if not match:
                    continue
                r, x = match[0], j + (k - (len(modes) - 1) / 2) * width
                colour = MODE_COLOURS.get(mode)
                if r["gain_low"] is not None and not math.isnan(r["gain_low"]):
                    ax.vlines(x, 100 * r["gain_low"], 100 * r["gain_high"], color=colour, linewidth=2)
                decided = r["verdict"] in ("beats", "worse")
                ax.plot(x, 100 * r["gain_mean"], "o", color=colour, markerfacecolor=colour if decided else "white",
                        label=mode if j == 0 else None)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.set_xticks(range(len(models)), models)
        ax.set_ylabel("Δ Avg over Skip (points)")
        ax.set_title("natural missingness" if rate == 0 else f"extra missing rate {rate:g}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_imputations(path: str | Path, histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Left: imputed labels over epochs; right: their accuracy on hidden labels (removed on purpose, or a simulated
    crowd's), where scored."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    scored_any = False
    for label, history in histories.items():
        epochs = [r["epoch"] for r in history]  # numbered from 1
        left.plot(epochs, [r["imputed"] for r in history], label=label)
        acc = [(r["epoch"], 100 * r["imputation_accuracy"]) for r in history
               if r.get("imputations_scored") and r.get("imputation_accuracy") is not None]
        if acc:
            scored_any = True
            right.plot(*zip(*acc), label=label)
    left.set_xlabel("epoch")
    left.set_ylabel("imputed labels")
    left.set_title("imputed labels (simlabel+confidence)")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy (%)")
    right.set_title("imputation accuracy on hidden labels")
    if not scored_any:
        right.text(0.5, 0.5, "no hidden labels (real data at its natural\nmissingness): nothing to score",
                   ha="center", va="center", transform=right.transAxes)
    for ax in (left, right):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
