"""docs/study/ceiling.py, the label-side ceiling of docs/results.md: hand-computed confusions, oracle labels and
consensus, and the tables of a grid checked against naive loops over a small synthetic data set."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from simlabel_ext.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def ceiling(load_study_script):
    return load_study_script("ceiling")


def test_confusions_count_known_truth_and_shrink_toward_the_pooled_confusion(ceiling):
    truth = np.array([0, 0, 1, -1])
    labels = np.array([[0, 1], [1, 1], [1, -1], [0, 0]])  # item 3's truth is unknown: its labels are not counted
    p = ceiling.confusions(truth, labels, classes=2, prior=1.0)
    # pooled counts (true class, label): (0,0) 1, (0,1) 3, (1,1) 1, plus one per cell -> rows [2, 4] / 6, [1, 2] / 3
    pooled = np.array([[2 / 6, 4 / 6], [1 / 3, 2 / 3]])
    # annotator 0: class 0 labels 0 and 1, class 1 label 1; annotator 1: class 0 labels 1 and 1, no class 1
    expected = np.array([[[1 + pooled[0, 0], 1 + pooled[0, 1]], [pooled[1, 0], 1 + pooled[1, 1]]],
                         [[pooled[0, 0], 2 + pooled[0, 1]], pooled[1]]])
    expected /= np.array([[[3.0], [2.0]], [[3.0], [1.0]]])
    np.testing.assert_allclose(p, expected)
    np.testing.assert_allclose(p.sum(2), 1.0)


def test_oracle_labels_take_the_annotators_most_likely_label(ceiling):
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7]])
    faithful = np.array([[0.8, 0.2], [0.2, 0.8]])
    contrary = np.array([[0.1, 0.9], [0.9, 0.1]])  # says the other class
    labels = ceiling.oracle_labels(probabilities, np.stack([faithful, contrary]))
    # item 0: faithful 0.9*0.8 + 0.1*0.2 = 0.74 for class 0; contrary 0.9*0.9 + 0.1*0.1 = 0.82 for class 1
    np.testing.assert_array_equal(labels, [[0, 1], [1, 0]])


def test_majority_labels_read_training_and_validation_labels_only(ceiling):
    labels = np.array([[1, 1, 0], [0, 1, -1], [-1, -1, -1], [2, 2, 2], [0, 2, 2]])
    split = np.array([0, 1, 0, 2, 0])
    # item 1 ties 0 and 1 (lower class), item 2 has no label, item 3 is a test item
    np.testing.assert_array_equal(ceiling.majority_labels(labels, split, 3), [1, 0, -1, -1, 2])


def test_ceiling_tables_score_the_true_label_and_each_models_consensus(tmp_path, ceiling, study_grid):
    grid, truth_avgs = study_grid(tmp_path)
    lines = ceiling.ceiling(grid).splitlines()
    row = lines[4].split(" | ")
    assert row[0] == "| 0" and row[2] == "madl"
    mean, std = np.mean(truth_avgs), np.std(truth_avgs, ddof=1)
    assert row[-1] == f"{mean:.1f} ± {std:.1f} |"
    # the consensus of heads is the true class on every item, madl's never
    assert lines[-2:] == ["| 0 | heads | 100.0 ± 0.0 | – | – |", "| 0 | madl | 0.0 ± 0.0 | – | – |"]


def test_ceiling_refuses_a_grid_whose_labels_are_not_the_data_sets(tmp_path, ceiling, study_grid):
    grid, _ = study_grid(tmp_path, seeds=(0,))
    path = grid / "runs" / "heads" / "skip" / "mr0.0" / "seed0" / "predictions.npz"
    arrays = dict(np.load(path))
    arrays["labels"] = np.where(arrays["labels"] >= 0, (arrays["labels"] + 1) % 3, -1).astype(np.int16)
    np.savez(path, **arrays)
    results = json.loads((grid / "results.json").read_text())
    results["runs"] = [r for r in results["runs"] if r["model"] == "heads"]
    (grid / "results.json").write_text(json.dumps(results))
    with pytest.raises(SystemExit, match=r"differ from the predictions.npz of .*heads.*seed0"):
        ceiling.ceiling(grid)


def test_the_oracle_reads_no_validation_or_test_label(ceiling):
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 60)
    features = np.eye(3)[truth] + rng.normal(0, 1.0, (60, 3))
    labels = np.where(rng.random((60, 4)) < 0.7, (truth[:, None] + rng.integers(0, 2, (60, 4))) % 3, -1)
    split = np.repeat([0, 1, 2], 20)
    fit = ceiling.truth_classifier(features, truth, split)
    before = ceiling.oracle_predictions(fit, features, truth, labels, split, 3)
    changed = np.where((split[:, None] > 0) & (labels >= 0), (labels + 1) % 3, labels)
    np.testing.assert_array_equal(ceiling.oracle_predictions(fit, features, truth, changed, split, 3), before)
    # and it does read the training labels: every training label turned to the next class changes its answers
    flipped = np.where((split[:, None] == 0) & (labels >= 0), (labels + 1) % 3, labels)
    assert (ceiling.oracle_predictions(fit, features, truth, flipped, split, 3) != before).any()


def test_fit_true_class_freezes_the_consensus_model_and_the_trainer_leaves_it_alone(tmp_path, ceiling):
    options = {"preset": "custom", "items": 80, "annotators": 4, "classes": 3, "missing": 0.3}
    config = TrainConfig(dataset="synthetic", dataset_options=options, model="madl", mode="skip", epochs=3)
    trainer = Trainer(config, None, log=lambda line: None)
    data, model = trainer.dataset, trainer.model
    ap_before = {k: v.clone() for k, v in model.ap_output.state_dict().items()}
    fitted = ceiling.fit_true_class(model, trainer.inputs, data.truth, data.split.train, data.split.val, seed=0)
    assert 1 <= fitted["epoch"] <= ceiling.EPOCHS and 0.0 <= fitted["val_accuracy"] <= 1.0
    gt = {k: v.clone() for k, v in [*model.encoder.state_dict().items(), *model.gt_head.state_dict().items()]}
    assert not any(p.requires_grad for p in [*model.encoder.parameters(), *model.gt_head.parameters()])
    trainer.fit()
    after = {**model.encoder.state_dict(), **model.gt_head.state_dict()}
    assert all(torch.equal(gt[k], after[k]) for k in gt)  # frozen: not even weight decay moved it
    assert any(not torch.equal(ap_before[k], v) for k, v in model.ap_output.state_dict().items())


def test_ceiling_trains_and_reports_madl_with_the_true_class(tmp_path, ceiling, study_grid):
    grid, _ = study_grid(tmp_path, seeds=(0,))
    lines = ceiling.ceiling(grid, tmp_path / "oracle").splitlines()
    run = tmp_path / "oracle" / "grid" / "mr0" / "s0"
    assert (run / "metrics.json").is_file() and json.loads((run / "true_class.json").read_text())["epoch"] >= 1
    avg = 100 * json.loads((run / "metrics.json").read_text())["avg_accuracy"]
    assert lines[2].count("|") == 12 and lines[4].split(" | ")[8] == f"{avg:.1f} ± 0.0"
    assert lines[-1].startswith("| 0 | madl, true class | ")
