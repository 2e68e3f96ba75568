"""Experiments over many runs: the (model, mode, seed, missing rate) grid of ``simlabel compare``."""
from .grid import GridRun, expand_grid, run_grid

__all__ = ["GridRun", "expand_grid", "run_grid"]
