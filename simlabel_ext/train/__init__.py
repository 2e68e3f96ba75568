"""Training: the loop, data parallelism, checkpoints and outputs. Composes the rooms below; owns no math.

- :mod:`.config` — :class:`TrainConfig`, every option with its default; TOML / YAML files;
- :mod:`.trainer` — :class:`Trainer`, Skip / SimLabel / SimLabel + Confidence;
- :mod:`.lam_selection` — :func:`fit_run`: one run, or for ``lam = "auto"`` one per candidate λ, the best on
  validation;
- :mod:`.distributed`, :mod:`.sampler` — DDP context and the rank-independent batch order;
- :mod:`.checkpoint` — atomic, code-free checkpoints with fallback;
- :mod:`.evaluate`, :mod:`.outputs` — metrics over whole splits and the run's files.
"""
from .config import TrainConfig, load_config, write_config
from .distributed import Distributed, init_distributed, shutdown_distributed
from .evaluate import SplitMetrics, evaluate_split
from .lam_selection import fit_run
from .trainer import Trainer, load_run_dataset

__all__ = ["Distributed", "SplitMetrics", "TrainConfig", "Trainer", "evaluate_split", "fit_run", "init_distributed",
           "load_config", "load_run_dataset", "shutdown_distributed", "write_config"]
