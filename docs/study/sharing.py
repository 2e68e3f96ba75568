"""This round's candidates for sharing backbones (docs/results.md, "SimLabel for sharing backbones"), one run per
call, on VALIDATION data (the test numbers it also writes are read only by dense.sh, for the lever that
validation chose).

Besides every option of the library (``--lam``, ``--soft-source``, ``--mode simlabel+confidence --targets``,
``--dense m`` for its ``dense_similarity``), it tries three levers that the library does not have, patched into
the trainer's step (or madl's forward) in pure PyTorch (the reference math of simlabel_ext.ops.reference, plus the
lever):

- ``--shrink m``: a KL strength per annotator that falls with its own training labels, ``w_a = m / (m + n_a)``;
- ``--gate g``: the KL term only where the soft label's confidence is at least ``g``;
- ``--kl-into shared|annotator`` (madl only): the KL term's gradient routed into one part of MaDL, the shared
  ground-truth classifier ``p(y|x)`` (the annotator's confusion held fixed: the soft label teaches the consensus
  model, not the annotator's tendency) or the annotator-performance model (the true-class distribution held fixed).
  The logits keep their values, so the loss and the soft labels are unchanged; only the gradient differs.

None of the three made padl or madl beat Skip on validation (docs/results.md), so none is in the library.
``dense_similarity`` (the similarity blended with the kappa of the models' predicted labels on every training item)
lifts heads and qumatl; dense.sh measures it on test. Every run, levers or not, goes through the same patched
step, so the variants of one table differ only by their lever. Usage (sharing.sh runs the grid, dense.sh the
dense test):

    python docs/study/sharing.py --dataset music --model padl --seed 0 --shrink 20 --out DIR
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

import simlabel_ext.train.trainer as trainer_module
from simlabel_ext.cli.train import parse_key_values
from simlabel_ext.kernels.flags import NO_ERROR
from simlabel_ext.models import ModelOutput
from simlabel_ext.ops.options import SimLabelOutput, combine_loss
from simlabel_ext.ops.reference import accumulation_dtype, confidence, entry_kl, soft_labels
from simlabel_ext.train import TrainConfig, Trainer

LEVERS = {"weight": None, "gate": 0.0}  # set per run: w_a [A] (or None) and the confidence gate


def route_kl(model, into: str) -> None:
    """Patch a MaDL ``model``'s forward so that at missing entries (``labels < 0``: the KL term's) the gradient
    reaches only the ground-truth model (``into="shared"``) or only the annotator-performance model
    (``"annotator"``); the observed entries (the CE term's) and every value are unchanged. Logits ``[B, A, C]``."""
    if not hasattr(model, "_parts"):
        raise SystemExit(f"sharing.py: --kl-into needs madl; got {type(model).__name__}")

    def forward(inputs, labels=None):
        log_p, log_conf = model._parts(inputs)  # [B, C], [B, A, C, C]
        full = torch.logsumexp(log_p[:, None, :, None] + log_conf, dim=2)
        if labels is None:
            return ModelOutput(full, full.new_zeros(()))
        if into == "shared":
            routed = torch.logsumexp(log_p[:, None, :, None] + log_conf.detach(), dim=2)
        else:
            routed = torch.logsumexp(log_p.detach()[:, None, :, None] + log_conf, dim=2)
        return ModelOutput(torch.where((labels >= 0)[..., None], full, routed), full.new_zeros(()))

    model.forward = forward


def step_with_levers(logits, labels, similarity, options, backend=None, checks=None) -> SimLabelOutput:
    """The reference step (logits [B, A, C], labels [B, A], similarity [A, A]) with the shrink and gate levers."""
    dtype = accumulation_dtype(logits.dtype)
    log_p = torch.log_softmax(logits.to(dtype), dim=-1)
    observed = labels >= 0
    ce = -log_p.gather(-1, labels.clamp(min=0).long().unsqueeze(-1)).squeeze(-1)
    ce_sum, n_ce = torch.where(observed, ce, torch.zeros_like(ce)).sum(), observed.sum()
    B, A, _ = logits.shape
    conf = log_p.new_zeros(B, A)
    argmax = torch.full((B, A), -1, dtype=torch.int64)
    impute = torch.zeros(B, A, dtype=torch.bool)
    if not options.uses_soft_labels:
        kl_sum, n_kl = log_p.new_zeros(()), torch.zeros((), dtype=torch.int64)
    else:
        q, mass = soft_labels(log_p.exp().detach(), labels, similarity, contributors=options.contributors,
                              soft_source=options.soft_source)
        soft = ~observed & (mass > 0)
        kl = entry_kl(log_p, q, mass, options)
        c = confidence(q)
        if LEVERS["weight"] is not None:
            kl = kl * LEVERS["weight"].to(kl.dtype)[None, :]
        gated = soft & (c >= LEVERS["gate"])
        kl_sum, n_kl = torch.where(gated, kl, torch.zeros_like(kl)).sum(), gated.sum()
        conf = torch.where(soft, c, conf)
        argmax = torch.where(soft, q.argmax(-1), argmax)
        if options.imputes:
            impute = soft & (conf >= options.threshold)
    loss = combine_loss(ce_sum, kl_sum, n_ce, n_kl, options)
    return SimLabelOutput(loss, ce_sum, kl_sum, n_ce, n_kl, conf, argmax, impute,
                          torch.full((2,), NO_ERROR, dtype=torch.int64))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="music, sentiment, amer2-like or amer-like")
    p.add_argument("--model", required=True)
    p.add_argument("--mode", default="simlabel")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lam", type=float, default=3.0)
    p.add_argument("--threshold", type=float, default=0.6, help="confidence above which soft labels are imputed")
    p.add_argument("--missing-rate", type=float, default=0.0)
    p.add_argument("--soft-source", default="predictions")
    p.add_argument("--targets", action="store_true", help="imputed labels trained as CE targets")
    p.add_argument("--shrink", type=float, default=0.0, help="m of w_a = m / (m + n_a); 0 = off")
    p.add_argument("--gate", type=float, default=0.0, help="KL only where the soft label's confidence >= this")
    p.add_argument("--kl-into", choices=("all", "shared", "annotator"), default="all",
                   help="madl: the part of the model the KL term's gradient reaches (all = the library's)")
    p.add_argument("--dense", type=float, default=0.0, help="the library's dense_similarity m (0 = off)")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the model plugin (repeatable), e.g. instance=false for madl")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    shared = Path(os.environ.get("SHARED", "../shared/data"))
    dataset, options = {"music": ("music", {"data_dir": str(shared / "music_genre")}),
                        "sentiment": ("sentiment", {"data_dir": str(shared / "sentiment_polarity")})}.get(
        a.dataset, ("synthetic", {"preset": a.dataset}))
    try:
        model_options = parse_key_values(a.model_option, "model")
    except ValueError as exc:
        p.error(str(exc))
    config = TrainConfig(dataset=dataset, dataset_options=options, model=a.model, model_options=model_options,
                         mode=a.mode, seed=a.seed, lr=a.lr,
                         lam=a.lam, threshold=a.threshold, missing_rate=a.missing_rate, soft_source=a.soft_source,
                         imputed_as_targets=a.targets, dense_similarity=a.dense, progress=False)
    out = Path(a.out)
    if (out / "metrics.json").is_file():
        return 0
    trainer = Trainer(config, out, log=lambda line: None)
    if a.shrink > 0:
        LEVERS["weight"] = a.shrink / (a.shrink + (trainer.train_labels >= 0).sum(0).double())
    LEVERS["gate"] = a.gate
    if a.kl_into != "all":
        route_kl(trainer.model, a.kl_into)
    trainer_module.simlabel_loss = step_with_levers
    m = trainer.fit().metrics
    print(f"{a.dataset} {a.model} {a.mode} seed {a.seed} -> {out}: best epoch {m['best_epoch']}, validation Avg "
          f"{100 * m['best_val_avg_accuracy']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
