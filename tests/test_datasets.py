"""CrowdDataset, the split / missing-label protocol (ALGORITHM.md §6) and the built-in dataset plugins."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from simlabel_ext.data import (
    CrowdDataset,
    Split,
    from_arrays,
    make_dataset,
    simulate_missing,
    split_items,
    standardize,
    write_long,
)
from simlabel_ext.models import InputSpec
from simlabel_ext.registry import Registry
from simlabel_ext.similarity import SimilarityEngine

MUSIC_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "music_genre"
SENTIMENT_DIR = MUSIC_DIR.parent / "sentiment_polarity"

# The paper's Table 1: labels per annotator (the missing rates in % follow as 1 - count / N).
AMER2_MISSING = [76.4, 76.7, 91.3, 75.9, 78.7, 76.4, 85.0, 76.5, 76.5, 76.4]
AMER_MISSING = [79.0, 80.2, 80.4, 80.1, 80.6, 81.4, 79.6, 79.9, 79.6, 79.6, 0.4, 0.2, 0.1]


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The built-in dataset plugins, registered directly (no dependence on installed entry points)."""
    from simlabel_plugins.datasets import crowd_csv, music, sentiment, synthetic

    reg = Registry()
    for module in (synthetic, crowd_csv, music, sentiment):
        reg.register(module, distribution="simlabel")
    return reg


def features_spec(d: int) -> InputSpec:
    return InputSpec("features", (d,))


# ------------------------------------------------------------------------------------------------- split


@pytest.mark.parametrize(
    "n, sizes",
    [(700, (490, 105, 105)), (2311, (1617, 346, 348)), (5207, (3644, 781, 782)), (10, (7, 1, 2)), (0, (0, 0, 0))],
)
def test_split_sizes_are_floor_of_fractions_with_the_rest_in_test(n, sizes):
    split = split_items(n, seed=0)
    assert split.sizes() == sizes
    everything = torch.cat([split.train, split.val, split.test]).sort().values
    assert torch.equal(everything, torch.arange(n))
    for part in (split.train, split.val, split.test):
        assert torch.equal(part, part.sort().values)


def test_split_is_seeded():
    a, b, c = split_items(100, 3), split_items(100, 3), split_items(100, 4)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.train, c.train)


def test_split_custom_fractions_and_bad_fractions():
    assert split_items(20, 0, (0.5, 0.25, 0.25)).sizes() == (10, 5, 5)
    with pytest.raises(ValueError, match="summing to 1"):
        split_items(20, 0, (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="non-negative int"):
        split_items(20, -1)


def test_split_check_names_the_problem():
    t = torch.tensor
    with pytest.raises(ValueError, match="item 1 is in both split.train and split.test"):
        Split(t([0, 1]), t([2]), t([1, 3])).check(4)
    with pytest.raises(ValueError, match="1 item\\(s\\) are in no split part, the first is item 3"):
        Split(t([0, 1]), t([2]), t([], dtype=torch.int64)).check(4)
    with pytest.raises(ValueError, match="appears twice in split.val"):
        Split(t([0]), t([1, 1]), t([2, 3])).check(4)
    with pytest.raises(ValueError, match="outside 0..3"):
        Split(t([0, 4]), t([1]), t([2, 3])).check(4)


# ------------------------------------------------------------------------------------------------- missing


@pytest.fixture(scope="module")
def dense_matrix():
    """2,000 items x 5 annotators, about 10 % of the entries missing."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2000, 5), generator=g)
    labels[torch.rand(2000, 5, generator=g) < 0.1] = -1
    return from_arrays(labels, class_names=["a", "b", "c", "d"])


def test_simulate_missing_removes_only_training_labels_at_the_rate(dense_matrix):
    split = split_items(dense_matrix.num_items, seed=0)
    new, removed = simulate_missing(dense_matrix, split.train, rate=0.3, seed=7)
    old = dense_matrix.labels
    assert removed.dtype == torch.bool and removed.shape == old.shape
    assert not (removed & ~dense_matrix.mask).any()                      # removed ⊆ observed
    not_train = torch.ones(len(old), dtype=torch.bool)
    not_train[split.train] = False
    assert not removed[not_train].any()                                   # validation / test untouched
    assert torch.equal(new.labels[not_train], old[not_train])
    assert (new.labels[removed] == -1).all()
    assert torch.equal(new.labels[~removed], old[~removed])               # nothing else changed
    assert new.item_ids == dense_matrix.item_ids and new.class_names == dense_matrix.class_names
    train_labels = int(dense_matrix.mask[split.train].sum())              # about 1400 * 5 * 0.9 = 6300
    rate = int(removed.sum()) / train_labels
    assert abs(rate - 0.3) < 0.02                                         # 3.5 binomial standard deviations


def test_simulate_missing_is_seeded_and_independent_of_train_order(dense_matrix):
    train = split_items(dense_matrix.num_items, seed=0).train
    _, r1 = simulate_missing(dense_matrix, train, 0.2, seed=1)
    _, r2 = simulate_missing(dense_matrix, train[torch.randperm(len(train))], 0.2, seed=1)
    _, r3 = simulate_missing(dense_matrix, train, 0.2, seed=2)
    assert torch.equal(r1, r2)
    assert not torch.equal(r1, r3)


def test_simulate_missing_extremes_and_bad_rate(dense_matrix):
    train = split_items(dense_matrix.num_items, seed=0).train
    same, none = simulate_missing(dense_matrix, train, 0.0, seed=0)
    assert not none.any() and same == dense_matrix
    emptied, everything = simulate_missing(dense_matrix, train, 1.0, seed=0)
    assert torch.equal(everything[train], dense_matrix.mask[train])
    assert emptied.num_labels == dense_matrix.num_labels - int(dense_matrix.mask[train].sum())
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        simulate_missing(dense_matrix, train, 1.5, seed=0)


# ------------------------------------------------------------------------------------------------- dataset


def small_dataset(**overrides) -> CrowdDataset:
    matrix = from_arrays([[0, 1], [1, -1], [-1, 1], [0, 0]])
    fields = dict(
        inputs=torch.zeros(4, 3),
        input_spec=features_spec(3),
        annotations=matrix,
        truth=torch.tensor([0, 1, -1, 0]),
        split=Split(torch.tensor([0, 1]), torch.tensor([2]), torch.tensor([3])),
    )
    fields.update(overrides)
    return CrowdDataset(**fields)


def test_crowd_dataset_accepts_a_valid_dataset():
    ds = small_dataset()
    assert (ds.num_items, ds.num_annotators, ds.num_classes) == (4, 2, 2)
    images = small_dataset(inputs=torch.zeros(4, 1, 5, 6), input_spec=InputSpec("image", (1, 5, 6)))
    assert images.inputs.shape == (4, 1, 5, 6)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(inputs=torch.zeros(3, 3)), "3 rows but the annotations have 4 items"),
        (dict(inputs=torch.zeros(4, 2)), r"input_spec says \[N, 3\]"),
        (dict(inputs=torch.zeros(4, 3, dtype=torch.float64)), "float32"),
        (dict(truth=torch.tensor([0, 1, 2, 0])), r"truth\[2\] = 2 is outside 0..1"),
        (dict(truth=torch.tensor([0, 1])), "shape \\(4,\\)"),
        (dict(split=Split(torch.tensor([0, 1]), torch.tensor([1]), torch.tensor([3]))), "in both"),
        (dict(split=Split(torch.tensor([0, 1]), torch.tensor([2]), torch.tensor([], dtype=torch.int64))), "no split"),
    ],
)
def test_crowd_dataset_rejects_inconsistent_parts(overrides, message):
    with pytest.raises(ValueError, match=message):
        small_dataset(**overrides)


def test_crowd_dataset_names_the_first_non_finite_row():
    x = torch.zeros(4, 3)
    x[2, 1] = float("nan")
    x[3, 0] = float("inf")
    with pytest.raises(ValueError, match="2 row\\(s\\); the first is row 2 \\(item '2'\\)"):
        small_dataset(inputs=x)


def test_crowd_dataset_checks_removed_labels():
    original = from_arrays([[0, 1], [1, 0], [-1, 1], [0, 0]])
    ok = original.labels.clone()
    ok[1, 1] = -1
    removed = torch.zeros(4, 2, dtype=torch.bool)
    removed[1, 1] = True
    ds = small_dataset(annotations=from_arrays(ok), removed=removed, original=original)
    assert int(ds.removed.sum()) == 1
    outside = torch.zeros(4, 2, dtype=torch.bool)
    outside[3, 0] = True
    labels = original.labels.clone()
    labels[3, 0] = -1
    with pytest.raises(ValueError, match="item 3 is not a training item"):
        small_dataset(annotations=from_arrays(labels), removed=outside, original=original)
    with pytest.raises(ValueError, match="exactly the removed labels"):
        small_dataset(annotations=original, removed=removed, original=original)
    with pytest.raises(ValueError, match="together"):
        small_dataset(removed=removed)


def test_hidden_labels_are_the_removed_or_the_simulated_ones():
    # matrix [[0, 1], [1, -1], [-1, 1], [0, 0]]; items 0, 1 train
    assert (small_dataset().hidden_labels == -1).all()                       # real data, nothing removed
    complete = torch.tensor([[0, 1], [1, 0], [1, 1], [0, 0]])
    ds = small_dataset(complete=complete)
    assert ds.hidden_labels.tolist() == [[-1, -1], [-1, 0], [1, -1], [-1, -1]]
    original = from_arrays([[0, 1], [1, 1], [-1, 1], [0, 0]])
    removed = torch.zeros(4, 2, dtype=torch.bool)
    removed[1, 1] = True
    ds = small_dataset(removed=removed, original=original)
    assert ds.hidden_labels.tolist() == [[-1, -1], [-1, 1], [-1, -1], [-1, -1]]


@pytest.mark.parametrize("complete, message", [
    (torch.zeros(4, 3, dtype=torch.int64), r"complete must be an int64 tensor of shape \(4, 2\)"),
    (torch.zeros(4, 2, dtype=torch.int32), "int64"),
    (torch.tensor([[0, 1], [1, 2], [0, 1], [0, 0]]), r"complete\[1, 1\] = 2 is outside 0..1"),
    (torch.tensor([[0, 1], [0, 0], [0, 1], [0, 0]]), r"complete\[1, 0\] = 0 differs from the observed label 1"),
])
def test_complete_labels_are_checked(complete, message):
    with pytest.raises(ValueError, match=message):
        small_dataset(complete=complete)


def test_standardize_uses_training_rows_only():
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0], [100.0, 7.0]])
    z = standardize(x, torch.tensor([0, 1]))
    assert z.dtype == torch.float32
    assert torch.allclose(z[:2, 0], torch.tensor([-1.0, 1.0]))
    assert z[2, 0] == pytest.approx(98.0)                                 # (100 - 2) / 1: test row not used
    assert torch.allclose(z[:, 1], torch.tensor([0.0, 0.0, 2.0]))         # constant on train: only centred


def test_make_dataset_splits_removes_and_keeps_the_original(dense_matrix):
    x = torch.randn(dense_matrix.num_items, 3)
    ds = make_dataset(x, features_spec(3), dense_matrix, seed=5, missing_rate=0.4)
    assert ds.split.sizes() == (1400, 300, 300)
    assert ds.original == dense_matrix
    assert ds.annotations.num_labels == dense_matrix.num_labels - int(ds.removed.sum())
    plain = make_dataset(x, features_spec(3), dense_matrix, seed=5)
    assert plain.removed is None and plain.original is None
    assert torch.equal(plain.split.train, ds.split.train)


# ------------------------------------------------------------------------------------------------- synthetic


def kappa_groups(ds: CrowdDataset, groups: list[int]) -> tuple[float, float]:
    """Mean within-group and between-group kappa over the annotator pairs where kappa is defined."""
    kappa = SimilarityEngine(ds.annotations.labels, ds.num_classes).kappa()
    same = torch.tensor(groups)[:, None] == torch.tensor(groups)[None, :]
    off = ~torch.eye(len(groups), dtype=torch.bool)
    defined = ~kappa.isnan()
    return float(kappa[same & off & defined].mean()), float(kappa[~same & defined].mean())


@pytest.mark.parametrize(
    "preset, n, c, table", [("amer2-like", 2311, 8, AMER2_MISSING), ("amer-like", 5207, 8, AMER_MISSING)]
)
def test_synthetic_presets_match_table_1_and_show_groups(registry, preset, n, c, table):
    from simlabel_plugins.datasets.synthetic import annotator_groups

    start = time.perf_counter()
    ds = registry.load_dataset("synthetic", preset=preset, seed=0)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0                                                  # about 0.1-0.3 s; generous for CI
    assert (ds.num_items, ds.num_annotators, ds.num_classes) == (n, len(table), c)
    summary = ds.annotations.summary()
    rates = np.array(summary.missing_rate_per_annotator) * 100
    assert np.abs(rates - np.array(table)).max() < 1.0
    assert ds.split.sizes() == split_items(n, 0).sizes()
    assert ds.truth is not None and (ds.truth >= 0).all()
    within, between = kappa_groups(ds, annotator_groups(ds.num_annotators, 2))
    assert within > between + 0.05, (within, between)


def test_synthetic_amer2_overall_missing_rate_is_79_percent(registry):
    ds = registry.load_dataset("synthetic")                              # the default preset
    assert ds.num_items == 2311
    assert 100 * ds.annotations.summary().missing_rate == pytest.approx(79.0, abs=0.05)


def test_synthetic_complete_labels_hold_the_sampled_ones_and_follow_the_confusions(registry):
    ds = registry.load_dataset("synthetic", preset="amer2-like", seed=3, missing_rate=0.3)
    full, real = ds.complete, ds.original.labels
    assert full is not None and full.shape == real.shape and (full >= 0).all()
    assert torch.equal(full[real >= 0], real[real >= 0])
    # the unsampled entries are as accurate as the sampled ones (the same draw): within 2 points
    truth = ds.truth.unsqueeze(1).expand_as(full)
    seen, unseen = real >= 0, real < 0
    assert abs(float((full[seen] == truth[seen]).double().mean())
               - float((full[unseen] == truth[unseen]).double().mean())) < 0.02
    hidden = ds.hidden_labels
    assert torch.equal(hidden >= 0, ds.annotations.labels < 0)              # every missing entry is known


def test_synthetic_features_are_informative(registry):
    ds = registry.load_dataset("synthetic", seed=1)
    train, test = ds.split.train, ds.split.test
    centroids = torch.stack([ds.inputs[train][ds.truth[train] == k].mean(0) for k in range(ds.num_classes)])
    predicted = torch.cdist(ds.inputs[test], centroids).argmin(1)
    assert (predicted == ds.truth[test]).float().mean() > 0.6            # chance is 1/8


def test_synthetic_is_seeded(registry):
    a, b = registry.load_dataset("synthetic", seed=3), registry.load_dataset("synthetic", seed=3)
    c = registry.load_dataset("synthetic", seed=4)
    assert a.annotations == b.annotations and torch.equal(a.inputs, b.inputs)
    assert a.annotations != c.annotations


def test_synthetic_custom_preset(registry):
    ds = registry.load_dataset(
        "synthetic", preset="custom", items="300", annotators=5, classes=3, missing=0.5, groups=1, dim=4
    )
    assert (ds.num_items, ds.num_annotators, ds.num_classes, ds.inputs.shape[1]) == (300, 5, 3, 4)
    rates = ds.annotations.summary().missing_rate_per_annotator
    assert rates == pytest.approx([0.4, 0.45, 0.5, 0.55, 0.6], abs=1 / 300)
    with pytest.raises(ValueError, match="applies to preset=custom only"):
        registry.load_dataset("synthetic", items=300)
    with pytest.raises(ValueError, match="^dataset 'synthetic': option 'preset' must be one of amer2-like, amer-like, "
                                         "custom; got 'amer3'$"):
        registry.load_dataset("synthetic", preset="amer3")
    for option, value, bound in [("items", 0, "be >= 1"), ("annotators", 0, "be >= 1"), ("classes", 1, "be >= 2"),
                                 ("missing", 1.0, r"lie in \[0, 1\)"), ("dim", 0, "be >= 1"),
                                 ("separation", -0.5, "be >= 0"), ("accuracy", 0.0, r"lie in \(0, 1\]"),
                                 ("tendency", 1.5, r"lie in \[0, 1\]"), ("groups", 0, "be >= 1"),
                                 ("seed", -1, "be >= 0"), ("missing_rate", 1.0, r"lie in \[0, 1\)")]:
        extra = {"preset": "custom"} if option in ("items", "annotators", "classes", "missing") else {}
        with pytest.raises(ValueError, match=rf"^dataset 'synthetic': option '{option}' must {bound}; got {value}"):
            registry.load_dataset("synthetic", **extra, **{option: value})
    with pytest.raises(ValueError, match="groups must be in 1..5"):
        registry.load_dataset("synthetic", preset="custom", annotators=5, groups=6)


def test_synthetic_missing_rate_option_removes_training_labels(registry):
    base = registry.load_dataset("synthetic", seed=2)
    ds = registry.load_dataset("synthetic", seed=2, missing_rate=0.3)
    assert ds.original == base.annotations
    assert not ds.removed[torch.cat([ds.split.val, ds.split.test])].any()
    train_labels = int(base.annotations.mask[ds.split.train].sum())
    assert int(ds.removed.sum()) / train_labels == pytest.approx(0.3, abs=0.03)


# ------------------------------------------------------------------------------------------------- crowd-csv


@pytest.fixture()
def crowd_files(tmp_path):
    """A 30 x 4 annotation file written by write_long, features (shuffled, one extra task), and truth."""
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 3, (30, 4), generator=g)
    labels[torch.rand(30, 4, generator=g) < 0.5] = -1
    labels[:, 0] = torch.randint(0, 3, (30,), generator=g)                # every item has a label
    matrix = from_arrays(labels, item_ids=[f"t{i}" for i in range(30)], annotator_ids=list("pqrs"),
                         class_names=["cat", "dog", "eel"])
    write_long(matrix, tmp_path / "answers.csv")
    x = torch.randn(30, 3, generator=g).double()
    rows = [f"t{i}," + ",".join(repr(v) for v in x[i].tolist()) for i in reversed(range(30))]
    (tmp_path / "features.csv").write_text("task,f1,f2,f3\n" + "\n".join(rows + ["extra,1,2,3"]) + "\n")
    truth = torch.randint(0, 3, (30,), generator=g)
    (tmp_path / "truth.csv").write_text(
        "task,label\n" + "".join(f"t{i},{matrix.class_names[int(truth[i])]}\n" for i in range(0, 30, 2))
    )
    return tmp_path, matrix, x.float(), truth


def test_crowd_csv_round_trips_a_file_written_by_the_data_module(registry, crowd_files):
    folder, matrix, x, truth = crowd_files
    ds = registry.load_dataset(
        "crowd-csv", labels=str(folder / "answers.csv"), features=str(folder / "features.csv"),
        truth=str(folder / "truth.csv"), classes="cat,dog,eel",
    )
    assert ds.annotations == matrix
    assert torch.equal(ds.inputs, x)
    expected = torch.full((30,), -1, dtype=torch.int64)
    expected[::2] = truth[::2]
    assert torch.equal(ds.truth, expected)
    assert ds.input_spec == InputSpec("features", (3,))
    assert ds.split.sizes() == (21, 4, 5)


def test_crowd_csv_reads_npz_and_parquet_features(registry, crowd_files):
    folder, matrix, x, _ = crowd_files
    np.savez(folder / "features.npz", task=np.array([f"t{i}" for i in range(30)]), features=x.numpy())
    ds = registry.load_dataset("crowd-csv", labels=str(folder / "answers.csv"), features=str(folder / "features.npz"))
    assert torch.equal(ds.inputs, x) and ds.truth is None
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"task": [f"t{i}" for i in range(30)], **{f"f{j}": x[:, j].tolist() for j in range(3)}})
    pq.write_table(table, folder / "features.parquet")
    ds = registry.load_dataset(
        "crowd-csv", labels=str(folder / "answers.csv"), features=str(folder / "features.parquet"), standardize=True
    )
    train = ds.inputs[ds.split.train]
    assert torch.allclose(train.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(train.std(0, unbiased=False), torch.ones(3), atol=1e-5)


def test_crowd_csv_errors(registry, crowd_files, tmp_path):
    folder, *_ = crowd_files
    answers = str(folder / "answers.csv")
    lines = (folder / "features.csv").read_text().splitlines()

    def load_with_features(text: str, **extra):
        path = tmp_path / "bad_features.csv"
        path.write_text(text)
        return registry.load_dataset("crowd-csv", labels=answers, features=str(path), **extra)

    kept = [row for row in lines[1:] if row.split(",")[0] not in {"t3", "t4", "t10", "t11", "t12", "t20", "t21"}]
    first_five = "7 labelled task\\(s\\) have no features: 't3', 't4', 't10', 't11', 't12', \\.\\.\\.$"
    with pytest.raises(ValueError, match=first_five):
        load_with_features("\n".join([lines[0], *kept]))
    with pytest.raises(ValueError, match="1 labelled task\\(s\\) have no features: 't3'$"):
        load_with_features("\n".join([lines[0], *[row for row in lines[1:] if row.split(",")[0] != "t3"]]))
    bad = [lines[0], *lines[1:]]
    bad[5] = bad[5].split(",")[0] + ",1.0,nan,2.0"
    with pytest.raises(ValueError, match=f"task '{bad[5].split(',')[0]}', column 'f2': non-finite value nan"):
        load_with_features("\n".join(bad))
    bad[5] = bad[5].split(",")[0] + ",1.0,abc,2.0"
    with pytest.raises(ValueError, match="line 6: task 't\\d+', column 'f2': 'abc' is not a number"):
        load_with_features("\n".join(bad))
    with pytest.raises(ValueError, match="more than one feature row"):
        load_with_features("\n".join([*lines, lines[1]]))
    with pytest.raises(ValueError, match="exactly one column 'task'; its columns are \\['id', 'f1', 'f2', 'f3'\\]"):
        load_with_features("\n".join(["id,f1,f2,f3", *lines[1:]]))
    twice = "bad_features.csv, line 1: column 'f2' appears more than once \\(fields \\[3, 4\\]\\)$"
    with pytest.raises(ValueError, match=twice):
        load_with_features("\n".join(["task,f1,f2,f2", *lines[1:]]))
    (tmp_path / "truth.csv").write_text("task,label\nt0,fish\n")
    with pytest.raises(ValueError, match="true label 'fish' is not one of the classes"):
        registry.load_dataset("crowd-csv", labels=answers, features=str(folder / "features.csv"),
                              truth=str(tmp_path / "truth.csv"))
    with pytest.raises(ValueError, match="needs the option 'features'"):
        registry.load_dataset("crowd-csv", labels=answers)


# ------------------------------------------------------------------------------------------------- music


@pytest.mark.skipif(not MUSIC_DIR.is_dir(), reason=f"music_genre data not found at {MUSIC_DIR}")
def test_music_loads_the_original_files(registry):
    ds = registry.load_dataset("music", data_dir=str(MUSIC_DIR))
    summary = ds.annotations.summary()
    assert (ds.num_items, ds.num_annotators, ds.num_classes) == (700, 44, 10)
    assert summary.num_labels == 2945
    assert 100 * summary.missing_rate == pytest.approx(90.4, abs=0.05)
    assert ds.annotations.class_names[0] == "blues" and ds.annotations.class_names[-1] == "rock"
    assert ds.inputs.shape == (700, 124) and ds.input_spec == InputSpec("features", (124,))
    assert (ds.truth >= 0).all()
    assert ds.split.sizes() == (490, 105, 105)
    train = ds.inputs[ds.split.train].double()
    assert torch.allclose(train.mean(0), torch.zeros(124, dtype=torch.float64), atol=1e-5)
    std = train.std(0, unbiased=False)
    assert (((std - 1).abs() < 1e-4) | (std < 1e-12)).all()               # 1, or 0 for a constant feature
    # Annotation accuracy against gold is 56 % (data/README.md).
    labelled = ds.annotations.mask
    agree = (ds.annotations.labels == ds.truth[:, None]) & labelled
    assert float(agree.sum()) / float(labelled.sum()) == pytest.approx(0.56, abs=0.01)
    raw = registry.load_dataset("music", data_dir=str(MUSIC_DIR), standardize=False)
    assert raw.inputs[:, 4].min() < -40                                    # the raw scale is kept


@pytest.mark.skipif(not SENTIMENT_DIR.is_dir(), reason=f"sentiment_polarity data not found at {SENTIMENT_DIR}")
def test_sentiment_is_the_crowd_csv_layout_in_one_flag(registry):
    ds = registry.load_dataset("sentiment", data_dir=str(SENTIMENT_DIR), seed=2)
    summary = ds.annotations.summary()
    assert (ds.num_items, ds.num_annotators, ds.num_classes) == (4999, 203, 2)     # data/README.md
    assert summary.num_labels == 27746 and ds.annotations.class_names == ("neg", "pos")
    assert ds.inputs.shape == (4999, 256) and (ds.truth >= 0).all()
    labelled = ds.annotations.mask
    agree = (ds.annotations.labels == ds.truth[:, None]) & labelled
    assert float(agree.sum()) / float(labelled.sum()) == pytest.approx(0.79, abs=0.03)
    same = registry.load_dataset("crowd-csv", labels=str(SENTIMENT_DIR / "labels.csv"),
                                 features=str(SENTIMENT_DIR / "features.npz"), truth=str(SENTIMENT_DIR / "truth.csv"),
                                 classes="neg,pos", seed=2)
    assert torch.equal(ds.annotations.labels, same.annotations.labels) and torch.equal(ds.inputs, same.inputs)
    assert torch.equal(ds.split.test, same.split.test) and torch.equal(ds.truth, same.truth)


def test_sentiment_requires_its_folder(registry, tmp_path):
    with pytest.raises(ValueError, match="needs the option 'data_dir'"):
        registry.load_dataset("sentiment")
    with pytest.raises(ValueError, match=r"labels.csv not found \(data_dir must hold labels.csv"):
        registry.load_dataset("sentiment", data_dir=str(tmp_path))


def test_music_requires_its_folder(registry, tmp_path):
    with pytest.raises(ValueError, match="needs the option 'data_dir'"):
        registry.load_dataset("music")
    with pytest.raises(FileNotFoundError, match="music_genre_mturk.csv does not exist"):
        registry.load_dataset("music", data_dir=str(tmp_path))
