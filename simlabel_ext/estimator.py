"""``SimLabel``: fit annotator models on a crowd in memory, predict what each annotator would say about new items,
save and load them — the library's face, in the style of scikit-learn and crowd-kit.

::

    model = SimLabel(model="heads", mode="simlabel+confidence", lr=1e-3).fit(X, answers)   # answers: task, worker, label
    model.predict(X_new)               # long table: task, worker, label, probability
    model.predict_proba(X_new)         # [N, A, C]
    model.save("model.pt"); SimLabel.load("model.pt")

``fit`` runs exactly what ``simlabel train`` runs (:func:`simlabel_ext.train.fit_run`), on every labelled item:
``validation_fraction`` of them (or the tasks given as ``validation=``) are held out for early stopping and the
best epoch; there is no test split, and nothing is written to disk unless ``out_dir=`` is given (then it is a
run directory like ``simlabel train``'s).

Keyword ``options`` are the training and SimLabel options of ``simlabel train`` (:func:`TRAINING_OPTIONS`), by the
same names and with the same defaults (``epochs``, ``lr``, ``batch_size``, ``threshold``, ``lam``, ...).

Fitted attributes (trailing underscore): ``classes_`` and ``annotators_`` (the caller's values), ``model_`` (the
:class:`~simlabel_ext.fitted.FittedModel`), ``feature_names_in_`` (column names of a DataFrame ``X``, or None),
``best_epoch_`` (numbered from 1, as ``history_``'s index), and, after ``fit`` only (a saved model does not keep
them): ``kappa_`` and ``similarity_`` (:class:`BeforeAfter` of ``[A, A]`` DataFrames: the training labels before
training, and the observed + imputed labels after), ``imputed_labels_`` (DataFrame ``task, worker, label,
confidence, epoch, step, revisions``), ``history_`` (DataFrame, one row per epoch, indexed by the epoch's number).
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from .data import (
    AnnotationMatrix,
    Annotations,
    CrowdDataset,
    FeatureScaling,
    FeatureTable,
    InputSpec,
    Split,
    annotations_from,
    plain,
)
from .fitted import FittedModel, class_softmax
from .rundir import RunDirectory
from .train import TrainConfig, TrainResult, fit_run, option_fields
from .train.distributed import pick_device
from .train.evaluate import SplitMetrics

__all__ = ["BeforeAfter", "SimLabel", "TRAINING_OPTIONS"]

#: Options of ``simlabel train`` that are the estimator's own parameters or do not apply to it.
_NOT_OPTIONS = ("dataset", "dataset_options", "model", "model_options", "mode", "seed", "missing_rate", "device",
                "progress")
#: The keyword options of :class:`SimLabel`: every training and SimLabel option of ``simlabel train``.
TRAINING_OPTIONS = tuple(f.name for f in option_fields() if f.name not in _NOT_OPTIONS)
_VALIDATION_STREAM = 2  # NumPy stream of the validation draw (the data sets' split and removal use 0 and 1)


class BeforeAfter(NamedTuple):
    """An annotator-by-annotator statistic before and after training (``[A, A]`` DataFrames)."""

    before: pd.DataFrame
    after: pd.DataFrame


class SimLabel:
    """Multi-annotator learning with missing labels (see the module docstring).

    ``model``: an annotator-model plugin (``simlabel plugins`` lists them) with ``model_options``; ``mode``: skip,
    simlabel or simlabel+confidence; ``seed``: the validation draw, the initialisation and the batch order;
    ``device``: auto, cpu, cuda or cuda:K; ``validation_fraction``: the share of labelled items held out when no
    ``validation=`` is given; ``progress``: a progress bar over epochs on stderr; ``standardize``: z-score feature
    inputs with the training items' statistics (kept with the model and applied to new items);
    ``options``: :data:`TRAINING_OPTIONS`.
    """

    def __init__(self, model: str = "heads", mode: str = "simlabel+confidence", model_options: dict | None = None,
                 seed: int = 0, device: str = "auto", validation_fraction: float = 0.15, progress: bool = True,
                 standardize: bool = True, **options: Any) -> None:
        unknown = sorted(set(options) - set(TRAINING_OPTIONS))
        if unknown:
            raise TypeError(f"SimLabel got an unknown option {unknown[0]!r}; the options are: "
                            f"{', '.join(TRAINING_OPTIONS)}")
        self.model = model
        self.mode = mode
        self.model_options = model_options
        self.seed = seed
        self.device = device
        self.validation_fraction = validation_fraction
        self.progress = progress
        self.standardize = standardize
        defaults = TrainConfig().to_dict()
        for name in TRAINING_OPTIONS:
            setattr(self, name, options.get(name, defaults[name]))

    # ------------------------------------------------------------------------------------------------ params
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Every parameter (scikit-learn's protocol: ``SimLabel(**est.get_params())`` is an unfitted copy)."""
        names = ("model", "mode", "model_options", "seed", "device", "validation_fraction", "progress",
                 "standardize", *TRAINING_OPTIONS)
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> SimLabel:
        unknown = sorted(set(params) - set(self.get_params()))
        if unknown:
            raise ValueError(f"SimLabel has no parameter {unknown[0]!r}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = SimLabel().get_params()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k] or k == "model"]
        return f"SimLabel({', '.join(changed)})"

    def train_config(self) -> TrainConfig:
        """The training configuration these parameters make (its errors name the bad option)."""
        options = {name: getattr(self, name) for name in TRAINING_OPTIONS}
        return TrainConfig(dataset="in-memory", model=self.model, model_options=dict(self.model_options or {}),
                           mode=self.mode, seed=self.seed, device=self.device, progress=False, **options)

    # ------------------------------------------------------------------------------------------------ fit
    def fit(self, X: Any, annotations: Any, tasks: Sequence[Any] | None = None, *,
            validation: Sequence[Any] | None = None, classes: Sequence[Any] | None = None, task_col: str = "task",
            worker_col: str = "worker", label_col: str = "label", out_dir: str | Path | None = None) -> SimLabel:
        """Train on every labelled item of ``annotations`` (a long DataFrame with columns ``task_col``,
        ``worker_col``, ``label_col``; a wide ``[N, A]`` array, -1 = missing; or an AnnotationMatrix).

        ``X``: the items' inputs, ``[N, D]`` features or ``[N, C, H, W]`` images (numpy or torch) whose rows are the
        tasks ``tasks`` (default: row k is task k, for a wide array or a matrix its row k), or a DataFrame indexed
        by task. ``validation``: the tasks held out for early stopping (default: a seeded ``validation_fraction``
        of the labelled ones). ``classes``: declare the classes and their order. ``out_dir``: also write a run
        directory there.
        """
        config = self.train_config()
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ValueError(f"validation_fraction must lie in [0, 1); got {self.validation_fraction!r}")
        given = annotations_from(annotations, task_col=task_col, worker_col=worker_col, label_col=label_col,
                                 classes=classes)
        found = _labelled_only(given)
        inputs, spec, names = _fit_inputs(X, tasks, given, found, long=isinstance(annotations, pd.DataFrame))
        split = self._split(found, validation)
        scaling = None
        if self.standardize and spec.kind == "features":
            scaling = FeatureScaling.fit(inputs, split.train)
            inputs = scaling.apply(inputs)
        dataset = CrowdDataset(inputs, spec, found.matrix, None, split, scaling=scaling, feature_names=names)
        run = RunDirectory(out_dir) if out_dir is not None else None
        with _EpochBar(self.progress, config.epochs) as bar:
            result = fit_run(config, None if run is None else run.path, dataset=dataset,
                             log=run.append_log if run is not None else _silent, on_epoch_end=bar.update)
        self._set_fitted(result, found, names)
        if run is not None:  # the run's model file, with the caller's ids (the trainer wrote the matrix's strings)
            self.save(run.model_path)
        return self

    def _split(self, found: Annotations, validation: Sequence[Any] | None) -> Split:
        n = found.matrix.num_items
        if validation is not None:
            index = {str(t): i for i, t in enumerate(found.tasks)}
            unknown = [t for t in validation if str(t) not in index]
            if unknown:
                raise ValueError(f"validation task {unknown[0]!r} has no label in the annotations")
            val = torch.tensor(sorted({index[str(t)] for t in validation}), dtype=torch.int64)
        else:
            k = int(np.floor(n * float(self.validation_fraction) + 1e-9))
            draw = np.random.default_rng((_VALIDATION_STREAM, int(self.seed))).permutation(n)[:k]
            val = torch.from_numpy(np.sort(draw)).to(torch.int64)
        in_val = torch.zeros(n, dtype=torch.bool)
        in_val[val] = True
        train = (~in_val).nonzero().flatten()
        if len(train) == 0:
            raise ValueError("no labelled item is left for training after the validation items")
        return Split(train, val, torch.zeros(0, dtype=torch.int64))

    def _set_fitted(self, result: TrainResult, found: Annotations, names: tuple[str, ...] | None) -> None:
        fitted = result.fitted
        fitted.classes, fitted.annotators = list(found.classes), list(found.workers)
        self.model_ = fitted
        self.classes_, self.annotators_ = _values(found.classes), _values(found.workers)
        self.feature_names_in_ = None if names is None else np.array(names, dtype=object)
        self.best_epoch_ = int(result.metrics["best_epoch"])
        workers = pd.Index(found.workers, name="worker", tupleize_cols=False)
        sim = result.similarity
        self.kappa_ = BeforeAfter(pd.DataFrame(sim["kappa_initial"], index=workers, columns=workers),
                                  pd.DataFrame(sim["kappa_final"], index=workers, columns=workers))
        self.similarity_ = BeforeAfter(pd.DataFrame(sim["similarity_initial"], index=workers, columns=workers),
                                       pd.DataFrame(sim["similarity_final"], index=workers, columns=workers))
        imputed = result.imputed.copy()
        for column, values in (("task", found.tasks), ("worker", found.workers), ("label", found.classes)):
            back = dict(zip(map(str, values), values))
            imputed[column] = imputed[column].map(back)
        self.imputed_labels_ = imputed
        self.history_ = pd.DataFrame(result.history).set_index("epoch", drop=False).rename_axis(None)

    # ------------------------------------------------------------------------------------------------ predict
    def _fitted(self) -> FittedModel:
        if not hasattr(self, "model_"):
            raise RuntimeError("this SimLabel is not fitted yet: call fit(X, annotations) or SimLabel.load(path)")
        return self.model_

    def _inputs(self, X: Any, tasks: Sequence[Any] | None) -> tuple[torch.Tensor, list[Any]]:
        fitted = self._fitted()
        inputs, task_values = _predict_inputs(X, tasks, fitted.feature_names)
        fitted.check_inputs(inputs)
        return inputs, task_values

    def predict_proba(self, X: Any, tasks: Sequence[Any] | None = None, workers: Sequence[Any] | None = None
                      ) -> np.ndarray:
        """``[N, A, C]`` float32: each annotator's predicted distribution over ``classes_`` for every item of
        ``X`` (features as in ``fit``; a DataFrame's columns are taken by the names it was fit on); ``workers``
        picks annotators (default: all, in ``annotators_`` order)."""
        picked = self._worker_columns(workers)
        inputs, _ = self._inputs(X, tasks)
        return self._on_device().predict_proba(inputs, self.eval_batch_size)[:, picked].numpy()

    def predict(self, X: Any, workers: Sequence[Any] | None = None, format: str = "long",
                tasks: Sequence[Any] | None = None) -> pd.DataFrame:
        """Each annotator's label for every item of ``X``: ``format="long"`` gives a DataFrame ``task, worker,
        label, probability`` (one row per item and worker, item-major); ``"wide"`` one row per task (the index) and
        one column per worker. ``workers`` picks annotators (default: all, in ``annotators_`` order)."""
        if format not in ("long", "wide"):
            raise ValueError(f"format must be 'long' or 'wide'; got {format!r}")
        fitted = self._fitted()
        picked = self._worker_columns(workers)
        inputs, task_values = self._inputs(X, tasks)
        logits = self._on_device().predict_logits(inputs, self.eval_batch_size)[:, picked]
        label = logits.argmax(-1)
        probability = class_softmax(logits).gather(-1, label.unsqueeze(-1)).squeeze(-1)
        classes = _values(fitted.classes)
        ids = [fitted.annotators[j] for j in picked]
        if format == "wide":
            return pd.DataFrame(classes[label.numpy()], index=pd.Index(task_values, name="task", tupleize_cols=False),
                                columns=pd.Index(ids, name="worker", tupleize_cols=False))
        n, a = label.shape
        return pd.DataFrame({
            "task": np.repeat(_values(task_values), a),
            "worker": np.tile(_values(ids), n),
            "label": classes[label.reshape(-1).numpy()],
            "probability": probability.reshape(-1).numpy(),
        })

    def _worker_columns(self, workers: Sequence[Any] | None) -> list[int]:
        annotators = self._fitted().annotators
        if workers is None:
            return list(range(len(annotators)))
        if isinstance(workers, (str, bytes)) or not isinstance(workers, Sequence | np.ndarray | pd.Index):
            workers = [workers]
        index = {str(w): j for j, w in enumerate(annotators)}
        for w in workers:
            if str(plain(w)) not in index:
                shown = ", ".join(map(str, annotators[:10])) + (", ..." if len(annotators) > 10 else "")
                raise ValueError(f"unknown worker {plain(w)!r}: this model's annotators are {shown}")
        return [index[str(plain(w))] for w in workers]

    def _on_device(self) -> FittedModel:
        return self._fitted().to(pick_device(self.device))

    def score(self, X: Any, annotations: Any, tasks: Sequence[Any] | None = None, *, task_col: str = "task",
              worker_col: str = "worker", label_col: str = "label") -> dict[str, Any]:
        """The paper's metric on labels the caller gives (ALGORITHM.md §6): ``annotators`` (per annotator: ``id``,
        ``accuracy`` of its model on the items it labelled or None, ``test_count``), ``avg_accuracy`` (mean over
        annotators with labels), ``micro_accuracy`` (over all labels), ``annotators_with_test_labels`` and
        ``test_labels`` — the keys of ``metrics.json``. ``annotations`` and ``tasks`` as in ``fit``, for the items
        of ``X``."""
        fitted = self._fitted()
        named = None if isinstance(annotations, AnnotationMatrix) else fitted.classes  # a wide array's indices too
        found = annotations_from(annotations, task_col=task_col, worker_col=worker_col, label_col=label_col,
                                 classes=named)
        if tasks is None and not isinstance(X, pd.DataFrame) and not isinstance(annotations, pd.DataFrame):
            tasks = found.tasks  # row k of X is row k of the wide array or matrix, as in fit
        inputs, task_values = self._inputs(X, tasks)
        row_of = {str(t): r for r, t in enumerate(task_values)}
        absent = [t for t in found.tasks if str(t) not in row_of]
        if absent:
            raise ValueError(f"task {absent[0]!r} of the annotations has no row in X")
        class_of = {str(c): k for k, c in enumerate(fitted.classes)}
        unknown = [c for c in found.classes if str(c) not in class_of]
        if unknown:
            raise ValueError(f"label {unknown[0]!r} is not one of this model's classes {fitted.classes}")
        rows = torch.tensor([row_of[str(t)] for t in found.tasks], dtype=torch.int64)
        columns = torch.tensor(self._worker_columns(found.workers), dtype=torch.int64)
        to_model = torch.tensor([class_of[str(c)] for c in found.classes], dtype=torch.int64)
        given = found.matrix.labels
        labels = torch.full((len(task_values), len(fitted.annotators)), -1, dtype=torch.int64)
        labels[rows.unsqueeze(1), columns.unsqueeze(0)] = torch.where(given >= 0, to_model[given.clamp(min=0)], -1)
        predicted = self._on_device().predict_logits(inputs, self.eval_batch_size).argmax(-1)
        present = labels >= 0
        correct = ((predicted == labels) & present).sum(0)
        metrics = SplitMetrics(correct, present.sum(0), 0.0)
        accuracy = metrics.accuracy
        return {
            "annotators": [{"id": ann, "accuracy": None if metrics.count[k] == 0 else float(accuracy[k]),
                            "test_count": int(metrics.count[k])} for k, ann in enumerate(fitted.annotators)],
            "avg_accuracy": metrics.avg,
            "micro_accuracy": metrics.micro,
            "annotators_with_test_labels": int((metrics.count > 0).sum()),
            "test_labels": metrics.labels,
        }

    # ------------------------------------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """One model file (``model.pt``): weights, the model plugin's name and options, classes, annotators,
        input spec, feature names, feature standardisation and these parameters (:mod:`simlabel_ext.fitted`)."""
        fitted = self._fitted()
        for what, values in (("class", fitted.classes), ("annotator", fitted.annotators)):
            bad = [v for v in values if not isinstance(v, (str, int, float, bool))]
            if bad:
                raise ValueError(f"{what} {bad[0]!r} ({type(bad[0]).__name__}) cannot be stored in a model file: "
                                 "use str, int or float ids")
        fitted.metadata["estimator"] = {k: v for k, v in self.get_params().items() if k != "model_options"}
        fitted.metadata["best_epoch"] = self.best_epoch_
        fitted.save(path)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> SimLabel:
        """A fitted estimator from a model file of :meth:`save` or a ``simlabel train`` run directory's
        ``model.pt`` (a run directory itself may be given). It never runs code from the file."""
        path = Path(path)
        if path.is_dir():
            path = RunDirectory(path).model_path
        fitted = FittedModel.load(path)
        meta = fitted.metadata
        params = meta.get("estimator") or meta.get("config", {})  # saved by SimLabel, or by simlabel train
        params = {k: v for k, v in params.items() if k in SimLabel().get_params()}
        params.update(model=fitted.model_name, model_options=dict(fitted.model_options), device=device)
        estimator = cls(**params)
        estimator.model_ = fitted
        estimator.classes_, estimator.annotators_ = _values(fitted.classes), _values(fitted.annotators)
        estimator.feature_names_in_ = (None if fitted.feature_names is None
                                       else np.array(fitted.feature_names, dtype=object))
        estimator.best_epoch_ = int(meta.get("best_epoch", 0))
        return estimator


# ---------------------------------------------------------------------------------------------------- helpers
def _silent(line: str) -> None:
    """The log of an in-memory fit: the progress bar shows the epochs."""


def _values(values: Sequence[Any]) -> np.ndarray:
    """Ids as a 1-D array: of their own dtype when they share one type (int, str), else of objects."""
    if len({type(v) for v in values}) == 1 and isinstance(values[0], (int, float, str)):
        return np.array(values)
    out = np.empty(len(values), dtype=object)
    for k, value in enumerate(values):
        out[k] = value
    return out


class _EpochBar:
    """A tqdm bar over the epochs of each run (on stderr), or nothing."""

    def __init__(self, enabled: bool, epochs: int) -> None:
        self.enabled, self.epochs, self.bar, self.trainer = enabled, epochs, None, None

    def __enter__(self) -> _EpochBar:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.epochs, desc="SimLabel fit", unit="epoch", file=sys.stderr)
        return self

    def update(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.bar is None:
            return
        if self.trainer is not None and trainer is not self.trainer:  # the next candidate of lam = "auto"
            self.bar.reset()
        if trainer is not self.trainer:
            self.trainer = trainer
            self.bar.set_description(f"SimLabel fit, lam {trainer.config.lam:g}")
        self.bar.update(1)
        self.bar.set_postfix(val_avg=f"{record['val_avg']:.3f}", imputed=record["imputed"])

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()


def _labelled_only(found: Annotations) -> Annotations:
    """The annotations of the items that have at least one label (the others take no part in training)."""
    keep = (found.matrix.labels >= 0).any(1)
    if bool(keep.all()):
        return found
    if not bool(keep.any()):
        raise ValueError("the annotations hold no label")
    rows = keep.nonzero().flatten()
    m = found.matrix
    matrix = type(m)(m.labels[rows], [m.item_ids[i] for i in rows.tolist()], m.annotator_ids, m.class_names)
    return Annotations(matrix, [found.tasks[i] for i in rows.tolist()], found.workers, found.classes)


def _as_array(X: Any) -> np.ndarray:
    """``X`` (numpy, torch or nested lists) as a NumPy array of numbers; an error naming its dtype otherwise."""
    array = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    if array.dtype.kind not in "iufb":
        raise ValueError(f"X must hold numbers (features or pixel values); got dtype {array.dtype}")
    return array


def _table_of(array: np.ndarray, task_values: Sequence[Any]) -> FeatureTable:
    """An array's rows (flattened) as a :class:`FeatureTable` whose tasks are ``task_values`` (as strings)."""
    flat = array.astype(np.float64).reshape(len(array), -1)
    return FeatureTable([str(t) for t in task_values], [str(j) for j in range(flat.shape[1])], flat, "X",
                        [f"row {r}" for r in range(len(flat))])


def _fit_inputs(X: Any, tasks: Sequence[Any] | None, given: Annotations, found: Annotations, long: bool
                ) -> tuple[torch.Tensor, InputSpec, tuple[str, ...] | None]:
    """``X`` as float32 ``[N, ...]`` rows in the order of ``found``'s items, its input spec and feature names.

    Without ``tasks``, row k of an array ``X`` is task k of a long table, or row k of the ``given`` wide array or
    matrix (before the items without labels were left out).
    """
    items = list(found.matrix.item_ids)
    if isinstance(X, pd.DataFrame):
        if tasks is not None:
            raise ValueError("X is a DataFrame: its index gives the tasks, so tasks= must not be given too")
        table = FeatureTable.from_frame(X)
        inputs = table.align(items, what="labelled task")
        return inputs, InputSpec("features", (inputs.shape[1],)), tuple(table.names)
    array = _as_array(X)
    if array.ndim not in (2, 4):
        raise ValueError(f"X must be [N, D] features or [N, C, H, W] images; got shape {list(array.shape)}")
    if tasks is not None:
        task_values = list(tasks)
        if len(task_values) != len(array):
            raise ValueError(f"X has {len(array)} rows but tasks has {len(task_values)} entries")
    elif long:
        task_values = list(range(len(array)))
    else:
        task_values = list(given.matrix.item_ids)
        if len(task_values) != len(array):
            raise ValueError(f"X has {len(array)} rows but the annotations have {len(task_values)}; give tasks= "
                             "(the task of each row of X)")
    inputs = _table_of(array, task_values).align(items, what="labelled task").reshape(len(items), *array.shape[1:])
    kind = "features" if array.ndim == 2 else "image"
    return inputs, InputSpec(kind, tuple(int(s) for s in array.shape[1:])), None


def _predict_inputs(X: Any, tasks: Sequence[Any] | None, feature_names: Sequence[str] | None
                    ) -> tuple[torch.Tensor, list[Any]]:
    """New items' inputs, float32 ``[N, ...]``, and their task values (a DataFrame's index, ``tasks`` or
    ``0..N-1``)."""
    if isinstance(X, pd.DataFrame):
        if tasks is not None:
            raise ValueError("X is a DataFrame: its index gives the tasks, so tasks= must not be given too")
        return FeatureTable.from_frame(X, feature_names=feature_names).to_tensor(), [plain(t) for t in X.index]
    array = _as_array(X)
    values = list(range(len(array))) if tasks is None else [plain(t) for t in tasks]
    if len(values) != len(array):
        raise ValueError(f"X has {len(array)} rows but tasks has {len(values)} entries")
    return _table_of(array, values).to_tensor().reshape(len(array), *array.shape[1:]), values
