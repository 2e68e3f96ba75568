"""The configuration of one training run: every option, its default and its meaning, in one dataclass.

Training defaults are the paper's (ALGORITHM.md §5) except the learning rate: AdamW, lr 1e-3 (the paper's 1e-4
leaves runs on small crowds unconverged after 200 epochs; 1e-3 was chosen on validation data, docs/results.md),
weight decay 0.01, gradient-norm clip 1.0, linear warm-up over the first 20 % of steps then cosine decay, at most
200 epochs, early stopping with patience 25 on the validation loss. SimLabel defaults are the paper's except ``lam = 3``, chosen on validation data by the
ablation in docs/results.md (``PRESETS["paper"]`` restores the literal method, λ = 1). A run reads its
configuration from a TOML or YAML file (:func:`load_config`), command-line overrides are applied on top
(:meth:`TrainConfig.replace`), and the resolved configuration is saved with the run (:func:`write_config`) so
that ``simlabel train --config RUN/config.toml`` repeats it.

File layout (TOML; YAML has the same keys)::

    dataset = "music"
    model = "heads"
    mode = "simlabel+confidence"
    epochs = 200
    [dataset_options]
    data_dir = "../shared/data/music_genre"
    [model_options]
    hidden = 64
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..data import utf8_error
from ..ops.options import SimLabelOptions
from ..similarity import DEFAULT_N0

__all__ = ["LAM_AUTO", "PRESETS", "RUNTIME_OPTIONS", "TrainConfig", "check_missing_rate", "load_config",
           "option_fields", "parse_lam", "write_config"]

#: Named sets of SimLabel options, applied with ``TrainConfig.replace(**PRESETS[name])`` (``--simlabel-preset``).
#: ``paper``: the literal method of the paper (ALGORITHM.md §1–4): unshrunk kappa, one flat mean over all CE and
#: KL terms (eq. 3), KL(p || p_soft), λ = 1 from the first epoch, T = 0.6, imputation from the first epoch,
#: soft labels from the labelled contributors' predictions, uniform KL weights.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"n0": 0.0, "min_overlap": 0, "reduction": "flat", "kl_direction": "reverse", "lam": 1.0,
              "lam_warmup_epochs": 0, "contributors": "labelled", "soft_source": "predictions",
              "kl_weight": "uniform", "threshold": 0.6, "impute_start_epoch": 0, "imputed_as_targets": False,
              "similarity_labels": "observed+imputed"},
}

#: The value of ``lam`` that chooses λ on the validation split (:mod:`simlabel_ext.train.lam_selection`).
LAM_AUTO = "auto"

#: What the similarity matrix is computed from while training (``similarity_labels``).
SIMILARITY_LABELS = ("observed+imputed", "observed")

#: Options that do not change a run's outcome: a resumed or reused run may differ in them.
RUNTIME_OPTIONS = ("device", "progress")


def parse_lam(value: Any) -> float | str:
    """``lam`` from a flag or a file: a number >= 0, or ``"auto"``."""
    if isinstance(value, str) and value.strip().lower() == LAM_AUTO:
        return LAM_AUTO
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"lam must be a number >= 0 or {LAM_AUTO!r}; got {value!r}") from None
    return value


def check_missing_rate(rate: float, name: str) -> None:
    """A ``ValueError`` naming ``name`` unless ``0 <= rate < 1`` (the fraction of training labels removed)."""
    if not 0.0 <= rate < 1.0:
        why = ("removing every training label leaves nothing to train on" if rate >= 1.0 else
               "it is the fraction of the training labels removed")
        raise ValueError(f"{name} must lie in [0, 1): {why}; got {rate:g}")


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None, parse: Any = None) -> Any:
    metadata = {"help": help, "choices": choices, "parse": parse}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, init=False)
class TrainConfig:
    """Every option of a training run (see each field's ``help`` metadata, shown by ``simlabel train --help``).

    The options of the SimLabel step live in one :class:`~simlabel_ext.ops.SimLabelOptions`, ``simlabel``, which
    goes to the op unchanged (its ``lam`` is always this config's :attr:`step_lam`). Everywhere outside Python
    (flags, config files, the estimator's keyword arguments) the options are one flat set of names,
    :func:`option_fields`: ``TrainConfig(threshold=0.5, lr=1e-3)``, ``config.replace(mode="skip")`` and
    :meth:`to_dict` use them.
    """

    dataset: str = _opt("synthetic", "dataset plugin name (simlabel plugins lists them)")
    dataset_options: dict = _opt({}, "options of the dataset plugin (seed and missing_rate come from this config)")
    model: str = _opt("heads", "annotator-model plugin name")
    model_options: dict = _opt({}, "options of the model plugin")
    #: the options of the SimLabel step (flat names: every field of SimLabelOptions but lam, which is below)
    simlabel: SimLabelOptions = field(default_factory=SimLabelOptions)
    seed: int = _opt(0, "seed of the split, the label removal, the model initialisation and the batch order")
    missing_rate: float = _opt(0.0, "remove each training label with this probability before training, in [0, 1) "
                                    "(Table 4)")
    epochs: int = _opt(200, "maximum number of epochs")
    batch_size: int = _opt(64, "global batch size (items per optimizer step, summed over all processes)")
    eval_batch_size: int = _opt(1024, "items per evaluation batch")
    lr: float = _opt(1e-3, "AdamW learning rate (the paper's is 1e-4; 1e-3 converges on every data set of "
                           "docs/results.md within the epoch limit)")
    weight_decay: float = _opt(0.01, "AdamW weight decay")
    clip: float = _opt(1.0, "gradient-norm clip (0 = none)")
    warmup: float = _opt(0.2, "fraction of all optimizer steps of linear learning-rate warm-up, then cosine decay")
    patience: int = _opt(25, "early stopping: epochs without a lower validation loss (0 = never stop early)")
    lam: float | str = _opt(3.0, "weight lambda of the KL term (3: chosen on validation data, docs/results.md; "
                                 "paper: 1); auto = train with 0, 1 and 3 and keep the best validation Avg",
                            parse=parse_lam)
    lam_warmup_epochs: int = _opt(0, "ramp lambda linearly from lam/k to lam over the first k epochs (0 = none)")
    n0: float = _opt(DEFAULT_N0, "similarity shrinkage: kappa times n / (n + n0) for n shared items (0 = paper)")
    min_overlap: int = _opt(0, "similarity is 0 for annotator pairs sharing fewer training items than this")
    similarity_labels: str = _opt("observed+imputed", "labels the similarity is recomputed from during training: "
                                  "observed+imputed (Algorithm 1, line 10) or observed (imputations never change it)",
                                  SIMILARITY_LABELS)
    dense_similarity: float = _opt(0.0, "after every epoch, blend the similarity with the kappa of the models' "
                                        "predicted labels on every training item, weighted as m items: "
                                        "(n K + m K_pred) / (n + m) (0 = off; docs/results.md)")
    impute_start_epoch: int = _opt(0, "epochs to train before confident soft labels are imputed (0 = from the first "
                                      "epoch)")
    imputed_as_targets: bool = _opt(False, "train imputed entries with CE as hard labels instead of the KL term")
    device: str = _opt("auto", "auto (cuda if available, else cpu), cpu, cuda or cuda:K")
    backend: str = _opt("auto", "simlabel_loss backend: auto (fused op) or reference", ("auto", "reference"))
    progress: bool = _opt(True, "show a progress bar per epoch (rank 0, on a terminal)")

    def __init__(self, **options: Any) -> None:
        """Every option by its flat name (:func:`option_fields`); the rest keep their defaults."""
        known = {f.name: f for f in option_fields()}
        unknown = sorted(set(options) - set(known) - {"simlabel"})
        if unknown:
            raise ValueError(f"unknown config option {unknown[0]!r}; the options are: {', '.join(sorted(known))}")
        simlabel = options.pop("simlabel", None) or SimLabelOptions()
        if not isinstance(simlabel, SimLabelOptions):
            raise ValueError(f"config option 'simlabel' expects SimLabelOptions; got {simlabel!r}")
        for f in fields(self):
            if f.name != "simlabel":
                value = options[f.name] if f.name in options else (
                    f.default if f.default is not dataclasses.MISSING else f.default_factory())
                object.__setattr__(self, f.name, value)
        step = {name: _check_type(known[name], options[name]) for name in _SIMLABEL_NAMES if name in options}
        object.__setattr__(self, "simlabel", simlabel)
        self._validate(step)

    def _validate(self, step: dict[str, Any]) -> None:
        """Check every option (``step``: the SimLabel options given by flat name, already type-checked)."""
        object.__setattr__(self, "lam", parse_lam(self.lam))
        for f in fields(self):
            if f.name == "simlabel" or (f.name == "lam" and self.lam == LAM_AUTO):
                continue
            object.__setattr__(self, f.name, _check_type(f, getattr(self, f.name)))
        positive = ("epochs", "batch_size", "eval_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"config option {name!r} must be >= 1; got {getattr(self, name)}")
        non_negative = ("seed", "lr", "weight_decay", "clip", "patience", "lam", "lam_warmup_epochs", "n0",
                        "min_overlap", "dense_similarity", "impute_start_epoch")
        for name in non_negative:
            if getattr(self, name) != LAM_AUTO and getattr(self, name) < 0:
                raise ValueError(f"config option {name!r} must be >= 0; got {getattr(self, name)}")
        if not math.isfinite(self.dense_similarity):
            raise ValueError(f"config option 'dense_similarity' must be finite; got {self.dense_similarity}")
        if not 0.0 <= self.warmup <= 1.0:
            raise ValueError(f"config option 'warmup' must lie in [0, 1]; got {self.warmup}")
        check_missing_rate(self.missing_rate, "config option 'missing_rate'")
        for name in ("seed", "missing_rate"):
            if name in self.dataset_options:
                raise ValueError(f"set {name!r} at the top level of the config, not in dataset_options")
        # the SimLabel options are validated together; the step's λ is this config's
        object.__setattr__(self, "simlabel", self.simlabel.replace(**step, lam=self.step_lam))

    @property
    def step_lam(self) -> float:
        """The fixed λ of one :class:`~simlabel_ext.train.Trainer`: ``lam``, or 0 for ``lam = "auto"`` (only
        valid in Skip mode, which has no KL term; :func:`simlabel_ext.train.fit_run` splits other ``auto`` runs into
        one run per candidate λ)."""
        return 0.0 if self.lam == LAM_AUTO else self.lam

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes`` (flat names) applied; unknown names are an error naming them."""
        return TrainConfig(**{**self.to_dict(), "simlabel": self.simlabel, **changes})

    def differences(self, other: "TrainConfig") -> list[tuple[str, Any, Any]]:
        """``(option, self's value, other's value)`` for every option, outside :data:`RUNTIME_OPTIONS`, that
        differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [(k, mine[k], theirs[k]) for k in mine if k not in RUNTIME_OPTIONS and mine[k] != theirs[k]]

    def to_dict(self) -> dict[str, Any]:
        """Every option by its flat name, as plain data (str, int, float, bool, dict of those)."""
        out = {}
        for f in option_fields():
            value = getattr(self.simlabel if f.name in _SIMLABEL_FIELDS else self, f.name)
            out[f.name] = dict(value) if f.name.endswith("_options") else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "TrainConfig":
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a table of options at the top level")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from None


#: The SimLabel step's options by flat name (``lam`` is the config's own: it may be "auto").
_SIMLABEL_FIELDS = {f.name: f for f in fields(SimLabelOptions) if f.name != "lam"}
_SIMLABEL_NAMES = tuple(_SIMLABEL_FIELDS)


def option_fields() -> tuple[dataclasses.Field, ...]:
    """The fields of every option by its flat name, in order: the config's own, with the SimLabel step's options
    (:class:`~simlabel_ext.ops.SimLabelOptions` but ``lam``) where ``simlabel`` stands. Flags, config files and
    the estimator's keyword arguments are made from these (name, type via the default, ``help``, ``choices``)."""
    out: list[dataclasses.Field] = []
    for f in fields(TrainConfig):
        out.extend(_SIMLABEL_FIELDS.values() if f.name == "simlabel" else (f,))
    return tuple(out)


def _check_type(f: dataclasses.Field, value: Any) -> Any:
    """``value`` of option ``f`` (an int becomes a float for a float option); ``ValueError`` naming it otherwise."""
    kind = type(f.default) if f.default is not dataclasses.MISSING else dict
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        yaml_string = kind is float and isinstance(value, str)
        hint = " (YAML reads 1e-4 as a string: write 1.0e-4)" if yaml_string else ""
        raise ValueError(f"config option {f.name!r} expects {kind.__name__}; got {value!r}{hint}")
    if kind is dict:
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, (str, int, float, bool)):
                raise ValueError(f"config option {f.name!r}: {key!r} = {item!r} is not a string, number or boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"config option {f.name!r} must be finite; got {value!r}")
    _check_choice(f, value)
    return value


def _check_choice(f: dataclasses.Field, value: Any) -> None:
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ValueError(f"config option {f.name!r} = {value!r} is not one of {', '.join(choices)}")


def load_config(path: str | Path) -> TrainConfig:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``, needs PyYAML) configuration file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ModuleNotFoundError:
            raise ValueError(f"{path}: reading YAML needs PyYAML (pip install pyyaml); or use a .toml file") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: {exc}") from None
    else:
        raise ValueError(f"{path}: a config file must end in .toml, .yaml or .yml")
    return TrainConfig.from_dict(data, str(path))


def _toml_string(text: str) -> str:
    # A JSON string is a TOML basic string, once non-ASCII characters stay literal (TOML has no surrogate pairs)
    # and DEL, which TOML forbids unescaped, is escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return _toml_string(str(value))


def write_config(config: TrainConfig, path: str | Path) -> None:
    """Write ``config`` as TOML (scalars first, then the option tables); :func:`load_config` reads it back."""
    data = config.to_dict()
    lines = [f"{key} = {_toml_value(value)}" for key, value in data.items() if not isinstance(value, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]"] + [f"{_toml_string(k)} = {_toml_value(v)}" for k, v in table.items()]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
