"""The plugin registry: every annotator model and dataset by name, with the distribution that provides it.

:class:`Registry` wraps a ``pluggy.PluginManager("simlabel")`` with the hookspecs of
:mod:`simlabel_ext.registry.hookspecs`. :meth:`Registry.from_entry_points` loads every entry point of the group
``simlabel`` (sorted by distribution and entry-point name) and registers the module it names;
:meth:`Registry.register` registers a plugin object directly (tests, programmatic use).

Rules
- A plugin is registered whole or not at all. Its hooks must return sequences of :class:`ModelSpec` /
  :class:`DatasetSpec` whose names match ``[A-Za-z0-9][A-Za-z0-9._-]*``; option names must be unique and each
  default must be ``None`` (no default: the plugin decides, e.g. "required") or a value of the option's type.
- A name registered by two plugins is a :class:`DuplicateNameError` naming both distributions and both
  entry points. :meth:`register` raises it. While loading entry points it is recorded in :attr:`failures`
  instead, the later plugin is not registered, and the name is withdrawn: looking it up raises the same
  error, so neither plugin is picked silently.
- Any exception while loading an entry point (import error, a hook that raises, malformed specs) is recorded in
  :attr:`failures` as a :class:`PluginFailure` (plugin name, distribution, error) and never raised, so
  ``simlabel plugins`` and every other command keep working.
- An unknown name is an :class:`UnknownNameError` listing the available names. All registry errors are
  ``ValueError`` subclasses (the CLI reports them in one line with exit status 2).

:func:`get_registry` is the process-wide registry built from the installed entry points, cached on first use.
"""
from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

import pluggy

from ..data.dataset import CrowdDataset
from ..models.contract import INPUT_KINDS, AnnotatorModel, InputSpec
from . import hookspecs
from .hookspecs import (
    ENTRY_POINT_GROUP,
    PROJECT,
    DatasetSpec,
    ModelSpec,
    OptionSpec,
    resolve_options,
)

__all__ = [
    "DuplicateNameError",
    "PluginFailure",
    "Registration",
    "Registry",
    "RegistryError",
    "UnknownNameError",
    "get_registry",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# kind -> (hook name, spec class)
_KINDS = {"model": ("simlabel_models", ModelSpec), "dataset": ("simlabel_datasets", DatasetSpec)}


class RegistryError(ValueError):
    """A problem with plugins or with a name asked of the registry."""


class DuplicateNameError(RegistryError):
    """Two plugins register the same model or dataset name; ``names`` lists the ``(kind, name)`` pairs."""

    def __init__(self, message: str, names: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.names = names


class UnknownNameError(RegistryError):
    """No model or dataset of that name is registered."""


class Registration(NamedTuple):
    """A registered model or dataset: its spec and the name of the distribution that provides it."""

    spec: ModelSpec | DatasetSpec
    distribution: str


class PluginFailure(NamedTuple):
    """A plugin that could not be registered: its name, its distribution and the error (``Type: message``)."""

    plugin: str
    distribution: str
    error: str


class Registry:
    """Models and datasets by name (see the module docstring for the rules)."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._entries: dict[str, dict[str, Registration]] = {kind: {} for kind in _KINDS}
        self._origin: dict[tuple[str, str], str] = {}  # (kind, name) -> "plugin 'x' of distribution 'y'"
        self._withdrawn: dict[tuple[str, str], DuplicateNameError] = {}
        self.failures: list[PluginFailure] = []

    @classmethod
    def from_entry_points(cls, entry_points: Iterable[Any] | None = None) -> Registry:
        """A registry of the given entry points (default: all installed ones of the group ``simlabel``).

        An entry point needs ``name``, ``value``, ``load()`` and ``dist`` (with ``.name``, or ``None``).
        """
        registry = cls()
        if entry_points is None:
            entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        registry.load_entry_points(entry_points)
        return registry

    def load_entry_points(self, entry_points: Iterable[Any]) -> None:
        """Load and register each entry point; errors go to :attr:`failures`, never up."""
        def distribution(ep: Any) -> str:
            dist = getattr(ep, "dist", None)
            return dist.name if dist is not None else "<unknown>"

        for ep in sorted(entry_points, key=lambda ep: (distribution(ep), ep.name)):
            dist = distribution(ep)
            try:
                self.register(ep.load(), name=f"{ep.name} = {ep.value}", distribution=dist)
            except DuplicateNameError as exc:
                self.failures.append(PluginFailure(ep.name, dist, f"{type(exc).__name__}: {exc}"))
                for kind, name in exc.names:
                    self._entries[kind].pop(name, None)
                    self._withdrawn[(kind, name)] = exc
            except Exception as exc:  # noqa: BLE001 - any plugin bug is reported, not raised
                self.failures.append(PluginFailure(ep.name, dist, f"{type(exc).__name__}: {exc}"))

    def register(self, plugin: object, name: str | None = None, distribution: str = "<direct>") -> None:
        """Register a plugin object (a module or any object with ``@hookimpl`` functions) as a whole.

        ``name`` labels it in messages (default: pluggy's canonical name); ``distribution`` is what
        :meth:`models` / :meth:`datasets` and ``simlabel plugins`` report as its provider.
        """
        plugin_name = self._pm.register(plugin, name=name)
        origin = f"plugin {plugin_name!r} of distribution {distribution!r}"
        try:
            self._pm.check_pending()
            found = {kind: self._collect(plugin, kind, origin) for kind in _KINDS}
            clashes = [(kind, spec.name) for kind, specs in found.items() for spec in specs
                       if spec.name in self._entries[kind] or (kind, spec.name) in self._withdrawn]
            if clashes:
                raise DuplicateNameError(
                    "; ".join(
                        f"{kind} {name!r} is registered twice: by {self._origin[(kind, name)]} and by {origin}"
                        for kind, name in clashes
                    ),
                    clashes,
                )
        except BaseException:
            self._pm.unregister(plugin)
            raise
        for kind, specs in found.items():
            for spec in specs:
                self._entries[kind][spec.name] = Registration(spec, distribution)
                self._origin[(kind, spec.name)] = origin

    def _collect(self, plugin: object, kind: str, origin: str) -> list[ModelSpec | DatasetSpec]:
        """The specs that ``plugin``'s own hook of ``kind`` returns, validated."""
        hook_name, spec_class = _KINDS[kind]
        specs: list[ModelSpec | DatasetSpec] = []
        for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
            if impl.plugin is not plugin:
                continue
            result = impl.function()
            if result is None:
                continue
            if isinstance(result, (str, bytes)) or not isinstance(result, Iterable):
                raise RegistryError(f"{origin}: {hook_name}() must return a sequence of {spec_class.__name__}")
            for spec in result:
                _check_spec(spec, spec_class, origin)
                if any(s.name == spec.name for s in specs):
                    raise RegistryError(f"{origin} registers {kind} {spec.name!r} twice")
                specs.append(spec)
        return specs

    # ------------------------------------------------------------------------------------------------ lookup

    def models(self) -> dict[str, Registration]:
        """Every usable model: name -> (spec, distribution), sorted by name."""
        return dict(sorted(self._entries["model"].items()))

    def datasets(self) -> dict[str, Registration]:
        """Every usable dataset: name -> (spec, distribution), sorted by name."""
        return dict(sorted(self._entries["dataset"].items()))

    def model(self, name: str) -> Registration:
        """The model ``name``; :class:`UnknownNameError` listing the available ones."""
        return self._lookup("model", name)

    def dataset(self, name: str) -> Registration:
        """The dataset ``name``; :class:`UnknownNameError` listing the available ones."""
        return self._lookup("dataset", name)

    def _lookup(self, kind: str, name: str) -> Registration:
        if (kind, name) in self._withdrawn:
            raise self._withdrawn[(kind, name)]
        entries = self._entries[kind]
        if name not in entries:
            available = ", ".join(sorted(entries)) or "none"
            failed = f" ({len(self.failures)} plugin(s) failed: see `simlabel plugins`)" if self.failures else ""
            raise UnknownNameError(f"unknown {kind} {name!r}; available: {available}{failed}")
        return entries[name]

    # ------------------------------------------------------------------------------------------------ build

    def build_model(
        self, name: str, input_spec: InputSpec, num_annotators: int, num_classes: int, **options: Any
    ) -> AnnotatorModel:
        """Build model ``name`` for ``input_spec`` with A annotators and C classes; ``options`` are resolved
        against its option specs (strings are parsed to the declared type; an unknown option is an error). A
        ``ValueError`` raised while building names the model."""
        spec = self.model(name).spec
        if input_spec.kind not in spec.input_kinds:
            raise RegistryError(f"model {name!r} takes inputs {spec.input_kinds}, not {input_spec.kind!r}")
        owner = f"model {name!r}"
        resolved = resolve_options(spec.option_specs, options, owner=owner)
        try:
            model = spec.build(input_spec, num_annotators, num_classes, resolved)
        except ValueError as exc:  # a value the options' ranges could not rule out (e.g. depth 0 for images)
            if str(exc).startswith(owner):
                raise
            raise ValueError(f"{owner}: {exc}") from exc
        if not isinstance(model, AnnotatorModel):
            raise RegistryError(f"model {name!r} built a {type(model).__name__}, not an AnnotatorModel")
        return model

    def load_dataset(self, name: str, **options: Any) -> CrowdDataset:
        """Load dataset ``name`` with ``options`` resolved against its option specs."""
        spec = self.dataset(name).spec
        resolved = resolve_options(spec.option_specs, options, owner=f"dataset {name!r}")
        dataset = spec.load(resolved)
        if not isinstance(dataset, CrowdDataset):
            raise RegistryError(f"dataset {name!r} loaded a {type(dataset).__name__}, not a CrowdDataset")
        return dataset


def _check_spec(spec: object, spec_class: type, origin: str) -> None:
    """``RegistryError`` unless ``spec`` is a well-formed ``spec_class``."""
    if not isinstance(spec, spec_class):
        raise RegistryError(f"{origin}: expected {spec_class.__name__}, got {type(spec).__name__}")
    what = f"{origin}, {spec_class.__name__} {spec.name!r}"
    if not isinstance(spec.name, str) or not _NAME.fullmatch(spec.name):
        raise RegistryError(f"{what}: a name must match {_NAME.pattern}")
    if not callable(spec.build if isinstance(spec, ModelSpec) else spec.load):
        raise RegistryError(f"{what}: its factory is not callable")
    if isinstance(spec, ModelSpec) and (not spec.input_kinds or set(spec.input_kinds) - set(INPUT_KINDS)):
        raise RegistryError(f"{what}: input_kinds {spec.input_kinds} must be a non-empty subset of {INPUT_KINDS}")
    seen: set[str] = set()
    for option in spec.option_specs:
        if not isinstance(option, OptionSpec):
            raise RegistryError(f"{what}: option_specs must hold OptionSpec, got {type(option).__name__}")
        if option.name in seen:
            raise RegistryError(f"{what}: option {option.name!r} is declared twice")
        seen.add(option.name)
        if option.default is not None:
            try:
                option.parse(option.default)
            except ValueError as exc:
                raise RegistryError(f"{what}: bad default: {exc}") from None


_default: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry of the installed entry points, built on first use (``refresh`` rebuilds it)."""
    global _default
    if _default is None or refresh:
        _default = Registry.from_entry_points()
    return _default
