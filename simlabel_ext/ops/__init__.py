"""The SimLabel batch op: its options (defined once), the public function, the fused op and the pure-PyTorch
reference it must equal (the oracle of every kernel)."""
from .loss import simlabel_loss
from .options import KernelFlag, SimLabelOptions, SimLabelOutput
from .reference import (
    closed_form_forward,
    confidence,
    simlabel_loss_reference,
    soft_labels,
)
from .validation import check_errors

__all__ = [
    "KernelFlag",
    "SimLabelOptions",
    "SimLabelOutput",
    "check_errors",
    "closed_form_forward",
    "confidence",
    "simlabel_loss",
    "simlabel_loss_reference",
    "soft_labels",
]
