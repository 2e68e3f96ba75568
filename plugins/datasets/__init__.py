"""Built-in dataset plugins. Each returns a :class:`~simlabel_ext.data.CrowdDataset` with the seeded 70/15/15
item split of ALGORITHM.md §6, and takes the two options every dataset shares:

- ``seed`` (int, 0): seed of the split and of the simulated label removal (and of the generator, for
  ``synthetic``);
- ``missing_rate`` (float, 0.0): remove each remaining training label independently with this probability
  (paper Table 4); validation and test labels are never touched.

Modules: :mod:`.synthetic` (a seeded generator with presets matching the paper's Table 1), :mod:`.crowd_csv`
(any long-format annotation file plus a features file), :mod:`.music` (Rodrigues et al.'s music genre data), :mod:`.sentiment` (their sentence-polarity crowd).
"""
from __future__ import annotations

from simlabel_ext.registry import OptionSpec

#: The options every built-in dataset takes first.
COMMON_OPTIONS = (
    OptionSpec("seed", int, 0, "seed of the 70/15/15 split and of the simulated label removal", within="[0, inf)"),
    OptionSpec("missing_rate", float, 0.0, "remove each training label with this probability (paper Table 4)",
               within="[0, 1)"),
)
