"""The label-side ceiling of a compare grid: what a model would reach if it knew every training item's true class.

    python docs/study/ceiling.py runs/study/sentiment runs/study/music       # one pair of tables per grid
    python docs/study/ceiling.py --train runs/study/ceiling runs/study/music  # with madl with the true class

SimLabel changes only the training targets (a soft label from the other annotators' models where a label is
missing), so what it can add through a better consensus is bounded by what the true labels of the training items
would add. For each missing rate and seed of a grid, on that run's split and labels (the dataset is loaded as the
grid loaded it, and its labels are checked against the runs' ``predictions.npz``), this fits references that see
the TRUE labels of the training items, which no training method here sees, and one that does not:

- the **truth classifier**: logistic regression from an item's features to its true class, fitted on the training
  items, its L2 strength ``C`` (of 0.01, 0.1, 1) chosen by truth accuracy on the validation items;
- the **oracle**: annotator ``a``'s label for item ``x`` predicted as ``argmax_k Σ_c p(c | x) P_a(k | c)``, with
  ``p(c | x)`` the truth classifier's and ``P_a`` annotator ``a``'s confusion counted from its training labels
  against the true labels, each row smoothed by ``PRIOR`` pseudo-labels toward the crowd's pooled confusion;
- the **majority pipeline**, the oracle's two steps without the oracle: each item's majority label among its
  training and validation labels (ties to the lower class) in place of its true label in both steps (what the
  backbones see; test labels are never read). The oracle's gain over it is what the true labels add to it;
- **madl with the true class** (``--train DIR``: one run per missing rate and seed under ``DIR/<grid>/mr<rate>/
  s<seed>``, finished runs kept): madl whose ground-truth model (its encoder and GT head, madl's own architecture)
  is first fitted to the true labels of the training items as the trainer fits a model (AdamW, lr 1e-3, weight
  decay 0.01, batches of 64, the epoch of lowest validation cross-entropy against the truth, patience 25), then
  frozen; its annotator-performance model is then trained on the annotators' labels as in the grid's madl Skip
  run (the grid's configuration, the same seed and removed labels). It is madl with all that the true labels can
  teach its consensus classifier, so it bounds what a better consensus (SimLabel's soft label among others) gives
  madl.

Beside them, what each backbone and mode of the grid knows of the true class: its **consensus** (per item, the
majority over annotators of its predicted labels, ties to the lower class) scored against the true label on the
test items. Accuracies are percentages, mean ± std over seeds; gains over the best Skip backbone (by validation
Avg, as in summarize.py's aim) are paired per seed with simlabel_ext.report.paired's bootstrap interval.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import summarize  # a sibling script: the aim's choice and the table cells

from simlabel_ext.registry import get_registry
from simlabel_ext.report.consensus import consensus_labels
from simlabel_ext.report.paired import paired_gain, split_avg, split_outcome
from simlabel_ext.report.tables import mean_std, percent
from simlabel_ext.rundir import RunDirectory
from simlabel_ext.train import TrainConfig, Trainer

#: Pseudo-labels per row of an annotator's confusion, drawn toward the pooled confusion.
PRIOR = 1.0
#: The truth classifier's candidate L2 strengths (scikit-learn's ``C``: larger is weaker).
STRENGTHS = (0.01, 0.1, 1.0)
TRAIN, VALIDATION, TEST = 0, 1, 2
#: The key of madl with the true class among a (rate, seed)'s runs ``{(model, mode): row}``.
TRUE_CLASS = ("madl", "true class")
#: How the true-class model of madl's oracle is fitted: the trainer's defaults.
EPOCHS, PATIENCE, BATCH, LR, WEIGHT_DECAY = 200, 25, 64, 1e-3, 0.01


def confusion_counts(truth: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """float ``[A, C, C]``: ``[a, c, k]`` = how many of annotator ``a``'s entries of ``labels`` (int ``[N, A]``,
    -1 = none) say ``k`` on an item whose ``truth`` (int ``[N]``, -1 = unknown, not counted) is ``c``."""
    item, annotator = np.nonzero((labels >= 0) & (truth[:, None] >= 0))
    counts = np.zeros((labels.shape[1], classes, classes))
    np.add.at(counts, (annotator, truth[item], labels[item, annotator]), 1.0)
    return counts


def confusions(truth: np.ndarray, labels: np.ndarray, classes: int, prior: float = PRIOR) -> np.ndarray:
    """``P [A, C, C]``, ``P[a, c, k]`` = annotator ``a``'s probability of label ``k`` on an item of true class ``c``,
    counted on the entries of ``labels`` (int ``[N, A]``, -1 = none) whose ``truth`` (int ``[N]``, -1 = unknown)
    is known; row ``c`` of ``a`` is ``(counts[a, c] + prior · pooled[c]) / (n[a, c] + prior)``, with ``pooled``
    the confusion of every annotator's entries together (itself smoothed by one count per cell)."""
    counts = confusion_counts(truth, labels, classes)
    pooled = counts.sum(0) + 1.0
    pooled /= pooled.sum(1, keepdims=True)
    return (counts + prior * pooled) / (counts.sum(2, keepdims=True) + prior)


def oracle_labels(probabilities: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """int ``[N, A]``: ``argmax_k Σ_c p[n, c] P[a, c, k]`` for class probabilities ``p [N, C]`` and ``P [A, C, C]``."""
    return np.einsum("nc,ack->nak", probabilities, confusion).argmax(2)


def truth_classifier(features: np.ndarray, truth: np.ndarray, split: np.ndarray) -> LogisticRegression:
    """Logistic regression of ``truth`` on ``features [N, D]``, fitted on the training items with a known truth,
    ``C`` of :data:`STRENGTHS` chosen by truth accuracy on the validation items (the first of equals)."""
    train, val = (split == TRAIN) & (truth >= 0), (split == VALIDATION) & (truth >= 0)
    fits = [LogisticRegression(C=c, max_iter=5000).fit(features[train], truth[train]) for c in STRENGTHS]
    return max(fits, key=lambda fit: fit.score(features[val], truth[val]))


def oracle_predictions(fit: LogisticRegression, features: np.ndarray, truth: np.ndarray, labels: np.ndarray,
                       split: np.ndarray, classes: int) -> np.ndarray:
    """int ``[N, A]``: the oracle's label of every (item, annotator), from the truth classifier ``fit`` and the
    confusions of the training labels only (``labels`` of validation and test items are never read)."""
    train_labels = np.where((split == TRAIN)[:, None], labels, -1)
    return oracle_labels(fit.predict_proba(features), confusions(truth, train_labels, classes))


def majority_labels(labels: np.ndarray, split: np.ndarray, classes: int) -> np.ndarray:
    """int ``[N]``: each item's majority label among its training and validation ``labels`` (int ``[N, A]``, -1 =
    none), ties to the lower class; -1 for test items and items without such a label."""
    seen = np.where((split != TEST)[:, None], labels, -1)
    return np.where((seen >= 0).any(1), consensus_labels(seen, classes), -1)


def fit_true_class(model: torch.nn.Module, inputs: torch.Tensor, truth: torch.Tensor, train: torch.Tensor,
                   val: torch.Tensor, seed: int) -> dict:
    """Fit madl ``model``'s ground-truth part (``encoder`` and ``gt_head``) to ``truth`` (int64 ``[N]``, -1 =
    unknown) on the ``train`` items (int64 indices into ``inputs [N, ...]``), keep the epoch of lowest validation
    cross-entropy on the ``val`` items, and freeze it (``requires_grad`` off): ``{"epoch", "val_accuracy"}``."""
    parts = torch.nn.ModuleDict({"encoder": model.encoder, "gt_head": model.gt_head})
    train, val = train[truth[train] >= 0], val[truth[val] >= 0]
    optimizer = torch.optim.AdamW(parts.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    order = torch.Generator().manual_seed(seed)
    best = {"loss": float("inf"), "epoch": 0, "state": None}
    for epoch in range(1, EPOCHS + 1):
        parts.train()
        for batch in train[torch.randperm(len(train), generator=order)].split(BATCH):
            optimizer.zero_grad()
            F.cross_entropy(model.ground_truth_logits(inputs[batch]), truth[batch]).backward()
            optimizer.step()
        parts.eval()
        with torch.no_grad():
            loss = F.cross_entropy(model.ground_truth_logits(inputs[val]), truth[val]).item()
        if loss < best["loss"]:
            best = {"loss": loss, "epoch": epoch, "state": {k: v.clone() for k, v in parts.state_dict().items()}}
        elif epoch - best["epoch"] >= PATIENCE:
            break
    parts.load_state_dict(best["state"])
    parts.requires_grad_(False)
    with torch.no_grad():
        accuracy = (model.ground_truth_logits(inputs[val]).argmax(1) == truth[val]).double().mean().item()
    return {"epoch": best["epoch"], "val_accuracy": accuracy}


def true_class_run(results: dict, rate: float, seed: int, out: Path) -> dict:
    """Train (unless finished) the run "madl with the true class" of the grid ``results`` at (``rate``, ``seed``)
    into ``out``: the grid's configuration with madl and Skip, its true-class model fitted first
    (:func:`fit_true_class`, written to ``out/true_class.json``). Returns the run's metrics."""
    run = RunDirectory(out)
    if not run.finished:
        config = TrainConfig.from_dict({**results["config"], "model": "madl", "model_options": {}, "mode": "skip",
                                        "seed": seed, "missing_rate": rate, "progress": False})
        trainer = Trainer(config, out, log=lambda line: None)
        data = trainer.dataset
        fitted = fit_true_class(trainer.model, trainer.inputs, data.truth, data.split.train, data.split.val, seed)
        metrics = trainer.fit().metrics
        (out / "true_class.json").write_text(json.dumps(fitted), encoding="utf-8")
        print(f"ceiling: madl with the true class, missing rate {rate:g}, seed {seed} -> {out}: true-class epoch "
              f"{fitted['epoch']}, best epoch {metrics['best_epoch']}", file=sys.stderr)
    return {**run.metrics(), "run_dir": str(out)}


def grid_dataset(results: dict, rate: float, seed: int, runs: dict, arrays: dict, script: str):
    """The data set of the grid ``results`` at (``rate``, ``seed``), loaded as the grid loaded it; a
    ``SystemExit`` naming the run's directory (``script`` names the caller) where its labels differ from those of
    any of the ``runs`` ``{key: row}`` in their ``predictions.npz`` ``arrays`` (the same keys)."""
    options = {**results["dataset_options"], "seed": seed, "missing_rate": rate}
    dataset = get_registry().load_dataset(results["dataset"], **options)
    for key, row in runs.items():
        if not np.array_equal(arrays[key]["labels"], dataset.annotations.labels.numpy()):
            raise SystemExit(f"{script}: the labels of {results['dataset']!r} (seed {seed}, missing rate {rate:g}) "
                             f"differ from the predictions.npz of {row['run_dir']}: not the data set it was "
                             "trained on")
    return dataset


def _seed_references(results: dict, rate: float, seed: int, runs: dict, arrays: dict) -> dict:
    """The references of one (rate, seed) over the grid's ``runs`` ``{(model, mode): row}`` (and the madl
    oracle's, under :data:`TRUE_CLASS`) and their ``predictions.npz`` ``arrays`` (the same keys): truth accuracies
    and the test outcomes of the oracle, the majority pipeline and the true label."""
    dataset = grid_dataset(results, rate, seed, runs, arrays, "ceiling")
    if dataset.truth is None or not bool((dataset.truth >= 0).any()):
        raise SystemExit(f"ceiling: dataset {results['dataset']!r} has no true labels to score against")
    first = next(iter(arrays.values()))
    split, labels = first["split"], first["labels"]
    truth, classes = dataset.truth.numpy(), dataset.num_classes
    features = dataset.inputs.numpy().reshape(len(split), -1)
    test = (split == TEST) & (truth >= 0)
    fit = truth_classifier(features, truth, split)
    oracle = oracle_predictions(fit, features, truth, labels, split, classes)
    majority = majority_labels(labels, split, classes)
    pipeline = oracle_predictions(truth_classifier(features, majority, split), features, majority, labels, split,
                                  classes)
    known = {key: (consensus_labels(run["prediction"], classes)[test] == truth[test]).mean()
             for key, run in arrays.items()}
    truth_everywhere = {**first, "prediction": np.repeat(truth[:, None], labels.shape[1], 1)}
    return {"classifier": fit.score(features[test], truth[test]), "consensus": known,
            "oracle": split_outcome({**first, "prediction": oracle}),
            "pipeline": split_outcome({**first, "prediction": pipeline}), "truth": split_outcome(truth_everywhere)}


def ceiling(directory: Path, runs_dir: Path | None = None) -> str:
    """The two tables of one grid: the references per missing rate, and each (model, mode)'s consensus. With
    ``runs_dir``, madl with the true class is trained where missing (``runs_dir/<grid>/mr<rate>/s<seed>``) and
    reported too."""
    results = summarize._results(directory)
    index = summarize._index(results["runs"])
    extra = " and madl with the true class (its paired gain over the same pick)" if runs_dir else ""
    head = [(f"**{directory.name}**: the label-side ceiling on test items (%, mean ± std over seeds): the truth "
             "classifier's truth accuracy, the best Skip backbone (by validation Avg), the Avg of the oracle and of "
             f"the majority pipeline with their paired gains over that pick{extra}, and the Avg of the true label "
             "given as every annotator's label"), "",
            ("| extra missing | truth classifier: truth acc. | best with Skip | its Avg | oracle: Avg | over it "
             "[95 % interval] | majority pipeline: Avg | over it [95 % interval] |"
             + (" madl, true class: Avg | over it [95 % interval] |" if runs_dir else "") + " true label: Avg |"),
            "|---:|---:|---|---:|---:|---|---:|---|" + ("---:|---|" if runs_dir else "") + "---:|"]
    known = [(f"**{directory.name}**: what each model knows of the true class: its consensus (the majority of its "
              "predicted labels over annotators) scored against the true label on test items (%, mean ± std over "
              "seeds)"), "", "| extra missing | model | Skip | SimLabel | SimLabel + Conf. |",
             "|---:|---|---:|---:|---:|"]
    for rate in sorted({float(m["missing_rate"]) for m in results["runs"]}):
        row, rows = _rate_rows(results, index, rate, directory.name, runs_dir)
        head.append(row)
        known += rows
    return "\n".join([*head, "", *known])


def _rate_rows(results: dict, index: dict, rate: float, grid: str, runs_dir: Path | None) -> tuple[str, list[str]]:
    """One missing rate: its row of the references table and its rows of the consensus table."""
    skip_model, _, seeds = summarize._best(index, rate, ["skip"])
    grid_runs = {s: {(mo, md): m for (mo, md, r, sd), m in index.items() if r == rate and sd == s} for s in seeds}
    if runs_dir is not None:
        for s in seeds:
            grid_runs[s][TRUE_CLASS] = true_class_run(results, rate, s, runs_dir / grid / f"mr{rate:g}" / f"s{s}")
    arrays = {s: {key: RunDirectory(row["run_dir"]).predictions() for key, row in runs.items()}
              for s, runs in grid_runs.items()}
    refs = {s: _seed_references(results, rate, s, grid_runs[s], arrays[s]) for s in seeds}
    skips = {s: split_outcome(arrays[s][(skip_model, "skip")]) for s in seeds}
    compared = [{s: refs[s]["oracle"] for s in seeds}, {s: refs[s]["pipeline"] for s in seeds}]
    if runs_dir is not None:
        compared.append({s: split_outcome(arrays[s][TRUE_CLASS]) for s in seeds})
    cells = [f"{rate:g}", percent(*mean_std([refs[s]["classifier"] for s in seeds])), skip_model, _avg_cell(skips)]
    for outcomes in compared:
        cells += [_avg_cell(outcomes), summarize._format(paired_gain([(s, outcomes[s], skips[s]) for s in seeds]))]
    cells.append(_avg_cell({s: refs[s]["truth"] for s in seeds}))
    consensus_of = {key: percent(*mean_std([refs[s]["consensus"][key] for s in seeds]))
                    for key in refs[seeds[0]]["consensus"]}
    rows = [f"| {rate:g} | {model} | " + " | ".join(consensus_of.get((model, mode), "–") for mode in summarize.MODES)
            + " |" for model in sorted({mo for mo, md in consensus_of if md != TRUE_CLASS[1]})]
    if runs_dir is not None:
        rows.append(f"| {rate:g} | madl, true class | {consensus_of[TRUE_CLASS]} | – | – |")
    return "| " + " | ".join(cells) + " |", rows


def _avg_cell(outcomes: dict) -> str:
    """``mean ± std`` over seeds of the Avg of ``{seed: SplitOutcome}`` on every item of each outcome."""
    return percent(*mean_std([split_avg(o) for o in outcomes.values()]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="compare output directories (a grid of main.sh)")
    parser.add_argument("--train", type=Path, default=None, metavar="DIR",
                        help="train madl with the true class where missing, under DIR/<grid>/, and report it")
    args = parser.parse_args(argv)
    print("\n\n".join(ceiling(d, args.train) for d in args.dirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
