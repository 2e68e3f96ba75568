"""Training: the loop, and the rooms it composes. Owns no math.

- :mod:`.config` — :class:`TrainConfig`, every option with its default (the SimLabel step's as one
  :class:`~simlabel_ext.ops.SimLabelOptions`); TOML / YAML files;
- :mod:`.trainer` — :class:`Trainer`, the Skip / SimLabel / SimLabel + Confidence loop, in memory or into a run
  directory (:mod:`simlabel_ext.rundir`), giving a :class:`TrainResult`;
- :mod:`.lam_selection` — :func:`fit_run`: one run, or for ``lam = "auto"`` one per candidate λ, the best on
  validation (what ``simlabel train``, ``simlabel compare`` and the estimator call);
- :mod:`.checkpoint` — the checkpoint schema; atomic, code-free files with fallback;
- :mod:`.distributed`, :mod:`.sampler`, :mod:`.exchange` — DDP context, the rank-independent batch order, the
  all-gather of each step's imputations;
- :mod:`.evaluate`, :mod:`.schedule` — metrics over whole splits; optimizer, learning-rate schedule, λ ramp.
"""
from .config import TrainConfig, load_config, option_fields, write_config
from .distributed import Distributed, init_distributed, shutdown_distributed
from .evaluate import SplitMetrics, evaluate_split
from .lam_selection import fit_run
from .trainer import Trainer, TrainResult, load_run_dataset

__all__ = ["Distributed", "SplitMetrics", "TrainConfig", "TrainResult", "Trainer", "evaluate_split", "fit_run",
           "init_distributed", "load_config", "load_run_dataset", "option_fields", "shutdown_distributed",
           "write_config"]
