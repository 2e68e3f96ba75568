"""``simlabel train``: one training run (Skip, SimLabel or SimLabel + Confidence), on one process or under torchrun.

Every :class:`~simlabel_ext.train.TrainConfig` option is a flag (``--batch-size 32``); ``--config FILE`` reads a
TOML/YAML file first and the flags override it. Options of the chosen dataset plugin are flags too
(``--data-dir DIR`` for ``music``, ``--labels FILE`` for ``crowd-csv``), as are ``--dataset-option KEY=VALUE``
and ``--model-option KEY=VALUE``. Under ``torchrun`` the same command runs data-parallel.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..registry import get_registry
from ..train import (
    TrainConfig,
    fit_run,
    init_distributed,
    load_config,
    option_fields,
    shutdown_distributed,
)
from ..train.config import PRESETS
from ..train.trainer import resolve_dataset_paths

_OPTION_TABLES = ("dataset_options", "model_options")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _flag_type(parse):
    """An argparse type from a config parser: its ValueError message becomes the flag's error message."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def add_config_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per :class:`TrainConfig` option (not given = the config file's value, else the default)."""
    group = parser.add_argument_group("training options (defaults: ALGORITHM.md §5; a --config file overrides them)")
    defaults = TrainConfig().to_dict()
    for f in option_fields():
        if f.name in _OPTION_TABLES or f.name in skip:
            continue
        default = defaults[f.name]
        help_text = f"{f.metadata['help']} (default: {default})"
        if isinstance(default, bool):
            group.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parse = f.metadata.get("parse")
            group.add_argument(flag(f.name), type=_flag_type(parse) if parse else type(default), default=None,
                               choices=f.metadata.get("choices"),
                               metavar=None if f.metadata.get("choices") else f.name.upper(), help=help_text)
    group.add_argument("--simlabel-preset", choices=sorted(PRESETS), default=None,
                       help="a named set of SimLabel options applied over the config file, under the flags; "
                            "paper = the paper's literal method (unshrunk kappa, flat mean, ...) (default: none)")
    group.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                       help="an option of the dataset plugin (repeatable); its options are also flags, e.g. "
                            "--data-dir DIR for music (simlabel plugins lists them)")
    group.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                       help="an option of the model plugin (repeatable), e.g. hidden=64")


def parse_key_values(pairs: list[str], what: str) -> dict[str, str]:
    """``--{what}-option KEY=VALUE`` flags as ``{key: value}`` (``-`` in a key read as ``_``); ``ValueError`` naming a
    malformed one."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--{what}-option expects KEY=VALUE; got {pair!r}")
        out[key.strip().replace("-", "_")] = value
    return out


def _dataset_flags(dataset: str, extra: list[str]) -> dict[str, str]:
    """Parse leftover ``--name value`` flags as options of dataset plugin ``dataset``."""
    if not extra:
        return {}
    spec = get_registry().dataset(dataset).spec
    parser = argparse.ArgumentParser(prog=f"dataset {dataset!r}", add_help=False, allow_abbrev=False,
                                     exit_on_error=False)
    for option in spec.option_specs:
        if option.name not in ("seed", "missing_rate"):
            parser.add_argument(flag(option.name), dest=option.name, default=None)
    try:
        known, unknown = parser.parse_known_args(extra)
    except argparse.ArgumentError as exc:
        raise ValueError(f"dataset {dataset!r}: {exc}") from None
    if unknown:
        names = ", ".join(flag(o.name) for o in spec.option_specs if o.name not in ("seed", "missing_rate"))
        raise ValueError(f"unrecognised argument {unknown[0]!r} (dataset {dataset!r} takes {names or 'no options'})")
    return {k: v for k, v in vars(known).items() if v is not None}


def resolve_config(args: argparse.Namespace, extra: list[str]) -> TrainConfig:
    """The config file (or the defaults), then the preset, then the command-line flags; dataset options that
    name files made absolute."""
    config = load_config(args.config) if args.config else TrainConfig()
    if args.simlabel_preset:
        config = config.replace(**PRESETS[args.simlabel_preset])
    changes: dict[str, Any] = {}
    for f in option_fields():
        value = getattr(args, f.name, None)
        if f.name not in _OPTION_TABLES and value is not None:
            changes[f.name] = value
    dataset = changes.get("dataset", config.dataset)
    dataset_options = dict(config.dataset_options) if dataset == config.dataset else {}
    dataset_options.update(parse_key_values(args.dataset_option, "dataset"))
    dataset_options.update(_dataset_flags(dataset, extra))
    model = changes.get("model", config.model)
    model_options = dict(config.model_options) if model == config.model else {}
    model_options.update(parse_key_values(args.model_option, "model"))
    config = config.replace(**changes, dataset_options=dataset_options, model_options=model_options)
    return resolve_dataset_paths(config)


def default_out(config: TrainConfig) -> Path:
    mode = config.simlabel.mode.replace("+", "-")
    return Path("runs") / f"{config.dataset}-{config.model}-{mode}-seed{config.seed}"


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train",
        help="train annotator models with Skip, SimLabel or SimLabel + Confidence",
        description=(
            "Train one annotator model (one head or network per annotator) on a dataset plugin and write "
            "metrics.json, history.json, imputed_labels.csv, similarity.npz, config.toml, train.log and "
            "checkpoints/ into --out. Run it under `torchrun --nproc_per_node=N -m simlabel_ext train ...` for "
            "data-parallel training (same results as one process with the same global --batch-size)."
        ),
    )
    p.add_argument("--config", default=None, metavar="FILE", help="TOML or YAML config file (flags override it)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="run directory (default: runs/DATASET-MODEL-MODE-seedSEED)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest readable checkpoint (a fresh start if none)")
    add_config_arguments(p)
    p.set_defaults(run=run, accepts_extra=True)


def run(args: argparse.Namespace, extra: list[str] | None = None) -> int:
    config = resolve_config(args, list(extra or []))
    out = Path(args.out) if args.out else default_out(config)
    dist = init_distributed(config.device)
    try:
        fit_run(config, out, dist=dist, resume=args.resume)
    finally:
        shutdown_distributed()
    return 0
