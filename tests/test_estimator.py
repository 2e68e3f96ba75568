"""The estimator ``SimLabel``: one code path with ``simlabel train``, every input format, predictions against
hand-computed values, save / load, ``simlabel predict``, and one clear error for each kind of bad input.

Oracles: the trainer's own run directory (metrics.json, history.json, imputed_labels.csv, model.pt) for the same
plugin, config and seed; per-annotator accuracies counted entry by entry; softmax of the model's own logits;
scikit-learn's ``clone``; a real malicious pickle (a marker file that must not appear).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from simlabel_ext import SimLabel
from simlabel_ext.cli import main
from simlabel_ext.data import AnnotationMatrix
from simlabel_ext.fitted import MODEL_FORMAT_VERSION, FittedModel
from simlabel_ext.storage import json_safe
from simlabel_ext.train import TrainConfig, load_run_dataset

MUSIC_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "music_genre"
needs_music = pytest.mark.skipif(not MUSIC_DIR.is_dir(), reason=f"music_genre data not found at {MUSIC_DIR}")

#: small and fast, and imputing from the first epochs (threshold 0.3)
FAST = dict(model_options={"hidden": 16, "depth": 1}, epochs=4, lr=3e-3, threshold=0.3, progress=False,
            device="cpu")


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """One intra-op thread, like the OMP_NUM_THREADS=1 CI and the `simlabel train` it is compared with."""


def crowd(seed: int = 0, n: int = 60, a: int = 5, c: int = 3, d: int = 4, missing: float = 0.5):
    """A small crowd with integer ids: features [n, d] and a long table (task, worker, label) of the labels
    annotator j gives item i: its true class, except annotator 0 who shifts it by one."""
    g = np.random.default_rng(seed)
    truth = g.integers(0, c, n)
    x = g.normal(size=(n, d)) + 2.0 * np.eye(c, d)[truth]
    rows = [(i, j, int((truth[i] + (j == 0)) % c)) for i in range(n) for j in range(a) if g.random() > missing]
    return x.astype(np.float32), pd.DataFrame(rows, columns=["task", "worker", "label"]), truth


# ---------------------------------------------------------------------------------------------- one code path
@needs_music
def test_fit_on_a_plugins_split_is_simlabel_train(tmp_path, capsys):
    """SimLabel.fit on the music plugin's training + validation items (raw features read with pandas), given its
    validation split, trains exactly what `simlabel train` trains on the same plugin, config and seed: the same
    feature scaling, epochs (validation loss and Avg), imputed labels and weights; the per-annotator validation
    accuracies of both models agree, and `score` on the test items is the trainer's own test metrics."""
    run = tmp_path / "run"
    argv = ["train", "--dataset", "music", "--data-dir", str(MUSIC_DIR), "--model-option", "hidden=16",
            "--model-option", "depth=1", "--epochs", "5", "--lr", "0.1", "--threshold", "0.3", "--no-progress",
            "--device", "cpu", "--out", str(run)]
    assert main(argv) == 0
    capsys.readouterr()
    data = load_run_dataset(TrainConfig(dataset="music", dataset_options={"data_dir": str(MUSIC_DIR)}))
    ann, split = data.annotations, data.split
    keep = torch.cat([split.train, split.val]).sort().values

    def rows(index):
        return AnnotationMatrix(ann.labels[index], [ann.item_ids[i] for i in index.tolist()], ann.annotator_ids,
                                ann.class_names)

    # the raw features, as a user reads them (the plugin's inputs are standardised with training statistics;
    # the estimator standardises its training items, the same items)
    mturk = pd.read_csv(MUSIC_DIR / "music_genre_mturk.csv")
    raw = mturk.groupby("id", sort=False)[[c for c in mturk.columns if c.startswith("feature")]].first()

    def features(index):
        return raw.loc[[ann.item_ids[i] for i in index.tolist()]]

    est = SimLabel(**{**FAST, "epochs": 5, "lr": 0.1}).fit(raw, rows(keep),
                                                           validation=[ann.item_ids[i] for i in split.val.tolist()])
    assert torch.equal(est.model_.scaling.mean, data.scaling.mean) and torch.equal(est.model_.scaling.std,
                                                                                     data.scaling.std)

    history = json.loads((run / "history.json").read_text())
    assert len(history) == len(est.history_) == 5
    for saved, mine in zip(history, est.history_.to_dict("records")):
        mine = json_safe(mine)  # as JSON writes it: NaN is null
        assert {k: v for k, v in saved.items() if k != "seconds"} == {k: v for k, v in mine.items() if k != "seconds"}
    assert history[-1]["imputed"] > 100  # the comparison covers confidence cycling
    imputed = pd.read_csv(run / "imputed_labels.csv", dtype=str, keep_default_na=False)
    mine = est.imputed_labels_
    assert len(imputed) == len(mine) == history[-1]["imputed"]
    for column in ("task", "worker", "label", "epoch", "step", "revisions"):
        assert imputed[column].tolist() == mine[column].astype(str).tolist(), column
    assert np.allclose(imputed["confidence"].astype(float), mine["confidence"], atol=5e-7)

    metrics = json.loads((run / "metrics.json").read_text())
    assert est.best_epoch_ == metrics["best_epoch"]
    trained = SimLabel.load(run)
    for name, value in trained.model_.model.state_dict().items():
        assert torch.equal(value, est.model_.model.state_dict()[name]), name
    # per-annotator validation accuracies (and their mean: the history's best-epoch Avg) are the same
    val_est = est.score(features(split.val), rows(split.val))
    assert val_est == trained.score(features(split.val), rows(split.val))
    assert val_est["avg_accuracy"] == metrics["best_val_avg_accuracy"]
    assert val_est["micro_accuracy"] == metrics["best_val_micro_accuracy"]
    # the paper's metric on the test items is the trainer's own
    test = est.score(features(split.test), rows(split.test))
    for key in ("avg_accuracy", "micro_accuracy", "annotators_with_test_labels", "test_labels"):
        assert test[key] == metrics[key], key
    assert test["annotators"] == [{k: row[k] for k in ("id", "accuracy", "test_count")} for row in metrics["annotators"]]


# ---------------------------------------------------------------------------------------------- formats
def test_long_table_with_integer_ids_round_trips_its_ids(tmp_path):
    x, answers, _ = crowd()
    est = SimLabel(**FAST).fit(x, answers)  # row k of X is task k
    assert est.annotators_.tolist() == [0, 1, 2, 3, 4] and est.classes_.tolist() == [0, 1, 2]
    assert est.kappa_.before.shape == (5, 5) and est.kappa_.before.index.tolist() == [0, 1, 2, 3, 4]
    assert set(est.imputed_labels_.columns) == {"task", "worker", "label", "confidence", "epoch", "step", "revisions"}
    if len(est.imputed_labels_):
        assert est.imputed_labels_["worker"].map(type).eq(int).all()
    long = est.predict(x[:3])
    assert long.columns.tolist() == ["task", "worker", "label", "probability"]
    assert long["task"].tolist() == [0] * 5 + [1] * 5 + [2] * 5 and long["worker"].tolist()[:5] == [0, 1, 2, 3, 4]
    est.save(tmp_path / "m.pt")
    back = SimLabel.load(tmp_path / "m.pt")
    assert back.annotators_.tolist() == [0, 1, 2, 3, 4] and back.predict(x[:3]).equals(long)
    assert back.get_params()["lr"] == est.lr and back.best_epoch_ == est.best_epoch_


def test_predictions_are_the_models_own_softmax_and_argmax():
    x, answers, _ = crowd(1)
    est = SimLabel(**FAST).fit(x, answers)
    with torch.no_grad():
        logits = est.model_.model(est.model_.scaling.apply(torch.from_numpy(x))).logits
    proba = est.predict_proba(x)
    np.testing.assert_allclose(proba, logits.softmax(-1).numpy(), rtol=0, atol=2e-7)
    wide = est.predict(x, format="wide")
    assert wide.index.name == "task" and wide.columns.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(wide.to_numpy(dtype=np.int64), logits.argmax(-1).numpy())
    long = est.predict(x, workers=[3, 1])
    assert long["worker"].tolist()[:2] == [3, 1]
    chosen = logits.argmax(-1)[:, [3, 1]]
    assert long["label"].tolist() == chosen.reshape(-1).tolist()
    expected = logits.softmax(-1)[:, [3, 1]].gather(-1, chosen.unsqueeze(-1)).reshape(-1).numpy()
    np.testing.assert_allclose(long["probability"].to_numpy(), expected, rtol=0, atol=2e-7)
    np.testing.assert_array_equal(long["probability"].to_numpy(), proba[:, [3, 1]].max(-1).reshape(-1))


def test_score_counts_entry_by_entry():
    x, answers, _ = crowd(2)
    est = SimLabel(**FAST).fit(x, answers)
    held_x, held, _ = crowd(3, n=40)
    score = est.score(held_x, held)
    predicted = est.predict(held_x, format="wide")
    correct, count = {w: 0 for w in range(5)}, {w: 0 for w in range(5)}
    for task, worker, label in held.itertuples(index=False):
        count[worker] += 1
        correct[worker] += int(predicted.loc[task, worker] == label)
    assert [row["id"] for row in score["annotators"]] == list(range(5))
    for row in score["annotators"]:
        assert row["test_count"] == count[row["id"]]
        assert row["accuracy"] == correct[row["id"]] / count[row["id"]]
    assert score["avg_accuracy"] == pytest.approx(np.mean([correct[w] / count[w] for w in range(5)]), abs=1e-15)
    assert score["micro_accuracy"] == sum(correct.values()) / sum(count.values())
    assert score["test_labels"] == len(held) and score["annotators_with_test_labels"] == 5


def test_wide_arrays_tensors_and_matrices_give_the_same_model():
    x, answers, _ = crowd(4)
    wide = np.full((60, 5), -1)
    wide[answers["task"], answers["worker"]] = answers["label"]
    runs = [SimLabel(**FAST).fit(x, answers), SimLabel(**FAST).fit(torch.from_numpy(x), wide),
            SimLabel(**FAST).fit(x, torch.from_numpy(wide)),
            SimLabel(**FAST).fit(pd.DataFrame(x, index=range(60)), answers)]
    first = runs[0].predict_proba(x)
    for est in runs[1:]:
        np.testing.assert_array_equal(est.predict_proba(x), first)
    assert runs[3].feature_names_in_.tolist() == ["0", "1", "2", "3"]


def test_items_without_labels_are_left_out_and_tasks_map_rows():
    x, answers, _ = crowd(5)
    order = np.random.default_rng(0).permutation(60)
    reference = SimLabel(**FAST).fit(x, answers)
    shuffled = SimLabel(**FAST).fit(x[order], answers, tasks=order.tolist())
    np.testing.assert_array_equal(shuffled.predict_proba(x), reference.predict_proba(x))
    # a wide array with an extra unlabelled row: the row takes no part (same model)
    wide = np.full((61, 5), -1)
    wide[answers["task"], answers["worker"]] = answers["label"]
    extra = SimLabel(**FAST).fit(np.vstack([x, np.zeros((1, 4), np.float32)]), wide)
    np.testing.assert_array_equal(extra.predict_proba(x), reference.predict_proba(x))


def test_validation_split_and_parameters():
    x, answers, _ = crowd(6)
    est = SimLabel(validation_fraction=0.25, **FAST).fit(x, answers)
    assert est.history_["val_avg"].notna().all()
    none = SimLabel(validation_fraction=0.0, **FAST).fit(x, answers)  # no validation: the last epoch is best
    assert none.best_epoch_ == FAST["epochs"] and none.history_["val_loss"].isna().all()
    assert none.history_.index.tolist() == none.history_["epoch"].tolist() == list(range(1, FAST["epochs"] + 1))
    sklearn = pytest.importorskip("sklearn.base")
    copy = sklearn.clone(est)
    assert copy.get_params() == est.get_params() and not hasattr(copy, "model_")
    assert copy.set_params(lr=0.5).lr == 0.5
    assert SimLabel().lam == TrainConfig().lam == 3.0 and SimLabel().epochs == TrainConfig().epochs


def test_out_dir_writes_a_run_directory_and_nothing_is_written_otherwise(tmp_path, monkeypatch):
    x, answers, _ = crowd(7)
    monkeypatch.chdir(tmp_path)
    SimLabel(**FAST).fit(x, answers)
    assert list(tmp_path.iterdir()) == []
    SimLabel(**FAST).fit(x, answers, out_dir=tmp_path / "run")
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.toml", "train.log", "metrics.json", "model.pt", "imputed_labels.csv", "checkpoints"} <= names
    assert SimLabel.load(tmp_path / "run").annotators_.tolist() == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def fitted():
    x, answers, _ = crowd(8)
    return SimLabel(**FAST).fit(x, answers), x, answers


@pytest.mark.parametrize("call, error, message", [
    (lambda est, x, a: est.predict(x, tasks=[1, 2]), ValueError, r"X has 60 rows but tasks has 2 entries"),
    (lambda est, x, a: SimLabel(**FAST).fit(x, a, tasks=list(range(59))), ValueError,
     r"X has 60 rows but tasks has 59 entries"),
    (lambda est, x, a: est.predict(x[:, :3]), ValueError, r"takes 4 features per item .*got inputs of shape \[60, 3\]"),
    (lambda est, x, a: est.predict(x.astype(str)), ValueError, r"X must hold numbers .*got dtype <U"),
    (lambda est, x, a: est.predict(pd.DataFrame({"0": ["a"] * 3, "1": 1, "2": 1, "3": 1})), ValueError,
     r"X: column '0' holds (object|str), not numbers"),
    (lambda est, x, a: est.predict(np.where(np.arange(4) == 2, np.nan, x)), ValueError,
     r"X, row 0: task '0', column '2': non-finite value nan"),
    (lambda est, x, a: est.predict(np.full((2, 4), 1e300)), ValueError, r"value 1e\+300 does not fit in float32"),
    (lambda est, x, a: est.predict(x, workers=[1, 99]), ValueError, r"unknown worker 99: this model's annotators"),
    (lambda est, x, a: est.predict(x, format="tall"), ValueError, r"format must be 'long' or 'wide'"),
    (lambda est, x, a: SimLabel(**FAST).fit(x, a.rename(columns={"label": "y"})), ValueError,
     r"lacks the column\(s\) \['label'\]"),
    (lambda est, x, a: SimLabel(**FAST).fit(x, a.assign(label=a["label"].where(a.index != 7))), ValueError,
     r"annotations row 7 .*empty 'label' cell"),
    (lambda est, x, a: SimLabel(**FAST).fit(x, pd.concat([a, a.iloc[[3]].assign(label=a["label"].iloc[3] + 1)])),
     ValueError, r"annotations rows 3 and \d+: task \d+ has two labels by worker"),
    (lambda est, x, a: SimLabel(**FAST).fit(x, a, validation=[1000]), ValueError,
     r"validation task 1000 has no label"),
    (lambda est, x, a: SimLabel(**FAST, learning_rate=1), TypeError, r"unknown option 'learning_rate'.*\blr\b"),
    (lambda est, x, a: SimLabel(**{**FAST, "threshold": 2.0}).fit(x, a), ValueError, r"threshold"),
    (lambda est, x, a: SimLabel(**FAST).predict(x), RuntimeError, r"not fitted yet"),
])  # fmt: skip
def test_bad_input_gets_one_clear_error(fitted, call, error, message):
    est, x, answers = fitted
    with pytest.raises(error, match=message) as info:
        call(est, x, answers)
    assert "\n" not in str(info.value)


def test_a_model_file_never_runs_code_and_names_what_is_wrong(fitted, tmp_path):
    est, x, _ = fitted
    est.save(tmp_path / "good.pt")
    state = torch.load(tmp_path / "good.pt", weights_only=True)

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({**state, "metadata": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"evil\.pt holds code \(posix\.system\).*must not be loaded without "
                                         r"weights_only"):
        SimLabel.load(tmp_path / "evil.pt")
    assert not marker.exists()  # the payload never ran

    torch.save({**state, "model": {"name": "not-installed", "options": {}}}, tmp_path / "plugin.pt")
    with pytest.raises(ValueError, match=r"needs the annotator-model plugin 'not-installed', which is not "
                                         r"installed here \(installed: .*heads"):
        SimLabel.load(tmp_path / "plugin.pt")
    torch.save({**state, "version": MODEL_FORMAT_VERSION + 1}, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match=rf"format version {MODEL_FORMAT_VERSION + 1}, newer than the version "
                                         rf"{MODEL_FORMAT_VERSION}.*upgrade simlabel"):
        FittedModel.load(tmp_path / "newer.pt")
    torch.save({**state, "annotators": [0, 1]}, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match=r"shape\.pt: its weights do not fit model 'heads'"):
        SimLabel.load(tmp_path / "shape.pt")
    torch.save({"format": "simlabel-checkpoint-1", "optimizer": {}}, tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match=r"not a simlabel model file \(a training checkpoint\)"):
        SimLabel.load(tmp_path / "ckpt.pt")
    with pytest.raises(FileNotFoundError):
        SimLabel.load(tmp_path / "missing.pt")


def test_ids_that_cannot_be_stored_are_refused_at_save(tmp_path):
    x, answers, _ = crowd(9)
    answers["worker"] = answers["worker"].map(lambda w: (w, "x"))
    est = SimLabel(**FAST).fit(x, answers)
    with pytest.raises(ValueError, match=r"annotator \(0, 'x'\) \(tuple\) cannot be stored"):
        est.save(tmp_path / "m.pt")


def test_ids_with_the_same_text_are_refused():
    x, answers, _ = crowd(10)
    answers = answers.astype({"worker": object})
    answers.loc[answers["worker"] == 1, "worker"] = "0"
    with pytest.raises(ValueError, match=r"worker .* have the same text '0'"):
        SimLabel(**FAST).fit(x, answers)


# ---------------------------------------------------------------------------------------------- the command
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".npz"])
def test_simlabel_predict_reads_every_features_format(fitted, tmp_path, suffix, capsys):
    est, x, _ = fitted
    est.save(tmp_path / "m.pt")
    path = tmp_path / f"features{suffix}"
    tasks = [f"n{i}" for i in range(len(x))]
    frame = pd.DataFrame(x, columns=[f"f{j}" for j in range(4)]).assign(item=tasks)[["item", "f0", "f1", "f2", "f3"]]
    if suffix == ".npz":
        np.savez(path, task=np.array(tasks), features=x)
    elif suffix == ".parquet":
        pytest.importorskip("pyarrow")
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    task_col = "task" if suffix == ".npz" else "item"
    out = tmp_path / "preds.csv"
    assert main(["predict", str(tmp_path / "m.pt"), "--features", str(path), "--task-col", task_col,
                 "--out", str(out), "--proba"]) == 0
    assert "predict: 60 item(s) x 5 annotator(s)" in capsys.readouterr().err
    written = pd.read_csv(out)
    expected = est.predict(x, tasks=tasks)
    assert written[["task", "worker", "label"]].astype(str).equals(expected[["task", "worker", "label"]].astype(str))
    np.testing.assert_array_equal(written["probability"].to_numpy(np.float32), expected["probability"].to_numpy())
    proba = est.predict_proba(x).reshape(-1, 3)
    np.testing.assert_array_equal(written[["p_0", "p_1", "p_2"]].to_numpy(np.float32), proba)
    assert main(["predict", str(tmp_path / "m.pt"), "--features", str(path), "--task-col", task_col, "--format",
                 "wide", "--workers", "4,0", "--out", str(tmp_path / "wide.csv")]) == 0
    wide = pd.read_csv(tmp_path / "wide.csv")
    assert wide.columns.tolist() == ["task", "4", "0"] and wide["task"].tolist() == tasks
    np.testing.assert_array_equal(wide[["4", "0"]].to_numpy(), est.predict(x, format="wide")[[4, 0]].to_numpy())


@pytest.mark.parametrize("args, message", [
    (["--workers", "7"], r"unknown worker '7'"),
    (["--format", "wide", "--proba"], r"--proba needs --format long"),
    (["--task-col", "id"], r"needs exactly one column 'id'"),
])  # fmt: skip
def test_simlabel_predict_errors_are_one_line(fitted, tmp_path, capsys, args, message):
    import re

    est, x, _ = fitted
    est.save(tmp_path / "m.pt")
    pd.DataFrame(x, columns=list("abcd")).assign(task=range(60)).to_csv(tmp_path / "f.csv", index=False)
    code = main(["predict", str(tmp_path / "m.pt"), "--features", str(tmp_path / "f.csv"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(message, err[0]), err


def test_a_features_table_must_have_the_models_columns(tmp_path, capsys):
    x, answers, _ = crowd(11)
    frame = pd.DataFrame(x, columns=["w", "x", "y", "z"])
    est = SimLabel(**FAST).fit(frame, answers)
    est.save(tmp_path / "m.pt")
    frame.drop(columns="y").assign(task=range(60)).to_csv(tmp_path / "f.csv", index=False)
    assert main(["predict", str(tmp_path / "m.pt"), "--features", str(tmp_path / "f.csv")]) == 2
    assert "missing column(s) ['y']" in capsys.readouterr().err
    shuffled = frame[["z", "y", "x", "w"]].assign(task=range(60), note="ignored")
    shuffled.to_csv(tmp_path / "g.csv", index=False)  # other columns and another order: taken by name
    assert main(["predict", str(tmp_path / "m.pt"), "--features", str(tmp_path / "g.csv"), "--out",
                 str(tmp_path / "p.csv")]) == 0
    written = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_array_equal(written["probability"].to_numpy(np.float32),
                                  est.predict(frame)["probability"].to_numpy())
    assert math.isclose(written["probability"].iloc[0], float(est.predict(frame)["probability"].iloc[0]),
                        rel_tol=1e-7)
