// The one pybind11 module `simlabel_ext._C`. Each component of csrc/ exposes a `bind_*` function; this file
// only wires them together so that every component can be read (and compiled) on its own.
#include <torch/csrc/utils/pybind.h>

namespace simlabel {
void bind_similarity(pybind11::module_& m);
void bind_fused_loss(pybind11::module_& m);
}  // namespace simlabel

PYBIND11_MODULE(_C, m) {
  m.doc() = "simlabel C++ kernels: the pairwise-count similarity engine and the fused CPU SimLabel op";
  simlabel::bind_similarity(m);
  simlabel::bind_fused_loss(m);
}
