"""The SimLabel batch op: options, input checks, and the pure-PyTorch reference (the oracle of fused kernels)."""
from .options import SimLabelOptions, SimLabelOutput
from .reference import confidence, simlabel_loss_reference, soft_labels
from .loss import simlabel_loss

__all__ = [
    "SimLabelOptions",
    "SimLabelOutput",
    "confidence",
    "simlabel_loss",
    "simlabel_loss_reference",
    "soft_labels",
]
