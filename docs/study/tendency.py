"""The annotator side of a compare grid: what its models learn of each annotator beyond the crowd's consensus.

    python docs/study/tendency.py runs/study/sentiment runs/study/music       # two tables per grid

Multi-annotator learning predicts what each annotator would say; the plainest rival is to predict the same label,
the crowd's, for every annotator. SimLabel's premise is that the annotators who label alike (kappa) tell more
about an annotator's missing labels than the crowd does. Two measurements per grid, on each run's own split and
labels (the dataset is loaded as the grid loaded it and checked against the runs' ``predictions.npz``); no true
label and no test label is read to fit anything:

- the **consensus broadcast** of every (backbone, mode) run: its consensus (per item, the majority of its
  predicted labels over annotators, ties to the lower class) given as every annotator's label, scored like the run
  and paired with it. A gain that is not below 0 says the run's per-annotator outputs add nothing to its consensus;
- three **count models** over one consensus classifier, the logistic regression of ceiling.py's majority pipeline
  (fitted to the items' majority labels among their training and validation labels):

  - *consensus*: the classifier's class is every annotator's label;
  - *crowd prior*: annotator ``a``'s label is ``argmax_k Σ_c p(c | x) P_a(k | c)``, with ``P_a`` counted from its
    training labels against the majority labels, each row smoothed by ``m`` pseudo-labels toward the
    equal-weighted mean of the other annotators' confusions (each counted and smoothed as ceiling.py's, toward
    the pooled confusion);
  - *similar prior*: the same with that mean weighted by SimLabel's similarity ``S[a, b]`` (the library's
    shrunk kappa of the training labels, with the grid's ``n0`` and ``min_overlap``); where ``a`` has no similar
    annotator, the crowd prior. This is SimLabel's soft label passed through the count model: for an item ``x``
    that ``a`` did not label, ``Σ_b S[a, b] p_b(x) / Σ_b S[a, b]`` with ``p_b(x) = Σ_c p(c | x) P_b(· | c)`` is
    ``Σ_c p(c | x) Q_a(· | c)``, ``Q_a`` the weighted mean of the ``P_b``; the prior strength ``m`` is then how
    much such soft labels weigh against ``a``'s own labels.

  ``m`` is chosen per seed and model among :data:`PRIOR_STRENGTHS` by validation Avg (the first of equals). Their
  test Avg is paired with the best Skip backbone of the grid (by validation Avg, as in summarize.py's aim), and
  the similar prior with the crowd prior.

Accuracies are percentages, mean ± std over seeds; gains are paired per seed with simlabel_ext.report.paired's
bootstrap interval over test items.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ceiling  # sibling scripts: the majority pipeline's parts, the aim's choice and the table cells
import summarize

from simlabel_ext.report.consensus import consensus_outcome
from simlabel_ext.report.paired import paired_gain, split_avg, split_outcome
from simlabel_ext.rundir import RunDirectory
from simlabel_ext.similarity import SimilarityEngine

#: The candidate prior strengths ``m`` of the count models, in pseudo-labels per confusion row.
PRIOR_STRENGTHS = (1.0, 3.0, 10.0, 30.0, 100.0)
TRAIN, VALIDATION, TEST = 0, 1, 2
COUNT_MODELS = ("consensus", "crowd prior", "similar prior")


def prior_confusions(confusion: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``Q [A, C, C]``: ``Q[a] = Σ_b w[a, b] P[b] / Σ_b w[a, b]`` over ``b != a`` for confusions ``P [A, C, C]``
    and non-negative ``weights [A, A]`` (the diagonal is ignored); the equal-weighted mean of the others where
    ``a``'s weights sum to 0."""
    a = confusion.shape[0]
    weights = np.where(np.eye(a, dtype=bool), 0.0, weights)
    equal = 1.0 - np.eye(a)
    weights = np.where(weights.sum(1, keepdims=True) > 0, weights, equal)
    return np.einsum("ab,bck->ack", weights, confusion) / weights.sum(1)[:, None, None]


def count_labels(probabilities: np.ndarray, counts: np.ndarray, prior: np.ndarray, strength: float) -> np.ndarray:
    """int ``[N, A]``: ``argmax_k Σ_c p[n, c] P[a, c, k]`` with ``P = (counts + m · prior) / (n + m)`` per row, for
    class probabilities ``p [N, C]``, confusion ``counts [A, C, C]``, ``prior [A, C, C]`` (rows sum to 1) and
    ``m = strength > 0``."""
    confusion = (counts + strength * prior) / (counts.sum(2, keepdims=True) + strength)
    return ceiling.oracle_labels(probabilities, confusion)


def _avg(arrays: dict, prediction: np.ndarray, split: int) -> float:
    return split_avg(split_outcome({**arrays, "prediction": prediction}, split))


def count_models(features: np.ndarray, arrays: dict, classes: int, n0: float, min_overlap: int) -> dict:
    """The :data:`COUNT_MODELS`' labels of every (item, annotator) ``{name: int [N, A]}`` and their chosen ``m``
    (``{name: m}`` under ``"strength"``), from ``features [N, D]`` and a run's ``arrays`` (``labels``, ``split``):
    validation labels pick ``C`` and ``m``; test labels are never read."""
    labels, split = arrays["labels"], arrays["split"]
    majority = ceiling.majority_labels(labels, split, classes)
    probabilities = ceiling.truth_classifier(features, majority, split).predict_proba(features)
    train = np.where((split == TRAIN)[:, None], labels, -1)
    counts = ceiling.confusion_counts(majority, train, classes)
    others = ceiling.confusions(majority, train, classes)
    similarity = SimilarityEngine(torch.from_numpy(train.astype(np.int64)), classes, n0=n0,
                                  min_overlap=min_overlap).similarity().numpy()
    priors = {"crowd prior": prior_confusions(others, np.ones_like(similarity)),
              "similar prior": prior_confusions(others, similarity)}
    models = {"consensus": np.repeat(probabilities.argmax(1)[:, None], labels.shape[1], 1), "strength": {}}
    for name, prior in priors.items():
        candidates = [count_labels(probabilities, counts, prior, m) for m in PRIOR_STRENGTHS]
        scores = [_avg(arrays, c, VALIDATION) for c in candidates]
        best = int(np.argmax(scores))
        models[name], models["strength"][name] = candidates[best], PRIOR_STRENGTHS[best]
    return models


def tendency(directory: Path) -> str:
    """The two tables of one grid: every run's consensus broadcast, and the count models per missing rate."""
    results = summarize._results(directory)
    index = summarize._index(results["runs"])
    config = results["config"]
    runs_of = sorted({(mo, md) for mo, md, _, _ in index}, key=lambda k: (k[0], summarize.MODES.index(k[1])))
    heads = [(f"**{directory.name}**: each run's consensus (the majority of its predicted labels) given as every "
              "annotator's label: its test Avg (%, mean ± std over seeds) and its paired gain over the run's own "
              "predictions [95 % interval]"), "",
             "| extra missing | model | " + " | ".join(f"{m}: broadcast | over the run" for m in summarize.MODES)
             + " |", "|---:|---|" + "---:|---|" * len(summarize.MODES)]
    counts = [(f"**{directory.name}**: the count models over one consensus classifier (logistic regression on the "
               "majority labels): test Avg (%, mean ± std over seeds), the paired gain over the best Skip backbone "
               "(by validation Avg) [95 % interval], and the similar prior's over the crowd prior; m chosen on "
               "validation"), "",
              ("| extra missing | best with Skip | its Avg | consensus: Avg | over it | crowd prior: Avg | over it | "
               "m | similar prior: Avg | over it | m | similar over crowd |"),
              "|---:|---|---:|---:|---|---:|---|---|---:|---|---|---|"]
    for rate in sorted({float(m["missing_rate"]) for m in results["runs"]}):
        skip_model, _, seeds = summarize._best(index, rate, ["skip"])
        grid_runs = {s: {(mo, md): m for (mo, md, r, sd), m in index.items() if r == rate and sd == s}
                     for s in seeds}
        arrays = {s: {key: RunDirectory(row["run_dir"]).predictions() for key, row in runs.items()}
                  for s, runs in grid_runs.items()}
        outcomes, models = {}, {}
        for s in seeds:
            dataset = ceiling.grid_dataset(results, rate, s, grid_runs[s], arrays[s], "tendency")
            first = arrays[s][(skip_model, "skip")]
            features = dataset.inputs.numpy().reshape(len(first["split"]), -1)
            models[s] = count_models(features, first, dataset.num_classes, config["n0"], config["min_overlap"])
            outcomes[s] = {key: (split_outcome(run), consensus_outcome(run)) for key, run in arrays[s].items()}
        for model in sorted({mo for mo, _ in runs_of}):
            cells = [f"{rate:g}", model]
            for mode in summarize.MODES:
                if (model, mode) not in outcomes[seeds[0]]:
                    cells += ["–", "–"]
                    continue
                pairs = [(s, outcomes[s][(model, mode)][1], outcomes[s][(model, mode)][0]) for s in seeds]
                cells += [ceiling._avg_cell({s: b for s, b, _ in pairs}), summarize._format(paired_gain(pairs))]
            heads.append("| " + " | ".join(cells) + " |")
        skips = {s: outcomes[s][(skip_model, "skip")][0] for s in seeds}
        fitted = {name: {s: split_outcome({**arrays[s][(skip_model, "skip")], "prediction": models[s][name]})
                         for s in seeds} for name in COUNT_MODELS}
        cells = [f"{rate:g}", skip_model, ceiling._avg_cell(skips)]
        for name in COUNT_MODELS:
            cells += [ceiling._avg_cell(fitted[name]),
                      summarize._format(paired_gain([(s, fitted[name][s], skips[s]) for s in seeds]))]
            if name != "consensus":
                cells.append(", ".join(f"{models[s]['strength'][name]:g}" for s in seeds))
        cells.append(summarize._format(paired_gain([(s, fitted["similar prior"][s], fitted["crowd prior"][s])
                                                    for s in seeds])))
        counts.append("| " + " | ".join(cells) + " |")
    return "\n".join([*heads, "", *counts])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="compare output directories (a grid of main.sh)")
    args = parser.parse_args(argv)
    print("\n\n".join(tendency(d) for d in args.dirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
