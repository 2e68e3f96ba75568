"""Annotation data: the label matrix ``[N, A]`` (``-1`` = missing) with its ids, and its file formats.

:class:`AnnotationMatrix` is the one container every other part of simlabel reads labels from; its
:meth:`~AnnotationMatrix.summary` gives the per-annotator label counts and missing rates (:class:`AnnotationSummary`).
:func:`read_long` / :func:`write_long` handle one-row-per-annotation files (crowd-kit / truth-inference style),
:func:`read_wide` / :func:`write_wide` one-row-per-item files, as CSV/TSV or Parquet (with ``pyarrow``); every
reading problem raises :class:`AnnotationFormatError` naming the file, the line and the value.
:func:`annotations_from` takes annotations in memory (a pandas long table, a wide array or a matrix).
:func:`read_table` reads the rows of any such table, :func:`read_features` a features file
(:class:`FeatureTable`). :func:`from_arrays` wraps a plain integer array with default ids.
:class:`InputSpec` says what one item's input is (a feature vector or an image).
:class:`CrowdDataset` is a whole data set as dataset plugins return it (inputs, annotations, truth, the
70/15/15 :class:`Split`); :func:`split_items`, :func:`simulate_missing`, :func:`standardize` and
:func:`make_dataset` implement the evaluation protocol (ALGORITHM.md §6).
"""
from __future__ import annotations

from .annotations import AnnotationMatrix, AnnotationSummary, from_arrays
from .dataset import (
                      SPLIT_FRACTIONS,
                      CrowdDataset,
                      FeatureScaling,
                      Split,
                      make_dataset,
                      simulate_missing,
                      split_items,
                      standardize,
)
from .features import FeatureTable, read_features
from .formats import (
                      AnnotationFormatError,
                      read_long,
                      read_table,
                      read_wide,
                      utf8_error,
                      write_long,
                      write_table,
                      write_wide,
)
from .frames import Annotations, annotations_from, plain
from .inputs import INPUT_KINDS, InputSpec

__all__ = [
    "AnnotationFormatError",
    "Annotations",
    "annotations_from",
    "plain",
    "AnnotationMatrix",
    "AnnotationSummary",
    "FeatureTable",
    "from_arrays",
    "read_features",
    "read_long",
    "read_table",
    "read_wide",
    "utf8_error",
    "write_long",
    "write_table",
    "write_wide",
    "INPUT_KINDS",
    "InputSpec",
    "CrowdDataset",
    "FeatureScaling",
    "SPLIT_FRACTIONS",
    "Split",
    "make_dataset",
    "simulate_missing",
    "split_items",
    "standardize",
]
