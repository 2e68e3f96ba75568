// Pairwise-count similarity engine: see pair_counts.h for the statistics and ALGORITHM.md §1/§4 for the math.
#include "similarity/pair_counts.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace simlabel {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

// S for one pair (ALGORITHM.md §1): n / (n + n0) * max(kappa, 0); 0 for NaN kappa, n = 0, n < min_overlap.
// The diagonal is zeroed by the callers.
inline double sim_entry(int64_t n, double kappa, double n0, int64_t min_overlap) {
  if (n > 0 && n >= min_overlap && kappa > 0.0) {  // kappa > 0 is false for NaN
    const double nd = static_cast<double>(n);
    return nd / (nd + n0) * kappa;
  }
  return 0.0;
}

void check_index_tensor(const at::Tensor& t, const char* name) {
  if (t.dim() != 1) {
    throw std::invalid_argument(cat(name, " must be a 1-D tensor, got ", t.dim(), " dimensions"));
  }
  if (t.scalar_type() != at::kLong) {
    throw std::invalid_argument(cat(name, " must be int64, got ", t.scalar_type()));
  }
  if (!t.device().is_cpu()) {
    throw std::invalid_argument(cat(name, " must be on the CPU, got ", t.device()));
  }
}

}  // namespace

PairCounts::PairCounts(const at::Tensor& labels, int64_t num_classes) {
  if (labels.dim() != 2) {
    throw std::invalid_argument(cat("labels must be a 2-D [items, annotators] tensor, got ", labels.dim(),
                                    " dimensions (shape ", labels.sizes(), ")"));
  }
  if (labels.scalar_type() != at::kLong) {
    throw std::invalid_argument(cat("labels must be int64, got ", labels.scalar_type()));
  }
  if (!labels.device().is_cpu()) {
    throw std::invalid_argument(cat("labels must be on the CPU, got ", labels.device()));
  }
  if (num_classes < 1 || num_classes > kInt32Max) {
    throw std::invalid_argument(cat("num_classes must be in 1..", kInt32Max, ", got ", num_classes));
  }
  N_ = labels.size(0);
  A_ = labels.size(1);
  C_ = num_classes;
  if (N_ > kInt32Max || A_ > kInt32Max) {
    throw std::invalid_argument(cat("labels has shape ", labels.sizes(), "; at most ", kInt32Max,
                                    " items and annotators are supported"));
  }

  // One pass copies and validates (row-major, so the first bad entry is the one reported) and counts the labels
  // per item and per annotator (branch-free: ~70-90 % of entries are missing in a random pattern).
  const int64_t N = N_, A = A_, C = C_;  // locals: stores through int64_t* must not reload the members
  labels_.resize(static_cast<size_t>(N * A));
  std::vector<int64_t> item_ptr(N + 1, 0), ann_ptr(A + 1, 0);
  {
    const int64_t* src = labels.data_ptr<int64_t>();
    const int64_t s0 = labels.stride(0), s1 = labels.stride(1);
    int32_t* dst = labels_.data();
    int64_t* ann_count = ann_ptr.data() + 1;
    for (int64_t i = 0; i < N; ++i) {
      int64_t count = 0;
      for (int64_t a = 0; a < A; ++a) {
        const int64_t v = src[i * s0 + a * s1];
        if (static_cast<uint64_t>(v + 1) > static_cast<uint64_t>(C)) {  // v < -1 || v >= C
          throw std::invalid_argument(cat("labels[", i, ", ", a, "] = ", v,
                                          " is out of range: expected -1 (missing) or a class in 0..", C - 1,
                                          " (num_classes=", C, ")"));
        }
        dst[i * A + a] = static_cast<int32_t>(v);
        count += (v >= 0);
        ann_count[a] += (v >= 0);
      }
      item_ptr[i + 1] = count;
    }
  }
  for (int64_t i = 0; i < N; ++i) item_ptr[i + 1] += item_ptr[i];
  for (int64_t a = 0; a < A; ++a) ann_ptr[a + 1] += ann_ptr[a];
  num_labels_ = item_ptr[N];

  // Two CSR views of the labelled entries: per item the (annotator, class) pairs, per annotator its items.
  std::vector<int32_t> item_ann(num_labels_ + 1), item_cls(num_labels_ + 1), ann_items(num_labels_);
  int64_t pair_updates = 0;  // sum over items of (#labels)^2: the work of the pair loop below
  for (int64_t i = 0; i < N; ++i) {
    const int32_t* row = &labels_[i * A];
    int64_t k = item_ptr[i];
    for (int64_t a = 0; a < A; ++a) {  // branch-free append; the one slot of slack absorbs the last write
      item_ann[k] = static_cast<int32_t>(a);
      item_cls[k] = row[a];
      k += (row[a] >= 0);
    }
    const int64_t count = item_ptr[i + 1] - item_ptr[i];
    pair_updates += count * count;
  }
  {
    std::vector<int64_t> fill(ann_ptr.begin(), ann_ptr.end() - 1);
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t k = item_ptr[i]; k < item_ptr[i + 1]; ++k) {
        ann_items[fill[item_ann[k]]++] = static_cast<int32_t>(i);
      }
    }
  }

  const size_t AA = static_cast<size_t>(A_ * A_);
  n_.assign(AA, 0);
  agree_.assign(AA, 0);
  r_.assign(AA * static_cast<size_t>(C_), 0);
  kappa_.assign(AA, std::numeric_limits<double>::quiet_NaN());
  dirty_.assign(static_cast<size_t>(A_), 1);
  dirty_list_.resize(static_cast<size_t>(A_));
  for (int64_t a = 0; a < A_; ++a) dirty_list_[a] = a;

  // Thread a owns row a of n, agree and r: for each item a labelled, every annotator b on that item adds to
  // (a, b). No two threads write the same memory, so neither atomics nor locks are needed. Chunks carry at
  // least ~2^18 pair updates (~0.5 ms), so small problems run inline instead of paying for a thread team.
  const int64_t grain =
      std::clamp<int64_t>(A * (int64_t{1} << 18) / std::max<int64_t>(1, pair_updates), 1, std::max<int64_t>(1, A));
  at::parallel_for(0, A, grain, [&](int64_t begin, int64_t end) {
    for (int64_t a = begin; a < end; ++a) {
      int32_t* na = &n_[a * A];
      int32_t* ga = &agree_[a * A];
      int32_t* ra = &r_[a * A * C];
      for (int64_t k = ann_ptr[a]; k < ann_ptr[a + 1]; ++k) {
        const int64_t i = ann_items[k];
        const int32_t ya = labels_[i * A + a];
        for (int64_t j = item_ptr[i]; j < item_ptr[i + 1]; ++j) {
          const int64_t b = item_ann[j];
          na[b] += 1;
          ra[b * C + ya] += 1;
          ga[b] += (item_cls[j] == ya);
        }
      }
    }
  });
}

void PairCounts::check_item(int64_t item) const {
  if (item < 0 || item >= N_) {
    throw std::out_of_range(cat("item index ", item, " is out of range for ", N_, " items"));
  }
}

void PairCounts::check_annotator(int64_t annotator) const {
  if (annotator < 0 || annotator >= A_) {
    throw std::out_of_range(cat("annotator index ", annotator, " is out of range for ", A_, " annotators"));
  }
}

void PairCounts::check_class(int64_t cls, bool allow_missing) const {
  if (cls >= C_ || cls < (allow_missing ? -1 : 0)) {
    throw std::invalid_argument(cat("class ", cls, " is out of range: expected ",
                                    allow_missing ? "-1 (missing) or " : "", "a class in 0..", C_ - 1,
                                    " (num_classes=", C_, ")"));
  }
}

void PairCounts::apply(int64_t item, int64_t a, int32_t cls, int32_t sign) {
  const int64_t A = A_, C = C_;
  const int32_t* row = &labels_[item * A];
  int32_t* na = &n_[a * A];
  int32_t* ga = &agree_[a * A];
  int32_t* ra = &r_[a * A * C];
  for (int64_t b = 0; b < A; ++b) {
    const int32_t yb = row[b];
    if (yb < 0 || b == a) continue;
    na[b] += sign;
    n_[b * A + a] += sign;
    ra[b * C + cls] += sign;
    r_[(b * A + a) * C + yb] += sign;
    if (yb == cls) {
      ga[b] += sign;
      agree_[b * A + a] += sign;
    }
  }
  na[a] += sign;
  ga[a] += sign;
  ra[a * C + cls] += sign;
  num_labels_ += sign;
  if (!dirty_[a]) {
    dirty_[a] = 1;
    dirty_list_.push_back(a);
  }
}

void PairCounts::set_label(int64_t item, int64_t annotator, int64_t cls) {
  check_item(item);
  check_annotator(annotator);
  check_class(cls, /*allow_missing=*/true);
  int32_t& entry = labels_[item * A_ + annotator];
  const int32_t old = entry;
  if (old == cls) return;
  if (old >= 0) {
    entry = -1;
    apply(item, annotator, old, -1);
  }
  if (cls >= 0) {
    apply(item, annotator, static_cast<int32_t>(cls), +1);
    entry = static_cast<int32_t>(cls);
  }
}

void PairCounts::add(int64_t item, int64_t annotator, int64_t cls) {
  check_item(item);
  check_annotator(annotator);
  check_class(cls, /*allow_missing=*/false);
  const int32_t old = labels_[item * A_ + annotator];
  if (old >= 0) {
    throw std::invalid_argument(cat("cannot add a label at [item ", item, ", annotator ", annotator,
                                    "]: it already holds class ", old, " (use replace or set_label)"));
  }
  set_label(item, annotator, cls);
}

void PairCounts::remove(int64_t item, int64_t annotator) {
  check_item(item);
  check_annotator(annotator);
  if (labels_[item * A_ + annotator] < 0) {
    throw std::invalid_argument(
        cat("cannot remove the label at [item ", item, ", annotator ", annotator, "]: it is missing"));
  }
  set_label(item, annotator, -1);
}

void PairCounts::replace(int64_t item, int64_t annotator, int64_t cls) {
  check_item(item);
  check_annotator(annotator);
  check_class(cls, /*allow_missing=*/false);
  if (labels_[item * A_ + annotator] < 0) {
    throw std::invalid_argument(cat("cannot replace the label at [item ", item, ", annotator ", annotator,
                                    "]: it is missing (use add or set_label)"));
  }
  set_label(item, annotator, cls);
}

void PairCounts::set_labels(const at::Tensor& items, const at::Tensor& annotators, const at::Tensor& classes) {
  check_index_tensor(items, "items");
  check_index_tensor(annotators, "annotators");
  check_index_tensor(classes, "classes");
  const int64_t K = items.size(0);
  if (annotators.size(0) != K || classes.size(0) != K) {
    throw std::invalid_argument(cat("items, annotators and classes must have the same length, got ", K, ", ",
                                    annotators.size(0), " and ", classes.size(0)));
  }
  const int64_t* it = items.data_ptr<int64_t>();
  const int64_t* an = annotators.data_ptr<int64_t>();
  const int64_t* cl = classes.data_ptr<int64_t>();
  const int64_t si = items.stride(0), sa = annotators.stride(0), sc = classes.stride(0);
  for (int64_t k = 0; k < K; ++k) {
    try {
      check_item(it[k * si]);
      check_annotator(an[k * sa]);
      check_class(cl[k * sc], /*allow_missing=*/true);
    } catch (const std::out_of_range& e) {
      throw std::out_of_range(cat("set_labels entry ", k, ": ", e.what()));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(cat("set_labels entry ", k, ": ", e.what()));
    }
  }
  for (int64_t k = 0; k < K; ++k) set_label(it[k * si], an[k * sa], cl[k * sc]);
}

double PairCounts::pair_kappa(int64_t a, int64_t b) const {
  const int64_t n = n_[a * A_ + b];
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  const int32_t* rab = &r_[(a * A_ + b) * C_];
  const int32_t* rba = &r_[(b * A_ + a) * C_];
  int64_t s = 0;  // sum_c r_ab[c] r_ba[c] <= n^2 < 2^62
  for (int64_t c = 0; c < C_; ++c) s += static_cast<int64_t>(rab[c]) * rba[c];
  const int64_t den = n * n - s;
  if (den == 0) return std::numeric_limits<double>::quiet_NaN();  // pe == 1 exactly
  const int64_t num = static_cast<int64_t>(agree_[a * A_ + b]) * n - s;
  return static_cast<double>(num) / static_cast<double>(den);
}

void PairCounts::refresh_block(int64_t a0, int64_t a1, int64_t b0, int64_t b1) {
  const int64_t A = A_;
  for (int64_t a = a0; a < a1; ++a) {
    double* ka = &kappa_[a * A];
    for (int64_t b = b0; b < b1; ++b) ka[b] = pair_kappa(a, b);
    if (sim_valid_) {
      const int32_t* na = &n_[a * A];
      double* sa = &sim_[a * A];
      for (int64_t b = b0; b < b1; ++b) sa[b] = sim_entry(na[b], ka[b], sim_n0_, sim_min_overlap_);
      if (a >= b0 && a < b1) sa[a] = 0.0;
    }
  }
}

void PairCounts::refresh_kappa() {
  if (dirty_list_.empty()) return;
  const int64_t A = A_;
  const int64_t d = static_cast<int64_t>(dirty_list_.size());
  // Each thread writes only its own rows of the caches; kappa is exactly symmetric (integer numerator and
  // denominator), so row b's entry for a dirty column a is the pair (a, b)'s new value.
  if (2 * d >= A) {
    // Full recompute, O(A^2 * C), in T x T tiles: pair_kappa(a, b) reads r[a][b] (contiguous along b) and
    // r[b][a]; within a tile the r[b][a0..a0+T) blocks stay in cache instead of one cache miss per pair.
    constexpr int64_t T = 64;
    const int64_t blocks = (A + T - 1) / T;
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t a0 = blk * T, a1 = std::min(A, a0 + T);
        for (int64_t b0 = 0; b0 < A; b0 += T) refresh_block(a0, a1, b0, std::min(A, b0 + T));
      }
    });
  } else {
    // O(d * A * C): dirty rows in full, every other row at the dirty columns only.
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, d * C_));
    at::parallel_for(0, A, grain, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        if (dirty_[b]) {
          refresh_block(b, b + 1, 0, A);
        } else {
          for (int64_t a : dirty_list_) refresh_block(b, b + 1, a, a + 1);
        }
      }
    });
  }
  for (int64_t a : dirty_list_) dirty_[a] = 0;
  dirty_list_.clear();
}

at::Tensor PairCounts::output(const std::optional<at::Tensor>& out, const char* what, bool allow_float32) const {
  if (!out.has_value() || !out->defined()) {
    return at::empty({A_, A_}, at::TensorOptions().dtype(at::kDouble));
  }
  const at::Tensor& t = *out;
  const bool dtype_ok = t.scalar_type() == at::kDouble || (allow_float32 && t.scalar_type() == at::kFloat);
  if (t.dim() != 2 || t.size(0) != A_ || t.size(1) != A_ || !dtype_ok || !t.device().is_cpu() ||
      !t.is_contiguous()) {
    throw std::invalid_argument(cat(what, " out= must be a contiguous CPU ", allow_float32 ? "float32/" : "",
                                    "float64 tensor of shape [", A_, ", ", A_, "], got ", t.scalar_type(), " ",
                                    t.sizes(), " on ", t.device(), t.is_contiguous() ? "" : " (non-contiguous)"));
  }
  return t;
}

at::Tensor PairCounts::kappa(const std::optional<at::Tensor>& out) {
  at::Tensor result = output(out, "kappa", /*allow_float32=*/false);
  refresh_kappa();
  std::copy(kappa_.begin(), kappa_.end(), result.data_ptr<double>());
  return result;
}

at::Tensor PairCounts::similarity(double n0, int64_t min_overlap, const std::optional<at::Tensor>& out) {
  if (!(n0 >= 0.0) || !std::isfinite(n0)) {
    throw std::invalid_argument(cat("n0 must be a finite number >= 0, got ", n0));
  }
  if (min_overlap < 0) {
    throw std::invalid_argument(cat("min_overlap must be >= 0, got ", min_overlap));
  }
  at::Tensor result = output(out, "similarity", /*allow_float32=*/true);
  refresh_kappa();  // also refreshes the dirty entries of a valid S cache
  const int64_t A = A_;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, A));
  if (!sim_valid_ || n0 != sim_n0_ || min_overlap != sim_min_overlap_) {  // new parameters: O(A^2) once
    sim_.resize(static_cast<size_t>(A * A));
    at::parallel_for(0, A, grain, [&](int64_t begin, int64_t end) {
      for (int64_t a = begin; a < end; ++a) {
        const int32_t* na = &n_[a * A];
        const double* ka = &kappa_[a * A];
        double* sa = &sim_[a * A];
        for (int64_t b = 0; b < A; ++b) sa[b] = sim_entry(na[b], ka[b], n0, min_overlap);
        sa[a] = 0.0;
      }
    });
    sim_valid_ = true;
    sim_n0_ = n0;
    sim_min_overlap_ = min_overlap;
  }
  if (result.scalar_type() == at::kFloat) {
    float* dst = result.data_ptr<float>();
    at::parallel_for(0, A * A, 1 << 16, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) dst[k] = static_cast<float>(sim_[k]);
    });
  } else {
    std::copy(sim_.begin(), sim_.end(), result.data_ptr<double>());
  }
  return result;
}

at::Tensor PairCounts::overlap() const {
  at::Tensor out = at::empty({A_, A_}, at::TensorOptions().dtype(at::kLong));
  std::copy(n_.begin(), n_.end(), out.data_ptr<int64_t>());
  return out;
}

at::Tensor PairCounts::agreement() const {
  at::Tensor out = at::empty({A_, A_}, at::TensorOptions().dtype(at::kLong));
  std::copy(agree_.begin(), agree_.end(), out.data_ptr<int64_t>());
  return out;
}

at::Tensor PairCounts::marginals() const {
  at::Tensor out = at::empty({A_, A_, C_}, at::TensorOptions().dtype(at::kLong));
  std::copy(r_.begin(), r_.end(), out.data_ptr<int64_t>());
  return out;
}

at::Tensor PairCounts::labels() const {
  at::Tensor out = at::empty({N_, A_}, at::TensorOptions().dtype(at::kLong));
  std::copy(labels_.begin(), labels_.end(), out.data_ptr<int64_t>());
  return out;
}

int64_t PairCounts::label(int64_t item, int64_t annotator) const {
  check_item(item);
  check_annotator(annotator);
  return labels_[item * A_ + annotator];
}

int64_t PairCounts::memory_bytes() const {
  return static_cast<int64_t>(sizeof(*this) + labels_.capacity() * sizeof(int32_t) +
                              n_.capacity() * sizeof(int32_t) + agree_.capacity() * sizeof(int32_t) +
                              r_.capacity() * sizeof(int32_t) + kappa_.capacity() * sizeof(double) +
                              sim_.capacity() * sizeof(double) + dirty_.capacity() * sizeof(uint8_t) +
                              dirty_list_.capacity() * sizeof(int64_t));
}

void bind_similarity(pybind11::module_& m) {
  namespace py = pybind11;
  using release = py::call_guard<py::gil_scoped_release>;
  py::class_<PairCounts>(m, "PairCounts", R"doc(
Exact pairwise label statistics of an [N items, A annotators] label matrix with C classes, kept up to date
under single-label changes in O(A) each. Use simlabel_ext.similarity.SimilarityEngine, which wraps this class.

For each ordered pair (a, b): n (shared items), agree (shared items with equal labels) and r[a][b][c] (how often
a said c on the items shared with b). kappa() is Cohen's kappa on each pair's shared items (NaN where n = 0 or
the chance agreement is 1), cached and refreshed only for annotators changed since the last call.
)doc")
      .def(py::init<const at::Tensor&, int64_t>(), py::arg("labels"), py::arg("num_classes"), release(),
           "Builds the counts from an int64 [N, A] tensor of labels in -1..num_classes-1 (-1 = missing).")
      .def("set_label", &PairCounts::set_label, py::arg("item"), py::arg("annotator"), py::arg("cls"),
           "Sets one entry to cls (-1 removes it); a no-op when unchanged. O(A).")
      .def("add", &PairCounts::add, py::arg("item"), py::arg("annotator"), py::arg("cls"),
           "Adds a label where none exists (ValueError otherwise).")
      .def("remove", &PairCounts::remove, py::arg("item"), py::arg("annotator"),
           "Removes an existing label (ValueError where none exists).")
      .def("replace", &PairCounts::replace, py::arg("item"), py::arg("annotator"), py::arg("cls"),
           "Replaces an existing label with cls (ValueError where none exists).")
      .def("set_labels", &PairCounts::set_labels, py::arg("items"), py::arg("annotators"), py::arg("classes"),
           release(), "Applies set_label for each triple in order (int64 1-D tensors); validated first.")
      .def("kappa", &PairCounts::kappa, py::arg("out") = py::none(), release(),
           "Cohen's kappa, float64 [A, A], NaN where undefined; written into `out` when given.")
      .def("similarity", &PairCounts::similarity, py::arg("n0"), py::arg("min_overlap"),
           py::arg("out") = py::none(), release(),
           "S[a,b] = n/(n+n0) * max(kappa, 0), NaN -> 0, 0 where n < min_overlap, zero diagonal: [A, A], float64 "
           "or written into `out` (contiguous float32/float64 [A, A]).")
      .def("overlap", &PairCounts::overlap, "Shared-item counts n, int64 [A, A].")
      .def("agreement", &PairCounts::agreement, "Agreement counts, int64 [A, A].")
      .def("marginals", &PairCounts::marginals, "r[a, b, c], int64 [A, A, C].")
      .def("labels", &PairCounts::labels, "A copy of the current label matrix, int64 [N, A].")
      .def("label", &PairCounts::label, py::arg("item"), py::arg("annotator"))
      .def_property_readonly("num_items", &PairCounts::num_items)
      .def_property_readonly("num_annotators", &PairCounts::num_annotators)
      .def_property_readonly("num_classes", &PairCounts::num_classes)
      .def_property_readonly("num_labels", &PairCounts::num_labels)
      .def("memory_bytes", &PairCounts::memory_bytes, "Bytes held by the statistics, label copy and cache.");
}

}  // namespace simlabel
