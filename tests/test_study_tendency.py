"""docs/study/tendency.py, how much of each annotator's own tendency is learnt (docs/results.md): hand-computed
consensus broadcasts, priors and count-model labels, a crowd whose one contrary annotator the count models must
find, and the tables of a grid checked against naive loops."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tendency(load_study_script):
    return load_study_script("tendency")


def test_prior_confusions_weigh_the_others_and_fall_back_to_their_plain_mean(tendency):
    p = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.5, 0.5]], [[0.1, 0.9], [0.6, 0.4]]])
    weights = np.array([[7.0, 1.0, 3.0], [0.0, 5.0, 0.0], [1.0, 1.0, 0.0]])  # the diagonal is never used
    q = tendency.prior_confusions(p, weights)
    np.testing.assert_allclose(q[0], (1 * p[1] + 3 * p[2]) / 4)
    np.testing.assert_allclose(q[1], (p[0] + p[2]) / 2)  # no weight on the others: their plain mean
    np.testing.assert_allclose(q[2], (p[0] + p[1]) / 2)
    np.testing.assert_allclose(q.sum(2), 1.0)


def test_count_labels_follow_the_own_counts_until_the_prior_outweighs_them(tendency):
    probabilities = np.array([[1.0, 0.0]])
    counts = np.array([[[1.0, 3.0], [0.0, 4.0]]])  # 3 of 4 labels on class-0 items say 1
    prior = np.array([[[0.9, 0.1], [0.1, 0.9]]])
    # row 0 with m pseudo-labels: P(1 | 0) = (3 + 0.1 m) / (4 + m), above 1/2 while m < 2.5
    assert tendency.count_labels(probabilities, counts, prior, 2.0)[0, 0] == 1
    assert tendency.count_labels(probabilities, counts, prior, 3.0)[0, 0] == 0


def _contrary_crowd(seed=0, items=90, annotators=5):
    """Separable features; annotator 0 always says the next class, the others the true class; 70 % of entries."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, items)
    features = np.eye(3)[truth] * 4 + rng.normal(0, 0.3, (items, 3))
    labels = np.repeat(truth[:, None], annotators, 1)
    labels[:, 0] = (truth + 1) % 3
    labels = np.where(rng.random((items, annotators)) < 0.7, labels, -1)
    split = np.repeat([0, 1, 2], items // 3)
    return truth, features, {"labels": labels, "split": split}


def test_count_models_find_the_contrary_annotator_that_the_consensus_misses(tendency):
    truth, features, arrays = _contrary_crowd()
    models = tendency.count_models(features, arrays, 3, n0=10.0, min_overlap=0)
    expected = np.repeat(truth[:, None], 5, 1)
    np.testing.assert_array_equal(models["consensus"], expected)
    expected[:, 0] = (truth + 1) % 3
    for name in ("crowd prior", "similar prior"):
        np.testing.assert_array_equal(models[name], expected)
        assert models["strength"][name] in tendency.PRIOR_STRENGTHS


def test_count_models_read_no_test_label(tendency):
    _, features, arrays = _contrary_crowd(seed=1)
    before = tendency.count_models(features, arrays, 3, n0=10.0, min_overlap=0)
    labels, split = arrays["labels"], arrays["split"]
    changed = np.where((split[:, None] == 2) & (labels >= 0), (labels + 1) % 3, labels)
    after = tendency.count_models(features, {**arrays, "labels": changed}, 3, n0=10.0, min_overlap=0)
    for name in tendency.COUNT_MODELS:
        np.testing.assert_array_equal(after[name], before[name])
    assert after["strength"] == before["strength"]
    # the training labels are read: annotator 1 turned contrary on them is then predicted contrary
    flipped = labels.copy()
    flipped[:, 1] = np.where((split == 0) & (labels[:, 1] >= 0), (labels[:, 1] + 1) % 3, labels[:, 1])
    moved = tendency.count_models(features, {**arrays, "labels": flipped}, 3, n0=10.0, min_overlap=0)
    assert (moved["crowd prior"][:, 1] != before["crowd prior"][:, 1]).any()


def _crowd(annotators=5, items=(60, 30, 30)):
    """Separable features, truth 0, 1, 2 in turn; split into training, validation and test items by ``items``;
    every annotator labels every item with its true class (edit ``labels`` to change that)."""
    n = sum(items)
    truth = np.arange(n) % 3
    features = np.eye(3)[truth] * 4 + np.random.default_rng(0).normal(0, 0.3, (n, 3))
    split = np.repeat([0, 1, 2], items)
    return truth, features, split, np.repeat(truth[:, None], annotators, 1)


def test_count_models_choose_the_prior_strength_on_validation(tendency):
    truth, features, split, labels = _crowd()
    labels[:, 0] = np.where(split == 0, -1, labels[:, 0])
    labels[[0, 3], 0] = 1  # annotator 0's only two training labels are contrary, on class-0 items
    models = tendency.count_models(features, {"labels": labels, "split": split}, 3, n0=10.0, min_overlap=0)
    # m = 1 follows those two labels ((2 + ~0) / 3 for label 1 on class-0 items), which validation refutes
    assert models["strength"]["crowd prior"] > 1.0
    np.testing.assert_array_equal(models["crowd prior"], np.repeat(truth[:, None], 5, 1))


def test_count_models_do_not_count_validation_labels(tendency):
    truth, features, split, labels = _crowd()
    labels[:, 4] = np.where(split == 1, (truth + 1) % 3, -1)  # contrary, on validation items only
    models = tendency.count_models(features, {"labels": labels, "split": split}, 3, n0=10.0, min_overlap=0)
    # no training label of annotator 4: its confusion is the prior's, which says the true class
    np.testing.assert_array_equal(models["crowd prior"][:, 4], truth)


def test_the_similar_prior_takes_a_missing_class_from_the_annotator_that_labels_alike(tendency):
    truth, features, split, labels = _crowd()
    labels[:, :2] = (truth[:, None] + 1) % 3  # annotators 0 and 1 are contrary
    labels[(split == 0) & (truth == 2), 0] = -1  # annotator 0 has no class-2 training item
    models = tendency.count_models(features, {"labels": labels, "split": split}, 3, n0=10.0, min_overlap=0)
    class2 = (split == 2) & (truth == 2)
    # its kappa with annotator 1 is 1 and with the others below 0: its class-2 row is annotator 1's
    assert (models["similar prior"][class2, 0] == 0).all()
    # the crowd's mean row (one contrary annotator of four) says the true class
    assert (models["crowd prior"][class2, 0] == 2).all()


def _naive_consensus(prediction):
    out = np.empty(prediction.shape[0], dtype=int)
    for n, row in enumerate(prediction):
        votes = [list(row).count(c) for c in range(3)]
        out[n] = votes.index(max(votes))  # the first maximum: ties to the lower class
    return np.repeat(out[:, None], prediction.shape[1], 1)


def test_tendency_tables_against_naive_loops(tmp_path, tendency, study_grid, naive_avg):
    rng = np.random.default_rng(0)

    def mixed(truth, labels):  # annotators 0 and 1 get the true class, 2 and 3 noise
        return np.concatenate([np.repeat(truth[:, None], 2, 1), rng.integers(0, 3, (len(truth), 2))], 1)

    grid, _ = study_grid(tmp_path, predict={"heads": (mixed, 0.2), "madl": (lambda t, lab: (lab + 4) % 3, 0.6)})
    lines = tendency.tendency(grid).splitlines()
    broadcasts, owns = [], []
    for seed in (0, 1):
        arrays = dict(np.load(grid / "runs" / "heads" / "skip" / "mr0.0" / f"seed{seed}" / "predictions.npz"))
        test = arrays["split"] == 2
        broadcasts.append(naive_avg(_naive_consensus(arrays["prediction"]), arrays["labels"], test))
        owns.append(naive_avg(arrays["prediction"], arrays["labels"], test))
    heads = lines[4].split(" | ")
    assert heads[:2] == ["| 0", "heads"] and heads[4:] == ["–", "–", "–", "– |"]
    assert heads[2] == f"{np.mean(broadcasts):.1f} ± {np.std(broadcasts, ddof=1):.1f}"
    assert heads[3].startswith(f"{np.mean(broadcasts) - np.mean(owns):+.1f} ± ")
    madl = lines[5].split(" | ")  # a different label per annotator: its broadcast is not its prediction
    assert madl[:2] == ["| 0", "madl"] and not madl[3].startswith("+0.0 ± 0.0")
    counts = lines[-1].split(" | ")
    madl_avgs = []
    for seed in (0, 1):
        arrays = dict(np.load(grid / "runs" / "madl" / "skip" / "mr0.0" / f"seed{seed}" / "predictions.npz"))
        madl_avgs.append(naive_avg(arrays["prediction"], arrays["labels"], arrays["split"] == 2))
    assert counts[:3] == ["| 0", "madl", f"{np.mean(madl_avgs):.1f} ± {np.std(madl_avgs, ddof=1):.1f}"]
    assert len(counts) == 12 and lines[-3].count("|") == 13
