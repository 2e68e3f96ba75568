// The switches of one SimLabel step as the fused op passes them to its kernels: one bit set. The same bits are
// simlabel_ext.ops.options.KernelFlag in Python; `_C.KERNEL_FLAGS` exports these values so a test can check that
// the two agree.
#pragma once

#include <cstdint>

namespace simlabel {

enum KernelFlag : int64_t {
  kSoft = 1,              // mode != "skip": a KL term towards the soft label on missing entries
  kImpute = 2,            // mode == "simlabel+confidence": select entries to impute
  kReverseKL = 4,         // kl_direction == "reverse": KL(p || q), else KL(q || p)
  kAllContributors = 8,   // contributors == "all", else only the annotators that labelled the item
  kLabelSource = 16,      // soft_source == "labels": contributors give one-hot labels
  kEvidenceWeight = 32,   // kl_weight == "evidence": each KL term times min(1, similarity mass)
};

constexpr int64_t kAllKernelFlags = kSoft | kImpute | kReverseKL | kAllContributors | kLabelSource | kEvidenceWeight;

}  // namespace simlabel
