// Pairwise-count similarity engine (ALGORITHM.md §1 and §4).
//
// For every ordered annotator pair (a, b) it keeps, over the items both labelled:
//   n[a][b]      number of shared items                       (symmetric; n[a][a] = #labels of a)
//   agree[a][b]  number of shared items with equal labels      (symmetric)
//   r[a][b][c]   how often a said c on the items shared with b (r[a][b] is a's marginal against b)
// Cohen's kappa of (a, b) needs only n, agree, r[a][b] and r[b][a]; it is cached per pair and refreshed only
// for annotators whose labels changed since the last query (dirty flags); the similarity S of the last-used
// (n0, min_overlap) is cached the same way. Memory is O(N*A + A*A*C): the label matrix, three count arrays and
// the two caches; never the A*A*C*C confusion tables.
//
// Every count is an exact integer; kappa is formed as one division of two exact int64 numbers,
//   kappa = (agree*n - sum_c r_ab[c] r_ba[c]) / (n*n - sum_c r_ab[c] r_ba[c]),
// which equals (po - pe) / (1 - pe). It is NaN where n = 0 or pe = 1 (denominator 0, decided in integers).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

// pybind11's own namespace is hidden; a bound class must not be more visible than pybind11's types.
#if defined(__GNUC__)
#define SIMLABEL_HIDDEN __attribute__((visibility("hidden")))
#else
#define SIMLABEL_HIDDEN
#endif

namespace simlabel {

// Not thread-safe: the binding releases the GIL in the build, set_labels, kappa and similarity, so one object must
// not be used from several Python threads at once (the build and refreshes are parallel inside).
class SIMLABEL_HIDDEN PairCounts {
 public:
  // labels: int64 [N, A] with values -1 (missing) or 0..num_classes-1, any strides, on the CPU.
  // Throws std::invalid_argument naming the offending [row, column] and value.
  PairCounts(const at::Tensor& labels, int64_t num_classes);

  // Sets entry (item, annotator) to cls (-1 removes); a no-op when it already holds cls. O(A) count updates.
  void set_label(int64_t item, int64_t annotator, int64_t cls);
  // add: the entry must be missing; remove: it must be present; replace: it must be present (any new class).
  void add(int64_t item, int64_t annotator, int64_t cls);
  void remove(int64_t item, int64_t annotator);
  void replace(int64_t item, int64_t annotator, int64_t cls);
  // Applies set_label(items[k], annotators[k], classes[k]) for k = 0.. in order. All indices and classes are
  // validated before the first change, so a bad batch changes nothing.
  void set_labels(const at::Tensor& items, const at::Tensor& annotators, const at::Tensor& classes);

  // kappa: float64 [A, A], NaN where undefined. similarity: [A, A], zero diagonal, float64 unless `out` is
  // given. `out` (optional) is a contiguous CPU [A, A] tensor to write into and return instead of allocating
  // one: float64 for kappa, float32 or float64 for similarity (a trainer refreshing S every step reuses it).
  at::Tensor kappa(const std::optional<at::Tensor>& out = std::nullopt);
  at::Tensor similarity(double n0, int64_t min_overlap, const std::optional<at::Tensor>& out = std::nullopt);
  at::Tensor overlap() const;                               // int64 [A, A] (n)
  at::Tensor agreement() const;                             // int64 [A, A] (agree)
  at::Tensor marginals() const;                             // int64 [A, A, C] (r)
  at::Tensor labels() const;                                // int64 [N, A] copy
  int64_t label(int64_t item, int64_t annotator) const;

  int64_t num_items() const { return N_; }
  int64_t num_annotators() const { return A_; }
  int64_t num_classes() const { return C_; }
  int64_t num_labels() const { return num_labels_; }
  // Bytes held by this object (label matrix, counts, caches, dirty flags).
  int64_t memory_bytes() const;

 private:
  void check_item(int64_t item) const;
  void check_annotator(int64_t annotator) const;
  void check_class(int64_t cls, bool allow_missing) const;
  // Adds (sign = +1) or removes (sign = -1) label cls of (item, a); labels_ must not hold it at the call.
  void apply(int64_t item, int64_t a, int32_t cls, int32_t sign);
  void refresh_kappa();
  at::Tensor output(const std::optional<at::Tensor>& out, const char* what, bool allow_float32) const;
  double pair_kappa(int64_t a, int64_t b) const;
  // Recomputes kappa (and S, when its cache is valid) at (a, b) for a in [a0, a1), b in [b0, b1).
  void refresh_block(int64_t a0, int64_t a1, int64_t b0, int64_t b1);

  int64_t N_, A_, C_;
  int64_t num_labels_ = 0;
  std::vector<int32_t> labels_;  // [N, A], -1 = missing
  std::vector<int32_t> n_;       // [A, A]
  std::vector<int32_t> agree_;   // [A, A]
  std::vector<int32_t> r_;       // [A, A, C]
  std::vector<double> kappa_;    // [A, A] cache, valid where neither annotator is dirty
  std::vector<uint8_t> dirty_;   // [A]
  std::vector<int64_t> dirty_list_;
  std::vector<double> sim_;      // [A, A] S for (sim_n0_, sim_min_overlap_), allocated on first use
  bool sim_valid_ = false;
  double sim_n0_ = 0.0;
  int64_t sim_min_overlap_ = 0;
};

// The Python binding, `void bind_similarity(pybind11::module_& m)`, is defined in pair_counts.cpp and declared
// in csrc/bindings.cpp (keeping pybind11 out of this header).

}  // namespace simlabel
