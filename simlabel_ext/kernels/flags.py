"""The switches of one SimLabel step as the fused op passes them to every kernel (one bit set), and the errors
word every kernel returns.

:attr:`SimLabelOptions.kernel_flags <simlabel_ext.ops.options.SimLabelOptions>` makes them from the options. The
C++ kernel declares the same bits in ``csrc/simlabel_loss/kernel_flags.h`` and exports them as
``simlabel_ext._C.KERNEL_FLAGS``; a test checks that the two agree.
"""
from __future__ import annotations

import enum

__all__ = ["NO_ERROR", "KernelFlag"]

#: The value of an entry of the op's ``errors`` output [2] (the row-major flat index of the first bad label, of
#: the first bad similarity entry) when there is none: larger than every index.
NO_ERROR = 2**63 - 1


class KernelFlag(enum.IntFlag):
    """One bit per switch of the step (see the module docstring)."""

    SOFT = 1               # mode != "skip": a KL term towards the soft label on missing entries
    IMPUTE = 2             # mode == "simlabel+confidence": select entries to impute
    REVERSE_KL = 4         # kl_direction == "reverse"
    ALL_CONTRIBUTORS = 8   # contributors == "all"
    LABEL_SOURCE = 16      # soft_source == "labels"
    EVIDENCE_WEIGHT = 32   # kl_weight == "evidence"
