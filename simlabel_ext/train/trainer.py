"""The training loop: Skip, SimLabel and SimLabel + Confidence (ALGORITHM.md §3–6), on one process or under DDP.

It composes the rooms below it and owns no math: a dataset and a model from the registry, the loss from
:func:`simlabel_ext.simlabel_loss`, the similarity from :class:`~simlabel_ext.similarity.SimilarityEngine`, the
imputed labels in an :class:`~simlabel_ext.imputation.ImputationStore`.

One optimizer step:

1. this rank's share of the global batch → ``logits [b, A, C]`` → the op's loss *sums* and term counts;
2. the counts are all-reduced on the device, so the loss is normalised by the global counts (``reduction`` of the
   config) and scaled by the world size, which DDP's gradient averaging undoes: the step equals a one-process
   step on the whole global batch;
3. backward, gradient clipping, AdamW, learning-rate schedule;
4. the step's one read of the host (:mod:`.exchange`): the op's error word (a bad label or similarity raises
   here, named), the loss parts, and in ``simlabel+confidence`` mode every rank's imputation selection
   (all-gathered on the device); the selected entries, in (item, annotator) order, are written to the store
   (observed labels are never touched) and applied to the engine incrementally; the next step uses the
   refreshed similarity (unless ``similarity_labels = "observed"``, which keeps the similarity of the observed
   labels).

The similarity is computed from the *training* split's observed labels plus the imputed ones: validation and
test labels never influence training. Every rank holds the same store and engine.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel

from .._version import __version__
from ..data import CrowdDataset
from ..fitted import FittedModel
from ..imputation import ImputationStore
from ..ops import check_errors, simlabel_loss
from ..ops.options import combine_loss
from ..registry import get_registry
from ..registry.hookspecs import resolve_options
from ..rundir import RunDirectory, RunDirectoryInUse
from ..similarity import SimilarityEngine, dense_similarity, kappa_from_counts, pair_counts
from . import checkpoint as ckpt
from .config import LAM_AUTO, TrainConfig, write_config
from .distributed import Distributed, pick_device
from .evaluate import SplitMetrics, evaluate_split
from .exchange import pack_step, read_step, selected_entries
from .sampler import ShardedBatches
from .schedule import build_optimizer, kl_weight

__all__ = ["TrainResult", "Trainer", "hold_run_directory", "log_to_run", "load_run_dataset", "resolve_dataset_paths"]


def load_run_dataset(config: TrainConfig) -> CrowdDataset:
    """The dataset of ``config``: its plugin's options plus the config's ``seed`` and ``missing_rate``.

    A plugin that declares no ``seed`` option is loaded without one; one without ``missing_rate`` only accepts
    ``missing_rate = 0``.
    """
    registry = get_registry()
    declared = {option.name for option in registry.dataset(config.dataset).spec.option_specs}
    options = dict(config.dataset_options)
    if "seed" in declared:
        options["seed"] = config.seed
    if "missing_rate" in declared:
        options["missing_rate"] = config.missing_rate
    elif config.missing_rate:
        raise ValueError(f"dataset {config.dataset!r} has no option 'missing_rate', so it cannot remove labels "
                         f"(missing_rate={config.missing_rate:g})")
    return registry.load_dataset(config.dataset, **options)


def resolve_dataset_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with every dataset option that names a file or folder (``OptionSpec(path=True)``) made absolute
    (from the current directory), so that its run directory reads the same data from anywhere."""
    specs = {option.name: option for option in get_registry().dataset(config.dataset).spec.option_specs}
    options = {key: os.path.abspath(value) if key in specs and specs[key].path and isinstance(value, str) else value
               for key, value in config.dataset_options.items()}
    return config if options == config.dataset_options else config.replace(dataset_options=options)


def log_to_run(run: RunDirectory | None, line: str) -> None:
    """The default log of a run: ``line`` to stderr, and appended to the run directory's ``train.log``."""
    print(line, file=sys.stderr, flush=True)
    if run is not None:
        run.append_log(line)


@contextlib.contextmanager
def hold_run_directory(run: RunDirectory | None, dist: Distributed) -> Iterator[None]:
    """Hold ``run``'s write lock on rank 0 for the body; on every rank, :class:`RunDirectoryInUse` if another
    process holds it (nothing to hold without a run directory)."""
    with contextlib.ExitStack() as stack:
        if run is not None:
            refusal = None
            if dist.is_main:
                try:
                    stack.enter_context(run.lock())
                except RunDirectoryInUse as exc:
                    refusal = str(exc)
            refusal = dist.broadcast_object(refusal)  # every rank stops with rank 0's error
            if refusal is not None:
                raise RunDirectoryInUse(refusal)
        yield


@dataclass(frozen=True)
class TrainResult:
    """What a finished run gives: ``metrics`` (the content of ``metrics.json``; test metrics are undefined without
    test items), the ``fitted`` model of the best validation epoch, the epoch ``history``, the ``imputed`` labels
    (``imputed_labels.csv`` as a frame, ids as strings), the ``similarity`` statistics of ``similarity.npz``
    (``kappa_initial``, ``kappa_final``, ``similarity_initial``, ``similarity_final``, ``overlap_initial``) and the
    ``predictions`` of ``predictions.npz`` (every item's split, labels, hidden labels, imputed labels and the best
    model's predicted labels; :mod:`simlabel_ext.rundir`)."""

    metrics: dict[str, Any]
    fitted: FittedModel
    history: list[dict[str, Any]]
    imputed: pd.DataFrame
    similarity: dict[str, np.ndarray]
    predictions: dict[str, np.ndarray]


class Trainer:
    """One training run: in memory, or writing into the run directory ``out_dir`` (:mod:`simlabel_ext.rundir`)
    with a checkpoint per epoch, so that it can be resumed.

    ``dist`` is the data-parallel context (default: one process on ``config.device``); ``dataset`` may be given
    to skip loading it again; ``log`` receives one line per epoch (default: stderr, and ``train.log`` of the run
    directory); ``on_epoch_end(trainer, record)`` is called on every rank after each epoch, before its checkpoint.
    """

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        *,
        dist: Distributed | None = None,
        dataset: CrowdDataset | None = None,
        log: Callable[[str], None] | None = None,
        on_epoch_end: Callable[["Trainer", dict[str, Any]], None] | None = None,
    ) -> None:
        if config.lam == LAM_AUTO and config.simlabel.mode != "skip":
            raise ValueError('lam = "auto" trains one run per candidate λ: train it with simlabel_ext.train.fit_run')
        self.config = config
        self.run = RunDirectory(out_dir) if out_dir is not None else None
        self.dist = dist if dist is not None else Distributed(device=pick_device(config.device))
        self.dataset = dataset if dataset is not None else load_run_dataset(config)
        self._log = log
        self._on_epoch_end = on_epoch_end
        data = self.dataset
        n, a, c = data.num_items, data.num_annotators, data.num_classes
        in_train = torch.zeros(n, dtype=torch.bool)
        in_train[data.split.train] = True
        #: observed training labels [N, A]: the only labels training (and the similarity) may see
        self.train_labels = data.annotations.labels.masked_fill(~in_train.unsqueeze(1), -1)
        #: training entries whose label the data set knows but does not give (removed, or simulated): the
        #: imputations there are scored; -1 elsewhere
        self.hidden_train_labels = data.hidden_labels.masked_fill(~in_train.unsqueeze(1), -1)
        self.store = ImputationStore(self.train_labels, c)
        self.engine = SimilarityEngine(self.train_labels, c, n0=config.n0, min_overlap=config.min_overlap)
        self.initial_kappa = self.engine.kappa()
        self.initial_similarity = self.engine.similarity()
        self.initial_overlap = self.engine.overlap()
        #: kappa [A, A] of the models' predicted labels on every training item at the end of the last epoch, which
        #: the similarity is blended with (``dense_similarity`` > 0; None before the first epoch and when off)
        self.predicted_kappa: torch.Tensor | None = None
        device = self.dist.device
        # S on the host (the engine writes into it; pinned on CUDA, so the copy to the device does not block)
        self._similarity_cpu = self.initial_similarity.clone().pin_memory() if device.type == "cuda" else \
            self.initial_similarity.clone()
        self.similarity = self._similarity_cpu.to(device)
        self.inputs = data.inputs.to(device)
        self._train_labels_device = self.train_labels.to(device)
        self.batches = ShardedBatches(data.split.train, config.batch_size, config.seed, self.dist.rank,
                                      self.dist.world_size)
        torch.manual_seed(config.seed)
        self.model = get_registry().build_model(config.model, data.input_spec, a, c, **config.model_options).to(device)
        self.network = self.model
        if self.dist.active:
            ids = [device.index] if device.type == "cuda" else None
            # A rank whose shard has no observed label may leave parameters without gradient (e.g. a branch that
            # reaches the loss only through an auxiliary loss): DDP must then still reduce them in step.
            self.network = DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)
        # Training randomness (dropout, sampled logits) has its own stream per rank; rank 0's is a 1-process run's.
        torch.manual_seed(config.seed * 1_000_003 + 7919 * self.dist.rank + 1)
        self.total_steps = config.epochs * len(self.batches)
        self.optimizer, self.scheduler = build_optimizer(self.model.parameters(), config.lr, config.weight_decay,
                                                         self.total_steps, config.warmup)
        self.epoch = 0  # epochs completed
        self.global_step = 0
        self.best = {"loss": math.inf, "epoch": 0, "bad_epochs": 0}  # epoch: 1-based, 0 = none yet
        #: the weights of the best validation epoch so far (CPU copies), or None before the first epoch
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, Any]] = []

    # ---------------------------------------------------------------- paths and logging
    @property
    def checkpoint_dir(self) -> Path | None:
        return self.run.checkpoint_dir if self.run is not None else None

    @property
    def best_path(self) -> Path | None:
        return self.run.checkpoint_dir / "best.pt" if self.run is not None else None

    def log(self, line: str) -> None:
        if not self.dist.is_main:
            return
        if self._log is not None:
            self._log(line)
            return
        log_to_run(self.run, line)

    # ---------------------------------------------------------------- checkpoints
    def resume(self) -> bool:
        """Continue from the newest readable epoch checkpoint of the run directory; False if there is none."""
        found = ckpt.load_latest(self.checkpoint_dir, ckpt.REQUIRED) if self.run is not None else None
        if found is None:
            return False
        state, path = found
        ckpt.restore(self, state, str(path))
        if self.epoch > 0:
            self.predict_training_labels()  # the restored weights are the epoch's own: the same S as before
        if self.best_path.is_file():
            self.best_weights = ckpt.load_checkpoint(self.best_path, ("model",))["model"]
        self.log(f"resumed from {path} (epoch {self.epoch}, step {self.global_step}, {len(self.store)} imputed)")
        return True

    def _keep_best(self, improved: bool) -> None:
        """Remember the weights of a new best epoch, and write this epoch's checkpoint (and ``best.pt``)."""
        if improved:
            self.best_weights = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        if self.run is None:
            return
        state = ckpt.capture(self)  # a collective: every rank takes part
        if self.dist.is_main:
            if improved:
                ckpt.save_atomic(ckpt.best_state(self.epoch, state["model"], self.best["loss"]), self.best_path)
            ckpt.save_epoch_checkpoint(state, self.checkpoint_dir, self.epoch)
        self.dist.barrier()

    # ---------------------------------------------------------------- one step
    def similarity_source(self) -> torch.Tensor:
        """The labels ``[N, A]`` the similarity is computed from (``similarity_labels``): observed + imputed, or
        the observed training labels alone."""
        return self.store.labels() if self.config.similarity_labels == "observed+imputed" else self.train_labels

    def refresh_similarity(self) -> None:
        """Copy the engine's similarity into the ``[A, A]`` tensor the steps read (on the training device); with
        ``dense_similarity`` after the first epoch, blended with :attr:`predicted_kappa`."""
        if self.predicted_kappa is None:
            self.engine.similarity(out=self._similarity_cpu)
        else:
            self._similarity_cpu.copy_(dense_similarity(self.engine.kappa(), self.engine.overlap(),
                                                        self.predicted_kappa, self.config.dense_similarity))
        # non-blocking from pinned memory on CUDA: the next write into the host buffer comes after the next step's
        # read of the host, by which time this copy has finished
        self.similarity.copy_(self._similarity_cpu, non_blocking=True)

    def _step(self, batch: torch.Tensor, lam: float, totals: torch.Tensor) -> None:
        """One optimizer step on the global ``batch`` (this rank takes ``batch[rank::world_size]``). It reads the
        host once, after the optimizer step: the op's error word, the loss parts and the imputation selection of
        every rank in one copy (:mod:`.exchange`)."""
        config, device, dist = self.config, self.dist.device, self.dist
        items = batch[dist.rank::dist.world_size]
        on_device = _to_device(items, device)
        options = config.simlabel.replace(lam=lam)
        if config.imputed_as_targets:
            labels = _to_device(self.store.labels(items), device)
        else:
            labels = self._train_labels_device[on_device]
        out = self.network(self.inputs[on_device], labels)
        step = simlabel_loss(out.logits, labels, self.similarity, options, backend=config.backend, checks="deferred")
        # the loss of the global batch: sums normalised by the counts of every rank (reduction of the options)
        counts = dist.all_reduce_sum(torch.stack([step.n_ce, step.n_kl]))
        loss = combine_loss(step.ce_sum, step.kl_sum, counts[0], counts[1], options)
        loss = loss * dist.world_size + out.aux_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.clip)
        self.optimizer.step()
        self.scheduler.step()
        imputing = options.imputes and self.epoch >= config.impute_start_epoch
        shard = -(-len(batch) // dist.world_size)
        read = read_step(pack_step(dist, step.errors, step.ce_sum, step.kl_sum, step.n_ce, step.n_kl,
                                   (step.impute_mask, step.soft_argmax, step.confidence) if imputing else None, shard))
        check_errors(read.errors, labels, self.similarity, self.dataset.num_classes)
        totals += torch.from_numpy(read.totals)
        if imputing:
            self._impute(*selected_entries(read.entries, batch.numpy(), dist.world_size))
        self.global_step += 1

    def _impute(self, items, annotators, classes, confidence, mask) -> None:
        """Apply the step's selected entries (every rank's, in (item, annotator) order) to the store and the engine,
        then refresh S. In NumPy: a step handles a few hundred entries, where NumPy's per-call cost is far lower."""
        # An entry re-selected with the class it already holds changes nothing (the store keeps its provenance).
        keep = mask & (classes != self.store.classes.numpy()[items, annotators])
        if not keep.any():
            return
        change = self.store.update(items[keep], annotators[keep], classes[keep], confidence[keep],
                                   epoch=self.epoch + 1, step=self.global_step)
        if len(change) and self.config.similarity_labels == "observed+imputed":
            self.engine.set_labels(change.items, change.annotators, change.classes)
            self.refresh_similarity()

    # ---------------------------------------------------------------- epochs
    def predict_training_labels(self) -> None:
        """With ``dense_similarity`` (and a mode with soft labels): the kappa of the models' predicted labels
        ``[N_train, A]`` (argmax, eval mode) into :attr:`predicted_kappa`, once per epoch, and S refreshed from it.
        Each rank predicts its share of the training items (``train[rank::world_size]``) and the pair counts
        (integers, ``[A, A, C + 2]``) are summed over ranks, so every rank holds the same S."""
        if self.config.dense_similarity <= 0 or not self.config.simlabel.uses_soft_labels:
            return  # off, or Skip, which reads no similarity
        items = torch.as_tensor(self.dataset.split.train)[self.dist.rank::self.dist.world_size]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                parts = [self.model(self.inputs[_to_device(items[i:i + self.config.eval_batch_size],
                                                           self.dist.device)]).logits.argmax(-1).cpu()
                         for i in range(0, len(items), self.config.eval_batch_size)]
        finally:
            self.model.train(was_training)
        predicted = torch.cat(parts) if parts else torch.empty(0, self.dataset.num_annotators, dtype=torch.int64)
        n, agree, r = pair_counts(predicted, self.dataset.num_classes)
        counts = self.dist.all_reduce_sum(torch.cat([n.unsqueeze(-1), agree.unsqueeze(-1), r], -1))
        self.predicted_kappa = kappa_from_counts(counts[..., 0], counts[..., 1], counts[..., 2:])
        self.refresh_similarity()

    def _imputation_accuracy(self) -> tuple[int, float]:
        """(number scored, accuracy) of imputed labels at entries whose hidden label is known (removed on purpose,
        or a simulated crowd's): :attr:`hidden_train_labels`."""
        hidden = self.hidden_train_labels
        scored = (hidden >= 0) & (self.store.classes >= 0)
        n = int(scored.sum())
        if n == 0:
            return 0, math.nan
        return n, float((self.store.classes[scored] == hidden[scored]).double().mean())

    def _run_epoch(self) -> dict[str, Any]:
        config = self.config
        start = time.perf_counter()
        lam = kl_weight(config.step_lam, self.epoch, config.lam_warmup_epochs)
        totals = torch.zeros(4, dtype=torch.float64)
        self.network.train()
        steps = self.batches.global_epoch(self.epoch)
        bar = None
        if self.dist.is_main and config.progress and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(steps, total=len(self.batches), desc=f"epoch {self.epoch + 1}/{config.epochs}", leave=False,
                       file=sys.stderr, unit="step")
            steps = bar
        for batch in steps:
            self._step(batch, lam, totals)
        if bar is not None:
            bar.close()
        totals = self.dist.all_reduce_sum(totals)
        val = evaluate_split(self.model, self.inputs, self.dataset.annotations.labels, self.dataset.split.val,
                             self.dist, config.eval_batch_size)
        scored, imp_acc = self._imputation_accuracy()
        s = self._similarity_cpu
        a = s.shape[0]
        record = {
            "epoch": self.epoch + 1,  # numbered from 1, as in the log
            "step": self.global_step,
            "lr": float(self.scheduler.get_last_lr()[0]),
            "lam": lam,
            "ce": float(totals[0] / max(totals[2], 1)),
            "kl": float(totals[1] / max(totals[3], 1)),
            "ce_terms": int(totals[2]),
            "kl_terms": int(totals[3]),
            "imputed": len(self.store),
            "imputations_scored": scored,
            "imputation_accuracy": imp_acc,
            "mean_similarity": float(s.sum() / (a * (a - 1))) if a > 1 else 0.0,
            "val_loss": val.loss,
            "val_avg": val.avg,
            "val_micro": val.micro,
            "seconds": time.perf_counter() - start,
        }
        return record

    def fit(self, resume: bool = False) -> TrainResult:
        """Train (or continue, with ``resume``), then evaluate the best-validation model on the test split and, with
        a run directory, write the run's outputs (``metrics.json`` last) and ``model.pt``. The run directory is
        locked for the whole fit (rank 0 holds the lock; every rank stops if another process holds it)."""
        with hold_run_directory(self.run, self.dist):
            return self._fit(resume)

    def _fit(self, resume: bool) -> TrainResult:
        config, run = self.config, self.run
        if run is not None:
            if self.dist.is_main:
                run.create()
            self.dist.barrier()
        resumed = self.resume() if resume else False
        if run is not None and not resumed:
            occupied = bool(ckpt.epoch_checkpoints(self.checkpoint_dir) or run.finished)
            if self.dist.broadcast_object(occupied):  # rank 0's view, so every rank stops with the same error
                raise ValueError(f"{run} already holds a run; pass --resume to continue it or choose another --out")
        if self.dist.is_main:
            if run is not None:
                write_config(config, run.config_path)
            if not resumed:
                self.log(self._describe())
        started = time.perf_counter()
        while self.epoch < config.epochs and not self._stopped():
            record = self._run_epoch()
            self.epoch += 1
            self.predict_training_labels()
            self.history.append(record)
            improved = self._early_stopping(record["val_loss"])
            self.log(_epoch_line(record, config.epochs, improved))
            if self._on_epoch_end is not None:
                self._on_epoch_end(self, record)
            self._keep_best(improved)
        return self._finish(time.perf_counter() - started)

    def _stopped(self) -> bool:
        patience = self.config.patience
        return patience > 0 and self.best["bad_epochs"] >= patience

    def _early_stopping(self, val_loss: float) -> bool:
        """Update the early-stopping state with this epoch's validation loss; True if it is the best so far."""
        if math.isnan(val_loss) or val_loss < self.best["loss"]:  # no validation labels: the last epoch is best
            self.best = {"loss": val_loss if not math.isnan(val_loss) else math.inf, "epoch": self.epoch,
                         "bad_epochs": 0}
            return True
        self.best["bad_epochs"] += 1
        return False

    def _finish(self, seconds: float) -> TrainResult:
        self.dist.barrier()
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        data = self.dataset
        test = evaluate_split(self.model, self.inputs, data.annotations.labels, data.split.test, self.dist,
                              self.config.eval_batch_size)
        scored, imp_acc = self._imputation_accuracy()
        metrics = _metrics(self, test, scored, imp_acc, seconds)
        result = TrainResult(metrics, self.fitted_model(), list(self.history),
                             self.store.frame(data.annotations), {
                                 "kappa_initial": self.initial_kappa.numpy(),
                                 "kappa_final": self.engine.kappa().numpy(),
                                 "similarity_initial": self.initial_similarity.numpy(),
                                 "similarity_final": self._similarity_cpu.clone().numpy(),
                                 "overlap_initial": self.initial_overlap.numpy(),
                             }, self._predictions())
        if self.dist.is_main and self.run is not None:
            result.fitted.save(self.run.model_path)
            self.run.write_outputs(metrics, result.history, result.imputed, result.similarity,
                                   list(data.annotations.annotator_ids), result.predictions)
        if self.dist.is_main:
            where = f"; outputs in {self.run}" if self.run is not None else ""
            self.log(f"test: Avg {metrics['avg_accuracy']:.4f}  micro {metrics['micro_accuracy']:.4f}  "
                     f"({metrics['annotators_with_test_labels']} annotators, {test.labels} labels); "
                     f"best epoch {metrics['best_epoch']}; {metrics['imputations']} imputed{where}")
        self.dist.barrier()
        return result

    @torch.no_grad()
    def _predictions(self) -> dict[str, np.ndarray]:
        """The arrays of ``predictions.npz`` (:mod:`simlabel_ext.rundir`): ``classes`` (names ``[C]``), ``split``
        int8 ``[N]`` (0 train, 1 validation, 2 test, -1 none), and int16 ``[N, A]`` (-1 = none) ``labels`` (what
        the run was given),
        ``hidden`` (:attr:`CrowdDataset.hidden_labels`), ``imputed`` (the store at the end) and ``prediction``
        (the argmax of the current model on every item)."""
        data, model = self.dataset, self.model
        split = torch.full((data.num_items,), -1, dtype=torch.int8)
        for code, items in enumerate((data.split.train, data.split.val, data.split.test)):
            split[items] = code
        was_training = model.training
        model.eval()
        try:
            prediction = torch.cat([
                model(self.inputs[start:start + self.config.eval_batch_size].to(self.dist.device)).logits.argmax(-1).cpu()
                for start in range(0, data.num_items, self.config.eval_batch_size)])
        finally:
            model.train(was_training)
        small = {"labels": data.annotations.labels, "hidden": data.hidden_labels, "imputed": self.store.classes,
                 "prediction": prediction}
        return {"classes": np.array(data.annotations.class_names), "split": split.numpy(),
                **{name: value.to(torch.int16).numpy() for name, value in small.items()}}

    def fitted_model(self) -> FittedModel:
        """The model as it is now (after :meth:`fit`: the best validation epoch's) with what predicting new items
        needs: a copy on the CPU, its plugin and resolved options, classes, annotators, input spec and scaling."""
        config, data = self.config, self.dataset
        spec = get_registry().model(config.model).spec
        options = resolve_options(spec.option_specs, config.model_options, owner=f"model {config.model!r}")
        model = copy.deepcopy(self.model).cpu()
        metadata = {"simlabel_version": __version__, "config": config.to_dict(), "best_epoch": self.best["epoch"],
                    "epochs_run": self.epoch}
        return FittedModel(model, config.model, options, data.input_spec, list(data.annotations.class_names),
                           list(data.annotations.annotator_ids), feature_names=data.feature_names,
                           scaling=data.scaling, metadata=metadata)

    def _describe(self) -> str:
        data, config = self.dataset, self.config
        n_train = len(data.split.train)
        present = int((self.train_labels >= 0).sum())
        return (f"run: dataset {config.dataset} ({data.num_items} items, {data.num_annotators} annotators, "
                f"{data.num_classes} classes; {n_train} training items with {present} labels, "
                f"{1 - present / max(1, n_train * data.num_annotators):.1%} missing), model {config.model}, "
                f"mode {config.simlabel.mode}, seed {config.seed}, missing rate {config.missing_rate}, "
                f"{self.dist.world_size} process(es) on {self.dist.device}, {len(self.batches)} steps per epoch")


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``; to CUDA through pinned memory without blocking (the host allocator keeps the
    staging block until the copy is done)."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def _epoch_line(r: dict[str, Any], epochs: int, improved: bool) -> str:
    return (f"epoch {r['epoch']}/{epochs}  ce {r['ce']:.4f} (n={r['ce_terms']})  kl {r['kl']:.4f} "
            f"(n={r['kl_terms']}, lam={r['lam']:g})  imputed {r['imputed']}"
            + (f" (acc {r['imputation_accuracy']:.3f} on {r['imputations_scored']} hidden)"
               if r["imputations_scored"] else "")
            + f"  S mean {r['mean_similarity']:.4f}  val loss {r['val_loss']:.4f} Avg {r['val_avg']:.4f} "
            f"micro {r['val_micro']:.4f}  lr {r['lr']:.2e}  {r['seconds']:.1f}s" + ("  *" if improved else ""))


def _truth_agreement(data: CrowdDataset) -> list[dict[str, Any]]:
    """Per annotator, how often its own labels (all of them, before any removal) equal the true labels:
    ``truth_accuracy`` (None without truth) over ``truth_count`` labels of items whose truth is known."""
    real = (data.original if data.original is not None else data.annotations).labels
    if data.truth is None:
        return [{"truth_accuracy": None, "truth_count": 0} for _ in range(data.num_annotators)]
    known = (real >= 0) & (data.truth >= 0).unsqueeze(1)
    count = known.sum(0)
    hits = (known & (real == data.truth.unsqueeze(1))).sum(0)
    return [{"truth_accuracy": float(hits[k]) / int(count[k]) if count[k] else None, "truth_count": int(count[k])}
            for k in range(data.num_annotators)]


def _metrics(trainer: Trainer, test: SplitMetrics, scored: int, imp_acc: float, seconds: float) -> dict[str, Any]:
    data, config = trainer.dataset, trainer.config
    accuracy = test.accuracy
    truth = _truth_agreement(data)
    best = next((r for r in trainer.history if r["epoch"] == trainer.best["epoch"]), None)
    return {
        "dataset": config.dataset,
        "model": config.model,
        "mode": config.simlabel.mode,
        "seed": config.seed,
        "missing_rate": config.missing_rate,
        "annotators": [
            {"id": ann, "accuracy": None if math.isnan(float(accuracy[k])) else float(accuracy[k]),
             "test_count": int(test.count[k]), **truth[k]}
            for k, ann in enumerate(data.annotations.annotator_ids)
        ],
        "avg_accuracy": test.avg,
        "micro_accuracy": test.micro,
        "annotators_with_test_labels": int((test.count > 0).sum()),
        "test_labels": test.labels,
        "test_loss": test.loss,
        "imputations": len(trainer.store),
        "imputations_scored": scored,
        "imputation_accuracy": None if math.isnan(imp_acc) else imp_acc,
        "best_epoch": trainer.best["epoch"],
        "best_val_loss": trainer.best["loss"],
        "best_val_avg_accuracy": best["val_avg"] if best else None,
        "best_val_micro_accuracy": best["val_micro"] if best else None,
        "epochs_run": trainer.epoch,
        "epoch_limit": config.epochs,
        "steps": trainer.global_step,
        "world_size": trainer.dist.world_size,
        "train_seconds": seconds,
    }
