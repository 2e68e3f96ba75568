"""Plugins: the hook specifications a plugin implements and the registry that finds them by name.

- :mod:`~simlabel_ext.registry.hookspecs` — the contract for third-party packages: the hooks
  ``simlabel_models`` / ``simlabel_datasets``, :class:`ModelSpec`, :class:`DatasetSpec`, :class:`OptionSpec`,
  :func:`resolve_options`, the marker :data:`hookimpl` and the entry-point group ``simlabel``;
- :mod:`~simlabel_ext.registry.manager` — :class:`Registry` (load entry points, look up by name,
  ``build_model`` / ``load_dataset``) and :func:`get_registry`, the cached registry of the installed plugins.
"""
from __future__ import annotations

from .hookspecs import (
    ENTRY_POINT_GROUP,
    PROJECT,
    DatasetSpec,
    ModelSpec,
    OptionSpec,
    hookimpl,
    hookspec,
    resolve_options,
)
from .manager import (
    DuplicateNameError,
    PluginFailure,
    Registration,
    Registry,
    RegistryError,
    UnknownNameError,
    get_registry,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT",
    "DatasetSpec",
    "DuplicateNameError",
    "ModelSpec",
    "OptionSpec",
    "PluginFailure",
    "Registration",
    "Registry",
    "RegistryError",
    "UnknownNameError",
    "get_registry",
    "hookimpl",
    "hookspec",
    "resolve_options",
]
