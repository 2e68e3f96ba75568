"""simlabel's built-in plugins, installed as the package ``simlabel_plugins`` (this folder is ``plugins/``).

- :mod:`simlabel_plugins.models` — annotator models ``heads``, ``padl``, ``madl``, ``qumatl``;
- :mod:`simlabel_plugins.datasets` — datasets ``synthetic``, ``crowd-csv``, ``music``.

Each module registers through an entry point of the group ``simlabel`` in ``pyproject.toml``, exactly as a
third-party package would, and imports only simlabel's public API.
"""
