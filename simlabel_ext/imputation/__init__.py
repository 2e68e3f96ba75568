"""The imputed labels of confidence cycling (ALGORITHM.md §4): a layer of their own beside the observed ones."""
from .store import ImputationStore, LabelChange

__all__ = ["ImputationStore", "LabelChange"]
