"""The trainer end to end (ALGORITHM.md §3-6): every mode x every built-in model on the synthetic ``amer2-like``
preset and on music_genre, with each output file checked against an independent recomputation; Skip ignoring
missing entries through a real trainer step; imputation through the trainer (store, engine, CSV, no leakage of
validation / test labels); and the ``simlabel train`` command's one-line errors.

Everything is tiny (hidden sizes of 8, two epochs, large batches) so that the whole file runs in seconds.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simlabel_ext import simlabel_loss
from simlabel_ext.cli import main
from simlabel_ext.data import AnnotationMatrix, read_long
from simlabel_ext.models import ModelOutput
from simlabel_ext.registry import get_registry
from simlabel_ext.similarity import SimilarityEngine
from simlabel_ext.train import TrainConfig, Trainer, load_config, load_run_dataset

MUSIC_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "music_genre"
needs_music = pytest.mark.skipif(not MUSIC_DIR.is_dir(), reason=f"music_genre data not found at {MUSIC_DIR}")

MODES = ("skip", "simlabel", "simlabel+confidence")
#: the smallest sensible option set of each built-in model (all paths of the model still run)
TINY_MODELS = {
    "heads": {"hidden": 8, "depth": 1},
    "padl": {"hidden": 8, "depth": 1},
    "madl": {"hidden": 8, "depth": 1, "embed_dim": 4, "ap_hidden": 8},
    "qumatl": {"hidden": 8, "depth": 1, "d_model": 8, "num_heads": 2, "num_layers": 1, "num_tokens": 4, "ffn_dim": 16},
}
HISTORY_KEYS = {"epoch", "step", "lr", "lam", "ce", "kl", "ce_terms", "kl_terms", "imputed", "imputations_scored",
                "imputation_accuracy", "mean_similarity", "val_loss", "val_avg", "val_micro", "seconds"}
METRICS_KEYS = {"dataset", "model", "mode", "seed", "missing_rate", "annotators", "avg_accuracy", "micro_accuracy",
                "annotators_with_test_labels", "test_labels", "test_loss", "imputations", "imputations_scored",
                "imputation_accuracy", "best_epoch", "best_val_loss", "best_val_avg_accuracy",
                "best_val_micro_accuracy", "epochs_run", "epoch_limit", "steps", "world_size", "train_seconds"}
CSV_HEADER = ["task", "worker", "label", "confidence", "epoch", "step", "revisions"]
#: a small synthetic crowd on which imputation starts in the second epoch (accurate annotators, clear features)
IMPUTING = dict(dataset="synthetic", dataset_options={"preset": "custom", "items": 277, "annotators": 8, "classes": 4,
                                                      "missing": 0.6, "accuracy": 0.9, "separation": 2.0},
                model="heads", model_options={"hidden": 8, "depth": 1}, epochs=3, batch_size=16, lr=3e-2,
                threshold=0.5, progress=False, device="cpu")


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test of this module runs with one intra-op thread (see conftest.one_thread)."""


@pytest.fixture(scope="module")
def datasets():
    """Each data set loaded once per module (the trainer accepts a preloaded one)."""
    cache = {}

    def get(config: TrainConfig):
        key = (config.dataset, json.dumps(config.dataset_options, sort_keys=True), config.seed, config.missing_rate)
        if key not in cache:
            cache[key] = load_run_dataset(config)
        return cache[key]

    return get


# ---------------------------------------------------------------------------------------------- independent oracles
def naive_kappa(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Cohen's kappa of every annotator pair on the items both labelled (NaN: none shared, or chance agreement 1),
    from one-hot label counts: ``po = agree / n``, ``pe = sum_c r_jk(c) r_kj(c) / n^2`` where ``r_jk(c)`` counts
    how often j said c on the items shared with k."""
    present = (labels >= 0).astype(np.float64)                                       # [N, A]
    onehot = [(labels == c).astype(np.float64) for c in range(num_classes)]          # C x [N, A]
    n = present.T @ present                                                         # [A, A]
    agree = sum(o.T @ o for o in onehot)
    r = [o.T @ present for o in onehot]                      # r[c][j, k]: j said c on an item shared with k
    with np.errstate(invalid="ignore", divide="ignore"):
        po = agree / n
        pe = sum(rc * rc.T for rc in r) / n**2
        kappa = (po - pe) / (1.0 - pe)
    kappa[(n == 0) | (pe >= 1.0 - 1e-12)] = np.nan
    return kappa


def naive_overlap(labels: np.ndarray) -> np.ndarray:
    present = (labels >= 0).astype(np.int64)
    return present.T @ present


def naive_similarity(kappa: np.ndarray, overlap: np.ndarray, n0: float) -> np.ndarray:
    s = overlap / (overlap + n0) * np.maximum(np.nan_to_num(kappa, nan=0.0), 0.0)
    np.fill_diagonal(s, 0.0)
    return s


def naive_split_scores(model, data, items: torch.Tensor) -> tuple[list[int], list[int], float]:
    """(correct per annotator, labels per annotator, mean CE) of ``model`` on ``items``, one entry at a time."""
    model.eval()
    with torch.no_grad():
        logits = model(data.inputs[items]).logits.double()
    labels = data.annotations.labels[items].tolist()
    pred = logits.argmax(-1).tolist()
    logp = F.log_softmax(logits, -1)
    a = data.num_annotators
    correct, count, ce, n = [0] * a, [0] * a, 0.0, 0
    for r in range(len(labels)):
        for k in range(a):
            y = labels[r][k]
            if y >= 0:
                count[k] += 1
                correct[k] += int(pred[r][k] == y)
                ce -= float(logp[r, k, y])
                n += 1
    return correct, count, ce / n


def cosine_lr(lr: float, step: int, total: int, warmup: float) -> float:
    """ALGORITHM.md §5: linear warm-up over ceil(warmup * total) steps, then cosine to 0."""
    warm = math.ceil(warmup * total)
    if step < warm:
        return lr * (step + 1) / warm
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def expected_csv_rows(store, data) -> list[list[str]]:
    ann = data.annotations
    rows = []
    entries = store.entries()
    for i, k, c, conf, e, s, r in zip(*(entries[key].tolist() for key in (
            "item", "annotator", "label", "confidence", "epoch", "step", "revisions"))):
        rows.append([ann.item_ids[i], ann.annotator_ids[k], ann.class_names[c], conf, str(e), str(s), str(r)])
    return rows


def check_csv(path: Path, store, data) -> list[list[str]]:
    rows = read_csv(path)
    assert rows[0] == CSV_HEADER
    expected = expected_csv_rows(store, data)
    assert len(rows) - 1 == len(expected) == len(store)
    for got, want in zip(rows[1:], expected):
        assert got[:3] == want[:3] and got[4:] == want[4:]
        assert abs(float(got[3]) - want[3]) <= 5e-7
    return rows[1:]


# ---------------------------------------------------------------------------------------------- the run's outputs
def check_run(trainer: Trainer, metrics: dict, out: Path) -> None:
    """Every output file of a finished one-process run against independent recomputations."""
    config, data = trainer.config, trainer.dataset
    n_train = len(data.split.train)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    a, c = data.num_annotators, data.num_classes

    for name in ("metrics.json", "history.json", "imputed_labels.csv", "similarity.npz", "predictions.npz",
                 "config.toml", "train.log", "checkpoints/best.pt", f"checkpoints/epoch-{config.epochs:04d}.pt"):
        assert (out / name).is_file(), name
    assert "test: Avg" in (out / "train.log").read_text()

    # config.toml repeats the run
    assert load_config(out / "config.toml") == config

    # metrics.json: what fit() returned, with the documented fields
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert set(saved) == METRICS_KEYS
    assert (saved["dataset"], saved["model"], saved["mode"], saved["seed"], saved["missing_rate"]) == (
        config.dataset, config.model, config.simlabel.mode, config.seed, config.missing_rate)
    assert saved["world_size"] == 1 and saved["epochs_run"] == saved["epoch_limit"] == config.epochs
    assert saved["steps"] == config.epochs * steps_per_epoch
    assert saved["imputations"] == len(trainer.store)
    assert [x["id"] for x in saved["annotators"]] == list(data.annotations.annotator_ids)

    # the best checkpoint opens without running code and holds the model the test metrics came from
    best = torch.load(out / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    model = get_registry().build_model(config.model, data.input_spec, a, c, **config.model_options)
    model.load_state_dict(best["model"])
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, best["model"][key]), key

    # per-annotator test accuracy and counts, recomputed entry by entry
    correct, count, test_ce = naive_split_scores(model, data, data.split.test)
    for k, row in enumerate(saved["annotators"]):
        assert row["test_count"] == count[k], row["id"]
        if count[k] == 0:
            assert row["accuracy"] is None
        else:
            # 1e-6, not exact: the trainer's per-annotator accuracy is rounded to float32 (see the test
            # test_accuracy_is_exact_float64 below); a single wrong prediction would move it by >= 1 / count
            assert abs(row["accuracy"] - correct[k] / count[k]) < 1e-6, row
    with_labels = [k for k in range(a) if count[k] > 0]
    assert saved["annotators_with_test_labels"] == len(with_labels)
    assert saved["test_labels"] == sum(count)
    assert abs(saved["avg_accuracy"] - np.mean([correct[k] / count[k] for k in with_labels])) < 1e-6
    assert saved["micro_accuracy"] == pytest.approx(sum(correct) / sum(count), abs=1e-12)
    assert saved["test_loss"] == pytest.approx(test_ce, rel=1e-5)

    # history.json: one record per epoch with the documented fields and independently known values
    history = json.loads((out / "history.json").read_text())
    assert len(history) == config.epochs
    observed_train = int((data.annotations.labels[data.split.train] >= 0).sum())
    total = config.epochs * steps_per_epoch
    for e, rec in enumerate(history):
        assert set(rec) == HISTORY_KEYS
        assert rec["epoch"] == e + 1 and rec["step"] == (e + 1) * steps_per_epoch  # epochs are numbered from 1
        assert rec["ce_terms"] == observed_train  # every observed training label once per epoch, in every mode
        assert rec["lr"] == pytest.approx(cosine_lr(config.lr, rec["step"], total, config.warmup), abs=1e-12)
        assert rec["lam"] == config.lam
        if config.simlabel.mode == "skip":
            assert rec["kl_terms"] == 0 and rec["kl"] == 0
        else:
            assert rec["kl_terms"] > 0
    assert history[-1]["imputed"] == saved["imputations"]
    assert [r["imputed"] for r in history] == sorted(r["imputed"] for r in history)
    val_losses = [r["val_loss"] for r in history]
    assert saved["best_epoch"] == int(np.argmin(val_losses)) + 1 == best["epoch"]
    assert saved["best_val_loss"] == val_losses[saved["best_epoch"] - 1] == best["val_loss"]
    # the best epoch's validation numbers, recomputed from best.pt
    v_correct, v_count, val_ce = naive_split_scores(model, data, data.split.val)
    rec = history[saved["best_epoch"] - 1]
    assert (saved["best_val_avg_accuracy"], saved["best_val_micro_accuracy"]) == (rec["val_avg"], rec["val_micro"])
    assert rec["val_loss"] == pytest.approx(val_ce, rel=1e-5)
    assert rec["val_micro"] == pytest.approx(sum(v_correct) / sum(v_count), abs=1e-12)
    assert rec["val_avg"] == pytest.approx(np.mean([x / n for x, n in zip(v_correct, v_count) if n]), abs=1e-6)

    # predictions.npz: the split, what the run was given and withheld, the store, and the best model's argmax
    with np.load(out / "predictions.npz", allow_pickle=False) as npz:
        saved_predictions = {name: npz[name] for name in npz.files}
    assert set(saved_predictions) == {"classes", "split", "labels", "hidden", "imputed", "prediction"}
    assert saved_predictions["classes"].tolist() == list(data.annotations.class_names)
    codes = saved_predictions["split"].tolist()
    for code, items in enumerate((data.split.train, data.split.val, data.split.test)):
        assert all(codes[i] == code for i in items.tolist())
    assert np.array_equal(saved_predictions["labels"], data.annotations.labels.numpy())
    assert np.array_equal(saved_predictions["hidden"], data.hidden_labels.numpy())
    assert np.array_equal(saved_predictions["imputed"], trainer.store.classes.numpy())
    with torch.no_grad():
        expected = model.eval()(data.inputs).logits.argmax(-1)
    assert np.array_equal(saved_predictions["prediction"], expected.numpy())

    # imputed_labels.csv: the store's entries with the data set's names
    check_csv(out / "imputed_labels.csv", trainer.store, data)
    if config.simlabel.mode != "simlabel+confidence":
        assert len(trainer.store) == 0

    # similarity.npz: initial statistics from the training split's labels only, final ones from the store
    npz = np.load(out / "similarity.npz")
    assert set(npz.files) == {"annotators", "kappa_initial", "kappa_final", "similarity_initial", "similarity_final",
                              "overlap_initial"}
    assert npz["annotators"].tolist() == list(data.annotations.annotator_ids)
    train_only = data.annotations.labels.clone()
    in_train = torch.zeros(data.num_items, dtype=torch.bool)
    in_train[data.split.train] = True
    train_only[~in_train] = -1
    kappa0 = naive_kappa(train_only.numpy(), c)
    overlap0 = naive_overlap(train_only.numpy())
    np.testing.assert_allclose(npz["kappa_initial"], kappa0, rtol=0, atol=1e-12)  # NaN where NaN
    np.testing.assert_array_equal(npz["overlap_initial"], overlap0)
    np.testing.assert_allclose(npz["similarity_initial"], naive_similarity(kappa0, overlap0, config.n0), atol=1e-6)
    store_labels = trainer.store.labels().numpy()
    kappa1 = naive_kappa(store_labels, c)
    np.testing.assert_allclose(npz["kappa_final"], kappa1, rtol=0, atol=1e-12)
    similarity1 = naive_similarity(kappa1, naive_overlap(store_labels), config.n0)
    np.testing.assert_allclose(npz["similarity_final"], similarity1, atol=1e-6)
    np.testing.assert_array_equal(npz["similarity_final"], trainer.similarity.cpu().numpy())


def tiny_config(dataset: str, model: str, mode: str, **changes) -> TrainConfig:
    options = {"data_dir": str(MUSIC_DIR)} if dataset == "music" else {}
    base = dict(dataset=dataset, dataset_options=options, model=model, model_options=TINY_MODELS[model], mode=mode,
                epochs=2, batch_size=512, lr=1e-2, threshold=0.3, progress=False, device="cpu")
    return TrainConfig(**{**base, **changes})


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", sorted(TINY_MODELS))
def test_every_mode_and_model_on_amer2_like(tmp_path, datasets, model, mode):
    config = tiny_config("synthetic", model, mode)
    assert config.dataset_options == {}  # the default preset, amer2-like
    data = datasets(config)
    assert (data.num_items, data.num_annotators, data.num_classes) == (2311, 10, 8)
    trainer = Trainer(config, tmp_path / "run", dataset=data)
    check_run(trainer, trainer.fit().metrics, tmp_path / "run")


@needs_music
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", sorted(TINY_MODELS))
def test_every_mode_and_model_on_music(tmp_path, datasets, model, mode):
    config = tiny_config("music", model, mode)
    data = datasets(config)
    assert (data.num_items, data.num_annotators, data.num_classes) == (700, 44, 10)
    trainer = Trainer(config, tmp_path / "run", dataset=data)
    check_run(trainer, trainer.fit().metrics, tmp_path / "run")


def test_accuracy_is_exact_float64(tmp_path, datasets):
    """metrics.json's per-annotator accuracy is correct / count in float64 (evaluate.py documents float64).

    Fails while ``SplitMetrics.accuracy`` divides two int64 tensors (true division gives float32): e.g. 21 / 81
    is written as 0.25925925374031067 instead of 0.25925925925925924.
    """
    config = tiny_config("synthetic", "heads", "skip", epochs=1)
    trainer = Trainer(config, tmp_path / "run", dataset=datasets(config))
    metrics = trainer.fit().metrics
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    model = get_registry().build_model("heads", trainer.dataset.input_spec, 10, 8, **config.model_options)
    model.load_state_dict(best["model"])
    correct, count, _ = naive_split_scores(model, trainer.dataset, trainer.dataset.split.test)
    assert [row["accuracy"] for row in metrics["annotators"]] == [x / n for x, n in zip(correct, count)]
    assert metrics["avg_accuracy"] == pytest.approx(np.mean([x / n for x, n in zip(correct, count)]), abs=1e-15)


# ---------------------------------------------------------------------------------------------- Skip ignores missing
def test_skip_loss_has_no_gradient_at_missing_entries():
    gen = torch.Generator().manual_seed(0)
    b, a, c = 6, 5, 4
    logits = torch.randn(b, a, c, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, c, (b, a), generator=gen)
    labels[torch.rand(b, a, generator=gen) < 0.5] = -1
    labels[0] = -1  # an item nobody labelled
    similarity = torch.rand(a, a, generator=gen, dtype=torch.float64)
    missing = labels < 0
    out = simlabel_loss(logits, labels, similarity, mode="skip")
    (grad,) = torch.autograd.grad(out.loss, logits)
    assert torch.count_nonzero(grad[missing]) == 0
    assert torch.count_nonzero(grad[~missing]) == (~missing).sum() * c
    # the loss is the mean CE over observed entries only
    logp = torch.log_softmax(logits.detach(), -1)
    expected = -logp[~missing].gather(-1, labels[~missing].unsqueeze(-1)).mean()
    assert float(out.loss.detach()) == pytest.approx(float(expected), rel=1e-12)
    assert int(out.n_kl) == 0 and not out.impute_mask.any()
    # control: SimLabel does train the missing entries, so the check above can fail
    (grad_sl,) = torch.autograd.grad(simlabel_loss(logits, labels, similarity, mode="simlabel").loss, logits)
    assert torch.count_nonzero(grad_sl[missing]) > 0


def _epoch_with_perturbed_missing_logits(config: TrainConfig, data, out: Path, perturb: bool) -> Trainer:
    """One trainer epoch through ``Trainer._run_epoch``; with ``perturb`` the model's logits at the entries the
    trainer marks missing (its ``labels`` argument is -1) are replaced by arbitrary parameter-dependent values."""
    trainer = Trainer(config, out, dataset=data)
    seen = []

    def hook(module, args, output):
        labels = args[1] if len(args) > 1 else None
        if labels is None or not perturb:  # evaluation calls the model without labels
            return output
        seen.append(int((labels < 0).sum()))
        missing = (labels < 0).unsqueeze(-1)
        noise = torch.randn(output.logits.shape, generator=torch.Generator().manual_seed(len(seen)))
        return ModelOutput(torch.where(missing, 5.0 * output.logits.flip(-1) + 3.0 * noise, output.logits),
                           output.aux_loss)

    trainer.model.register_forward_hook(hook)
    trainer.history.append(trainer._run_epoch())
    assert not perturb or sum(seen) > 0
    return trainer


@pytest.mark.parametrize("model", ["heads", "padl"])
def test_skip_training_step_ignores_missing_entries(tmp_path, datasets, model):
    """A Skip epoch through the trainer gives bit-identical parameters when the model's predictions at missing
    entries are replaced by other values (padl: its training-mode outputs are random samples, so this also
    needs the trainer's seeding to be reproducible); in SimLabel mode the same change moves the parameters."""
    config = TrainConfig(**{**IMPUTING, "model": model, "mode": "skip", "threshold": 0.0, "epochs": 1})
    data = datasets(config)
    base = _epoch_with_perturbed_missing_logits(config, data, tmp_path / "a", perturb=False)
    moved = _epoch_with_perturbed_missing_logits(config, data, tmp_path / "b", perturb=True)
    for key, value in base.model.state_dict().items():
        assert torch.equal(value, moved.model.state_dict()[key]), key
    assert base.history[0]["ce"] == moved.history[0]["ce"] and moved.history[0]["kl_terms"] == 0
    assert len(moved.store) == 0  # Skip never imputes, even with threshold 0

    sim = config.replace(mode="simlabel")
    base = _epoch_with_perturbed_missing_logits(sim, data, tmp_path / "c", perturb=False)
    moved = _epoch_with_perturbed_missing_logits(sim, data, tmp_path / "d", perturb=True)
    assert any(not torch.equal(v, moved.model.state_dict()[k]) for k, v in base.model.state_dict().items())


# ---------------------------------------------------------------------------------------------- imputation
@pytest.fixture(scope="module")
def imputed_run(tmp_path_factory, datasets):
    """A SimLabel + Confidence run that imputes (with 30 % of the training labels removed, to score them)."""
    config = TrainConfig(**{**IMPUTING, "missing_rate": 0.3})
    out = tmp_path_factory.mktemp("imputed") / "run"
    states = []  # the parameters after every epoch

    def keep(t, record):
        states.append({k: v.clone() for k, v in t.model.state_dict().items()})

    trainer = Trainer(config, out, dataset=datasets(config), on_epoch_end=keep)
    metrics = trainer.fit().metrics
    return trainer, metrics, out, states


def test_imputation_run_outputs(imputed_run):
    trainer, metrics, out, _ = imputed_run
    check_run(trainer, metrics, out)


def test_imputation_store_engine_and_csv(imputed_run):
    trainer, metrics, out, _ = imputed_run
    config, data, store = trainer.config, trainer.dataset, trainer.store
    assert len(store) > 50, "the run is meant to impute"
    observed_anywhere = data.annotations.labels >= 0
    assert not (store.classes[observed_anywhere] >= 0).any()  # never an entry with an observed label
    assert not (store.classes[data.split.val] >= 0).any() and not (store.classes[data.split.test] >= 0).any()
    entries = store.entries()
    # provenance: conf >= T, epoch / step consistent with the step counter
    steps_per_epoch = math.ceil(len(data.split.train) / config.batch_size)
    assert (entries["confidence"] >= config.simlabel.threshold).all() and (entries["confidence"] <= 1).all()
    assert torch.equal(entries["epoch"], entries["step"] // steps_per_epoch + 1)  # the epoch's number, from 1
    assert (entries["step"] < config.epochs * steps_per_epoch).all()

    # the incrementally updated engine equals a fresh count over observed + imputed labels
    fresh = SimilarityEngine(store.labels(), data.num_classes, n0=config.n0, min_overlap=config.min_overlap)
    assert torch.equal(trainer.engine.labels(), store.labels())
    assert torch.equal(trainer.engine.overlap(), fresh.overlap())
    assert torch.equal(trainer.engine.agreement(), fresh.agreement())
    k_inc, k_new = trainer.engine.kappa(), fresh.kappa()
    assert torch.equal(k_inc.isnan(), k_new.isnan())
    torch.testing.assert_close(k_inc.nan_to_num(), k_new.nan_to_num(), rtol=0, atol=1e-12)
    assert not torch.equal(k_new.nan_to_num(), trainer.initial_kappa.nan_to_num())  # imputation moved kappa
    assert torch.equal(trainer.similarity, fresh.similarity())

    # imputed_labels.csv is the store in (item, annotator) order with the data set's names
    rows = check_csv(out / "imputed_labels.csv", store, data)
    assert [(r[0], r[1]) for r in rows] == sorted(((r[0], r[1]) for r in rows),
                                                  key=lambda t: (int(t[0]), int(t[1][1:])))
    # ... and read_long reads it back (documented in outputs.py) as the store's imputed labels
    ann = data.annotations
    back = read_long(out / "imputed_labels.csv", classes=ann.class_names, annotators=ann.annotator_ids)
    row_of = {item: r for r, item in enumerate(back.item_ids)}
    for i, k, c in zip(entries["item"].tolist(), entries["annotator"].tolist(), entries["label"].tolist()):
        assert int(back.labels[row_of[ann.item_ids[i]], k]) == c
    assert int((back.labels >= 0).sum()) == len(store)

    # imputation accuracy, recounted: a simulated crowd knows every annotator's label, so every imputed entry
    # (removed on purpose or never sampled) is scored against it
    complete = data.complete
    scored = [(int(i), int(k)) for i, k in zip(entries["item"], entries["annotator"])]
    hits = sum(int(store.classes[i, k] == complete[i, k]) for i, k in scored)
    assert any(data.removed[i, k] for i, k in scored) and any(not data.removed[i, k] for i, k in scored)
    assert metrics["imputations_scored"] == len(scored) == len(store) > 0
    assert metrics["imputation_accuracy"] == pytest.approx(hits / len(scored), abs=1e-12)


def test_validation_and_test_labels_never_reach_training(imputed_run, tmp_path):
    trainer, _, _, states = imputed_run
    data = trainer.dataset
    train_rows = data.annotations.labels[data.split.train]
    assert torch.equal(trainer.train_labels[data.split.train], train_rows)
    held_out = torch.cat([data.split.val, data.split.test])
    assert (trainer.train_labels[held_out] == -1).all()
    assert (data.annotations.labels[held_out] >= 0).any()  # there were labels to leak
    # Scramble every validation / test label: training (losses, imputations, every epoch's parameters) is unchanged
    gen = torch.Generator().manual_seed(1)
    labels = data.annotations.labels.clone()
    scrambled = torch.randint(0, data.num_classes, labels.shape, generator=gen)
    labels[held_out] = torch.where(labels[held_out] >= 0, scrambled[held_out], -1)
    original = data.original.labels.clone()
    original[held_out] = labels[held_out]
    complete = torch.where(labels >= 0, labels, data.complete)  # the simulated crowd says what it was seen to say
    ids = (data.annotations.item_ids, data.annotations.annotator_ids, data.annotations.class_names)
    other = dataclasses.replace(data, annotations=AnnotationMatrix(labels, *ids),
                                original=AnnotationMatrix(original, *ids), complete=complete)  # validated as any
    states2 = []

    def keep(t, record):
        states2.append({k: v.clone() for k, v in t.model.state_dict().items()})

    rerun = Trainer(trainer.config, tmp_path / "run", dataset=other, on_epoch_end=keep)
    rerun.fit()
    assert len(states2) == len(states)
    for before, after in zip(states, states2):
        for key in before:
            assert torch.equal(before[key], after[key]), key
    for field in ("classes", "confidence", "epoch", "step", "revisions"):
        assert torch.equal(getattr(trainer.store, field), getattr(rerun.store, field)), field
    for r1, r2 in zip(trainer.history, rerun.history):
        assert (r1["ce"], r1["kl"], r1["imputed"]) == (r2["ce"], r2["kl"], r2["imputed"])
    assert any(r1["val_loss"] != r2["val_loss"] for r1, r2 in zip(trainer.history, rerun.history))


# ---------------------------------------------------------------------------------------------- the command line
def run_cli(args: list[str], capsys) -> tuple[int, list[str]]:
    try:
        code = main(["train", *args])
    except SystemExit as exc:  # argparse errors exit through SystemExit
        code = exc.code
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("args, message", [
    (["--model", "bogus"], r"unknown model 'bogus'.*heads"),
    (["--dataset", "bogus"], r"unknown dataset 'bogus'.*synthetic"),
    (["--mode", "bogus"], r"--mode.*'bogus'"),
    (["--dataset", "music"], r"music.*data_dir"),
    (["--dataset", "music", "--data-dir", "{tmp}/empty"], r"music_genre_mturk\.csv.*does not exist"),
    (["--bogus", "1"], r"'--bogus'.*--preset"),
    (["--model-option", "hiddn=3"], r"hiddn"),
    (["--batch-size", "0"], r"batch_size"),
])
def test_cli_errors_exit_2_with_one_line(tmp_path, capsys, args, message):
    import re

    (tmp_path / "empty").mkdir()
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    out = tmp_path / "run"
    code, err = run_cli(["--out", str(out), "--epochs", "1", "--no-progress", *args], capsys)
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("simlabel train: error: ") and re.search(message, err[0]), err[0]
    assert not out.exists()  # nothing was started


def test_cli_dataset_flags_are_not_read_as_abbreviated_training_flags():
    """``--missing`` is synthetic's option, not an abbreviation of ``--missing-rate`` (that silently removed 60 %
    of the training labels before the parser took whole option names only)."""
    from simlabel_ext.cli import build_parser
    from simlabel_ext.cli.train import resolve_config

    args, extra = build_parser().parse_known_args(
        ["train", "--preset", "custom", "--missing", "0.6", "--items", "50", "--model-option", "hidden=4"])
    config = resolve_config(args, extra)
    assert config.missing_rate == 0.0
    assert config.dataset_options == {"preset": "custom", "missing": "0.6", "items": "50"}
    assert config.model_options == {"hidden": "4"}


def test_cli_refuses_to_overwrite_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--out", str(out), "--epochs", "1", "--no-progress", "--batch-size", "512", "--model-option", "hidden=4",
            "--model-option", "depth=0", "--mode", "skip"]
    assert run_cli(args, capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert "metrics.json" in before
    code, err = run_cli(args, capsys)
    assert code == 2 and len(err) == 1 and "already holds a run" in err[0] and "--resume" in err[0], err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_imputed_as_targets_trains_imputed_entries_with_ce(tmp_path):
    config = TrainConfig(**{**IMPUTING, "imputed_as_targets": True})
    trainer = Trainer(config, tmp_path / "run", log=lambda line: None)
    trainer.fit()
    history = trainer.history
    observed = int((trainer.train_labels >= 0).sum())
    assert history[0]["ce_terms"] == observed                     # nothing imputed before the first epoch
    assert len(trainer.store) > 0
    # every training item is visited once per epoch, and imputed entries are never revised away (they are no longer
    # missing): the last epoch's CE terms are the observed labels plus at least the entries imputed before it and
    # at most every entry imputed by its end
    before, after = history[-2]["imputed"], history[-1]["imputed"]
    assert before > 0
    assert observed + before <= history[-1]["ce_terms"] <= observed + after
    items = torch.tensor([0, 5, 3])
    assert torch.equal(trainer.store.labels(items), trainer.store.labels()[items])


def test_similarity_from_observed_labels_ignores_imputations(tmp_path):
    """``similarity_labels = "observed"``: the run imputes, but S stays the observed labels' similarity, and a run
    resumed from a checkpoint rebuilds the same engine (its kappa check passes) and ends identical."""
    config = TrainConfig(**{**IMPUTING, "similarity_labels": "observed"})
    trainer = Trainer(config, tmp_path / "run", log=lambda line: None)
    trainer.fit()
    assert len(trainer.store) > 50, "the run is meant to impute"
    observed = SimilarityEngine(trainer.train_labels, trainer.dataset.num_classes, n0=config.n0)
    assert torch.equal(trainer.similarity, observed.similarity())
    assert torch.equal(trainer.engine.kappa().nan_to_num(), trainer.initial_kappa.nan_to_num())
    assert {r["mean_similarity"] for r in trainer.history} == {trainer.history[0]["mean_similarity"]}

    resumed = Trainer(config, tmp_path / "resumed", log=lambda line: None)
    shutil.copytree(tmp_path / "run" / "checkpoints", tmp_path / "resumed" / "checkpoints")
    (tmp_path / "resumed" / "checkpoints" / f"epoch-{config.epochs:04d}.pt").unlink()
    assert resumed.resume() and resumed.epoch == config.epochs - 1
    resumed.fit(resume=True)
    assert resumed.store.entries()["label"].tolist() == trainer.store.entries()["label"].tolist()
    assert torch.equal(resumed.similarity, trainer.similarity)


def test_dense_similarity_after_every_epoch_and_on_resume(tmp_path):
    """``dense_similarity = m``: after every epoch S is ``max(0, (n K + m K_pred) / (n + m))``, with K the kappa of
    the observed + imputed labels, n their shared items and K_pred scikit-learn's kappa of the model's predicted
    labels on every training item; a run resumed from a checkpoint rebuilds the same S and ends identical."""
    from sklearn.metrics import cohen_kappa_score

    config = TrainConfig(**{**IMPUTING, "dense_similarity": 5.0})
    seen = []

    def check(t, record):
        c, train = t.dataset.num_classes, torch.as_tensor(t.dataset.split.train)
        t.model.eval()
        with torch.no_grad():
            predicted = t.model(t.inputs[train]).logits.argmax(-1).numpy()
        t.model.train()
        labels = t.store.labels().numpy()
        kappa, overlap = np.nan_to_num(naive_kappa(labels, c)), naive_overlap(labels)
        a = labels.shape[1]
        expected = np.zeros((a, a))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a constant predicted column: NaN kappa, counted as 0
            for i in range(a):
                for j in range(a):
                    if i != j:
                        k = np.nan_to_num(cohen_kappa_score(predicted[:, i], predicted[:, j], labels=list(range(c))))
                        expected[i, j] = max(0.0, (overlap[i, j] * kappa[i, j] + 5.0 * k) / (overlap[i, j] + 5.0))
        np.testing.assert_allclose(t.similarity.numpy(), expected, rtol=0, atol=1e-6)  # S is float32
        seen.append(t.similarity.clone())

    trainer = Trainer(config, tmp_path / "run", log=lambda line: None, on_epoch_end=check)
    trainer.fit()
    assert len(seen) == config.epochs and len(trainer.store) > 50, "the run is meant to impute"
    assert not torch.equal(seen[-1], trainer.engine.similarity()), "S is meant to differ from the labels' S"

    resumed = Trainer(config, tmp_path / "resumed", log=lambda line: None)
    shutil.copytree(tmp_path / "run" / "checkpoints", tmp_path / "resumed" / "checkpoints")
    (tmp_path / "resumed" / "checkpoints" / f"epoch-{config.epochs:04d}.pt").unlink()
    assert resumed.resume() and resumed.epoch == config.epochs - 1
    assert torch.equal(resumed.similarity, seen[-2])
    resumed.fit(resume=True)
    assert torch.equal(resumed.similarity, trainer.similarity)
