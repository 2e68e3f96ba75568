"""The plugin API of simlabel: two pluggy hooks, one for annotator models and one for datasets.

A plugin is any module that implements one or both hooks below with :data:`hookimpl`, declared as an entry
point in the group ``simlabel`` of its distribution::

    # pyproject.toml of a third-party package
    [project.entry-points.simlabel]
    my_models = "my_package.simlabel_plugin"

    # my_package/simlabel_plugin.py
    from simlabel_ext.models import AnnotatorLinear, AnnotatorModel, ModelOutput, build_encoder
    from simlabel_ext.registry import ModelSpec, OptionSpec, hookimpl

    class MyNet(AnnotatorModel):
        def __init__(self, input_spec, num_annotators, num_classes, options):
            super().__init__(input_spec, num_annotators, num_classes)
            self.encoder, width = build_encoder(input_spec, options["hidden"], depth=1)
            self.heads = AnnotatorLinear(num_annotators, width, num_classes)

        def forward(self, inputs, labels=None):
            logits = self.heads(self.encoder(inputs))  # [B, A, C]
            return ModelOutput(logits, logits.new_zeros(()))

    @hookimpl
    def simlabel_models():
        width = OptionSpec("hidden", int, 128, "encoder width", within="[1, inf)")  # checked before MyNet runs
        return [ModelSpec("my-net", build=MyNet, option_specs=(width,))]

After ``pip install`` the model is available by name everywhere (``simlabel plugins`` lists it). The built-in
models and datasets of ``simlabel_plugins`` register through exactly these entry points.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy

PROJECT = "simlabel"
#: The entry-point group that plugins declare.
ENTRY_POINT_GROUP = "simlabel"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

_TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class OptionSpec:
    """One configuration option of a model or dataset: its name, type, default and a one-line help.

    ``path=True`` says the option names a file or folder: simlabel records it as an absolute path (in
    ``config.toml``), so that a run directory reads the same data from any working directory.
    ``within`` bounds an int or float option by an interval written as in mathematics, ``"[0, 1)"``,
    ``"(0, 1]"`` or ``"[1, inf)"``; ``choices`` lists the values a str option may take. Both are checked when
    the options are resolved (the error names the owner, the option and the value) and shown by
    ``simlabel plugins``. A default of ``None`` (no default) is exempt.
    """

    name: str
    type: type
    default: Any
    help: str = ""
    path: bool = False
    within: str | None = None
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise TypeError(f"option {self.name!r}: type must be one of bool, int, float, str; got {self.type}")
        if self.path and self.type is not str:
            raise TypeError(f"option {self.name!r}: a path option must have type str")
        if self.within is not None:
            if self.type not in (int, float):
                raise TypeError(f"option {self.name!r}: within= bounds int and float options only")
            _interval(self.name, self.within)
        if self.choices and self.type is not str:
            raise TypeError(f"option {self.name!r}: choices= applies to str options only")
        try:
            default = None if self.default is None else self.parse(self.default)
        except ValueError:
            default = None  # a mistyped default: the registry refuses it when it is registered ("bad default")
        if default is not None:
            try:
                self.check(default, "default")
            except ValueError:
                bound = f"within={self.within!r}" if self.within else f"choices={self.choices!r}"
                raise TypeError(f"option {self.name!r}: its default {self.default!r} lies outside its own {bound}"
                                ) from None

    def check(self, value: Any, owner: str) -> None:
        """A ``ValueError`` naming ``owner`` where ``value`` lies outside ``within`` or ``choices``."""
        if self.choices and value not in self.choices:
            raise ValueError(f"{owner}: option {self.name!r} must be one of {', '.join(self.choices)}; got {value!r}")
        if self.within is not None:
            low, high, low_closed, high_closed = _interval(self.name, self.within)
            inside = (value >= low if low_closed else value > low) and (value <= high if high_closed else value < high)
            if not inside:
                bound = f"be {'>=' if low_closed else '>'} {low:g}" if high == math.inf else f"lie in {self.within}"
                raise ValueError(f"{owner}: option {self.name!r} must {bound}; got {value!r}")

    def parse(self, value: Any) -> Any:
        """Convert a value (e.g. a command-line string) to this option's type; a clear error otherwise."""
        if isinstance(value, str) and self.type is not str:
            text = value.strip().lower()
            if self.type is bool:
                if text in ("1", "true", "yes", "on"):
                    return True
                if text in ("0", "false", "no", "off"):
                    return False
                raise ValueError(f"option {self.name!r} expects true/false; got {value!r}")
            try:
                return self.type(text)
            except ValueError:
                raise ValueError(f"option {self.name!r} expects {self.type.__name__}; got {value!r}") from None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise ValueError(f"option {self.name!r} expects {self.type.__name__}; got {value!r}")
        return value


def resolve_options(specs: Sequence[OptionSpec], given: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Defaults overridden by ``given``, each parsed to its type and checked against ``within`` / ``choices``; an
    unknown option is an error that lists the known ones. Every error starts with ``owner`` (``"model 'madl'"``)."""
    known = {s.name: s for s in specs}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"{owner} has no option {unknown[0]!r}; its options are: {', '.join(known) or 'none'}")
    resolved = {}
    for name, spec in known.items():
        if name not in given:
            resolved[name] = spec.default
            continue
        try:
            value = spec.parse(given[name])
        except ValueError as exc:
            raise ValueError(f"{owner}: {exc}") from None
        spec.check(value, owner)
        resolved[name] = value
    return resolved


def _interval(name: str, text: str) -> tuple[float, float, bool, bool]:
    """``(low, high, low_closed, high_closed)`` of an interval such as ``"[0, 1)"`` or ``"(0, inf)"``."""
    body = text.strip()
    parts = body[1:-1].split(",") if len(body) >= 2 else []
    try:
        if body[0] not in "[(" or body[-1] not in ")]" or len(parts) != 2:
            raise ValueError
        low, high = (float(part) for part in parts)
    except (ValueError, IndexError):
        raise TypeError(f"option {name!r}: within={text!r} is not an interval such as '[0, 1)' or '[1, inf)'") from None
    if not low < high or (body[0] == "[" and low == -math.inf) or (body[-1] == "]" and high == math.inf):
        raise TypeError(f"option {name!r}: within={text!r} is empty or closed at an infinity")
    return low, high, body[0] == "[", body[-1] == "]"


@dataclass(frozen=True)
class ModelSpec:
    """An annotator-model architecture.

    ``build(input_spec, num_annotators, num_classes, options) -> AnnotatorModel`` (see
    :mod:`simlabel_ext.models.contract`); ``options`` are already resolved against ``option_specs``.
    """

    name: str
    build: Callable[..., Any]
    option_specs: tuple[OptionSpec, ...] = ()
    description: str = ""
    input_kinds: tuple[str, ...] = ("features", "image")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: ``load(options) -> CrowdDataset`` (see :mod:`simlabel_ext.data.dataset`)."""

    name: str
    load: Callable[..., Any]
    option_specs: tuple[OptionSpec, ...] = ()
    description: str = ""


@hookspec
def simlabel_models() -> Sequence[ModelSpec]:
    """Return the annotator-model architectures this plugin provides (names unique across all plugins)."""


@hookspec
def simlabel_datasets() -> Sequence[DatasetSpec]:
    """Return the datasets this plugin provides (names unique across all plugins)."""
