"""Dataset ``sentiment``: the MTurk sentence-polarity crowd of Rodrigues, Pereira & Ribeiro (2013), read in place.

4,999 movie-review sentences, 203 annotators, 27,746 labels (97.3 % missing), classes ``neg`` and ``pos``. Reads
three files of ``data_dir`` in the ``crowd-csv`` layout (nothing is copied), so that this data set is one flag:

- ``labels.csv``: ``task, worker, label``, one row per annotation;
- ``features.npz``: arrays ``task`` and ``features`` ``float32 [4999, 256]`` (TF-IDF of word 1-2 grams reduced by
  truncated SVD, standardised when the files were made, so not again here);
- ``truth.csv``: ``task, label``, the true polarity (reporting only).

Options: ``data_dir`` (str, required), ``seed`` (int, 0) and ``missing_rate`` (float, 0.0) (see
:mod:`simlabel_plugins.datasets`). Equivalent to ``crowd-csv`` with ``labels``, ``features`` and ``truth`` set to
those files and ``classes=neg,pos``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from simlabel_ext.data import CrowdDataset
from simlabel_ext.registry import DatasetSpec, OptionSpec, hookimpl

from . import COMMON_OPTIONS, crowd_csv

LABELS, FEATURES, TRUTH = "labels.csv", "features.npz", "truth.csv"
CLASSES = ("neg", "pos")

OPTIONS = (
    *COMMON_OPTIONS,
    OptionSpec("data_dir", str, None, f"required: the folder holding {LABELS}, {FEATURES} and {TRUTH}", path=True),
)


def load(options: dict[str, Any]) -> CrowdDataset:
    """The :class:`CrowdDataset` of resolved ``options``."""
    if options["data_dir"] is None:
        raise ValueError(f"dataset 'sentiment' needs the option 'data_dir' (the folder holding {LABELS})")
    root = Path(options["data_dir"])
    for name in (LABELS, FEATURES, TRUTH):
        if not (root / name).is_file():
            raise ValueError(f"dataset 'sentiment': {root / name} not found (data_dir must hold {LABELS}, "
                             f"{FEATURES} and {TRUTH})")
    return crowd_csv.load({
        "seed": options["seed"], "missing_rate": options["missing_rate"], "labels": str(root / LABELS),
        "features": str(root / FEATURES), "truth": str(root / TRUTH), "task_col": "task", "worker_col": "worker",
        "label_col": "label", "truth_col": None, "classes": ",".join(CLASSES), "standardize": False,
    })


@hookimpl
def simlabel_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("sentiment", load, OPTIONS,
                        "sentence polarity (Rodrigues et al. 2013): 4,999 sentences, 203 MTurk annotators, 2 classes")]
