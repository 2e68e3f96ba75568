"""Dataset ``music``: the music genre crowdsourcing data of Rodrigues, Pereira & Ribeiro (2013), read in place.

Reads two files of ``data_dir`` in their original format (nothing is copied):

- ``music_genre_mturk.csv``: one row per annotation, ``id, annotator, feature0..feature123, class``: the
  annotation matrix (700 songs x 44 annotators x 10 genres, 2,945 labels, 90.4 % missing) and the 124 Marsyas
  features of each song. The features repeat on every annotation row of a song; they must agree exactly;
- ``music_genre_gold.csv``: ``id, feature0..feature123, class``: the true genre (``truth``, for reporting
  only). Its features must agree with those of ``music_genre_mturk.csv``.

Items are songs in order of first appearance in the mturk file; classes are the ten genres in alphabetical
order (:data:`GENRES`).

Options: ``data_dir`` (str, required), ``seed`` (int, 0) and ``missing_rate`` (float, 0.0) (see
:mod:`simlabel_plugins.datasets`), ``standardize`` (bool, True): z-score every feature with the mean and std of
the training split's songs only, so no statistic of validation or test songs leaks into training (the raw
features span very different scales, e.g. -50 and 0.0007).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simlabel_ext.data import CrowdDataset, make_dataset, read_long, utf8_error
from simlabel_ext.models import InputSpec
from simlabel_ext.registry import DatasetSpec, OptionSpec, hookimpl

from . import COMMON_OPTIONS

MTURK = "music_genre_mturk.csv"
GOLD = "music_genre_gold.csv"
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

OPTIONS = (
    *COMMON_OPTIONS,
    OptionSpec("data_dir", str, None, f"required: the folder holding {MTURK} and {GOLD}", path=True),
    OptionSpec("standardize", bool, True, "z-score the features with training-split statistics"),
)


def read_song_features(path: Path, id_col: str = "id") -> tuple[list[str], dict[str, np.ndarray], dict[str, str]]:
    """The feature column names (``feature*``, in header order) and, per song id, its ``float64 [124]`` features
    and the ``class`` of its first row.

    A song on several rows must have the same features on all of them (the error names both lines). The
    numbers are parsed by NumPy's C reader (these files hold no quoted fields).
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    if id_col not in header or "class" not in header:
        raise ValueError(f"{path}: expected a header with columns {id_col!r}, feature0.., 'class'")
    columns = [j for j, name in enumerate(header) if name.startswith("feature")]
    read = dict(delimiter=",", skiprows=1, ndmin=2, encoding="utf-8")
    try:
        values = np.loadtxt(path, usecols=columns, dtype=np.float64, **read)
        names = np.loadtxt(path, usecols=(header.index(id_col), header.index("class")), dtype=str, **read)
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    songs = names[:, 0].tolist()
    bad = np.argwhere(~np.isfinite(values) | (np.abs(values) > np.finfo(np.float32).max))
    if len(bad):
        k, j = bad[0]
        why = "non-finite value" if not np.isfinite(values[k, j]) else \
            f"value {float(values[k, j])!r} does not fit in float32 (|x| > 3.4e38)"
        raise ValueError(f"{path}, line {k + 2}: song {songs[k]!r}, {header[columns[j]]}: {why}")
    first: dict[str, int] = {}
    for k, song in enumerate(songs):
        first.setdefault(song, k)
    firsts = np.array([first[song] for song in songs], dtype=np.int64)
    differ = np.flatnonzero((values != values[firsts]).any(axis=1))
    if len(differ):
        k = int(differ[0])
        raise ValueError(f"{path}: song {songs[k]!r} has different features on lines {firsts[k] + 2} and {k + 2}")
    feature_names = [header[j] for j in columns]
    return (feature_names, {song: values[k] for song, k in first.items()},
            {song: str(names[k, 1]) for song, k in first.items()})


def load(options: dict[str, Any]) -> CrowdDataset:
    """The music genre :class:`CrowdDataset` of resolved ``options``."""
    if options["data_dir"] is None:
        raise ValueError("dataset 'music' needs the option 'data_dir' (the folder holding music_genre_mturk.csv)")
    root = Path(options["data_dir"])
    for name in (MTURK, GOLD):
        if not (root / name).is_file():
            raise FileNotFoundError(f"dataset 'music': {root / name} does not exist")
    matrix = read_long(root / MTURK, task_col="id", worker_col="annotator", label_col="class", classes=GENRES)
    feature_names, features, _ = read_song_features(root / MTURK)
    _, gold_features, gold_class = read_song_features(root / GOLD)
    truth = torch.full((matrix.num_items,), -1, dtype=torch.int64)
    for i, song in enumerate(matrix.item_ids):
        if song in gold_class:
            if not np.array_equal(gold_features[song], features[song]):
                raise ValueError(f"dataset 'music': song {song!r} has different features in {MTURK} and {GOLD}")
            if gold_class[song] not in GENRES:
                raise ValueError(f"dataset 'music': {GOLD}: song {song!r} has unknown genre {gold_class[song]!r}")
            truth[i] = GENRES.index(gold_class[song])
    x = torch.from_numpy(np.stack([features[song] for song in matrix.item_ids]).astype(np.float32))
    return make_dataset(
        x, InputSpec("features", (x.shape[1],)), matrix, truth,
        seed=options["seed"], missing_rate=options["missing_rate"], standardize_features=options["standardize"],
        feature_names=feature_names,
    )


@hookimpl
def simlabel_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            "music",
            load,
            OPTIONS,
            "music genre (Rodrigues et al. 2013): 700 songs, 44 MTurk annotators, 10 genres, 124 features",
        )
    ]
