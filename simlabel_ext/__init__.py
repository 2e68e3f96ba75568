"""simlabel: similarity-weighted soft labels for multi-annotator learning with missing labels.

Public API (one road for the data, ARCHITECTURE in README):

- :mod:`simlabel_ext.data` — :class:`AnnotationMatrix` and the long / wide file formats;
- :mod:`simlabel_ext.similarity` — :class:`SimilarityEngine`, Cohen's kappa and the similarity S (C++ engine
  with a PyTorch fallback);
- :mod:`simlabel_ext.ops` — :func:`simlabel_loss`, one SimLabel batch step, and its pure-PyTorch reference;
- :class:`SimLabel` (:mod:`simlabel_ext.estimator`) — fit annotator models on a crowd in memory, predict each
  annotator's label for new items, save and load them.
"""
import torch  # noqa: F401  (must be imported before the compiled extension)

from ._version import __version__
from .data import AnnotationMatrix, read_long, read_wide, write_long, write_wide
from .estimator import SimLabel
from .ops import SimLabelOptions, SimLabelOutput, simlabel_loss, simlabel_loss_reference
from .similarity import DEFAULT_N0, SimilarityEngine

__all__ = [
    "DEFAULT_N0",
    "AnnotationMatrix",
    "SimLabel",
    "SimLabelOptions",
    "SimLabelOutput",
    "SimilarityEngine",
    "read_long",
    "read_wide",
    "simlabel_loss",
    "simlabel_loss_reference",
    "write_long",
    "write_wide",
    "__version__",
]
