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
        return [ModelSpec("my-net", build=MyNet, option_specs=(OptionSpec("hidden", int, 128, "width"),))]

After ``pip install`` the model is available by name everywhere (``simlabel plugins`` lists it). The built-in
models and datasets of ``simlabel_plugins`` register through exactly these entry points.
"""
from __future__ import annotations

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
    """

    name: str
    type: type
    default: Any
    help: str = ""
    path: bool = False

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise TypeError(f"option {self.name!r}: type must be one of bool, int, float, str; got {self.type}")
        if self.path and self.type is not str:
            raise TypeError(f"option {self.name!r}: a path option must have type str")

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
    """Defaults overridden by ``given``; an unknown option is an error that lists the known ones."""
    known = {s.name: s for s in specs}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"{owner} has no option {unknown[0]!r}; its options are: {', '.join(known) or 'none'}")
    return {name: spec.parse(given[name]) if name in given else spec.default for name, spec in known.items()}


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
