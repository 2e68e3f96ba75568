// Fused CPU kernel of one SimLabel batch step (ALGORITHM.md §2–4): one pass over the items writes the loss
// parts, the soft-label statistics and d(loss part)/d(logits) (Liger-Kernel style: the forward's grad buffer is
// the backward). The semantics are exactly those of simlabel_ext/ops/reference.py (the oracle of the tests).
//
// Layout. Items are independent (the A x A mixing happens inside one item), so the whole step is one
// at::parallel_for over items; each item is processed "annotator-major": its logits are transposed into
// [C][ld] rows (ld = A rounded up to one 64-byte vector of lanes), so every per-class loop is a vector loop over
// annotators: log-softmax, soft label q = num / mass, log q, KL, entropy, argmax and gradient rows all run 16
// (float) or 8 (double) annotators per instruction, independent of C.
//
// Mixing. num[c][n] = sum_{k in L} S[n,k] * src[k][c] (+ the mass row sum_{k in L} S[n,k]) is a register-tiled
// product over the item's contributor list L only: O(A * |L| * (C+1)) per item, which with contributors =
// labelled and most labels missing is a fraction of the dense O(A^2 (C+1)) product (contributors = all is the
// same kernel with L = everyone, and its mass is one precomputed row). S^T is stored in panels of 16 (float) or
// 8 (double) columns, the contributors' rows of p are packed contiguously, and a group of items sweeps one
// panel pair at a time, so the panel is read from L1/L2 for the whole group. soft_source = labels needs no
// multiplications: the contributors are sorted by label and each class row is a register sum of S^T rows.
// No [B, A, A] or [B, A, A, C] tensor exists: the extra memory is the [B, A, C] gradient (an output), O(B)
// partial sums and per-thread O(group * A * C) workspaces, plus the padded [A, A] transposed similarity.
//
// Determinism. Every item is computed by one thread in a fixed order and writes its own partial sums; the
// partials are added in item order at the end, so results do not depend on the number of threads. The float32
// kernels are compiled three times (x86-64 baseline, AVX2, AVX-512 via target attributes; picked at run time
// from the CPU, SIMLABEL_CPU_ISA=default|avx2|avx512 forces a lower one); they differ only where the compiler
// contracts a*b+c into an FMA (rounding-level). float64 always runs the baseline path: it is the accuracy mode.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/csrc/utils/pybind.h>

#include "simlabel_loss/kernel_flags.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <tuple>
#include <utility>
#include <type_traits>
#include <vector>

#pragma GCC diagnostic ignored "-Wpsabi"  // 64-byte vectors only cross always_inline (internal) boundaries

namespace simlabel {
namespace {

#define SL_INLINE inline __attribute__((always_inline))

// ------------------------------------------------------------------------------------------------------------
// Vectors of kBytes (GCC vector extensions): 64 for AVX-512 (one zmm), 32 for AVX2 (one ymm), 16 for the
// x86-64 baseline (one xmm); N lanes each. A vector wider than the target's registers is lowered poorly, so
// the width follows the instruction set.
// ------------------------------------------------------------------------------------------------------------
template <typename T, int kBytes>
struct Vec {
  using Int = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef T V __attribute__((vector_size(kBytes)));
  typedef Int I __attribute__((vector_size(kBytes)));
  static constexpr int N = kBytes / static_cast<int>(sizeof(T));
};

template <typename V, typename P>
SL_INLINE V vload(const P* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V, typename P>
SL_INLINE void vstore(P* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}
template <typename V, typename S>
SL_INLINE V splat(S s) {
  return V{} + s;
}
template <typename V>
SL_INLINE V vmax(V a, V b) {
  return a > b ? a : b;
}
template <typename V>
SL_INLINE V vmin(V a, V b) {
  return a < b ? a : b;
}
template <typename V>
using Elem = std::remove_cv_t<std::remove_reference_t<decltype(std::declval<V>()[0])>>;

// exp of x <= 0. float: Cephes expf (about 1 ulp), branch-free over lanes, results below 2^-126 flushed to 0,
// NaN propagated.
// double: the C library per lane (the float64 path is about accuracy, not speed).
template <typename V>
SL_INLINE V vexp(V x) {
  if constexpr (std::is_same_v<Elem<V>, float>) {
    using I = decltype(x < x);
    const I under = x < -87.33654f;
    x = x < -87.33654f ? splat<V>(-87.33654f) : x;  // clamps that let NaN through
    x = x > 88.0f ? splat<V>(88.0f) : x;
    const V big = splat<V>(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
    const V fn = (x * 1.44269504088896341f + big) - big;
    V r = x - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    const V z = r * r;
    V y = splat<V>(1.9875691500e-4f);
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * z + r + 1.0f;
    const I n = __builtin_convertvector(fn, I);
    V pow2;
    const I bits = (n + 127) << 23;
    std::memcpy(&pow2, &bits, sizeof(V));
    const V res = y * pow2;
    return under ? V{} : res;
  } else {
    for (int l = 0; l < static_cast<int>(sizeof(V) / sizeof(Elem<V>)); ++l) x[l] = std::exp(x[l]);
    return x;
  }
}

// Natural log of positive normal numbers. float: Cephes logf (about 1 ulp); double: the C library per lane.
template <typename V>
SL_INLINE V vlog(V x) {
  if constexpr (std::is_same_v<Elem<V>, float>) {
    using I = decltype(x < x);
    I bits;
    std::memcpy(&bits, &x, sizeof(V));
    I e = ((bits >> 23) & 0xff) - 126;
    const I mbits = (bits & 0x007fffff) | 0x3f000000;
    V m;
    std::memcpy(&m, &mbits, sizeof(V));  // x = m * 2^e, m in [0.5, 1)
    const I small = m < 0.707106781186547524f;
    e = e + small;  // small is -1 where true
    const V xm = (small ? m : V{}) + m - 1.0f;
    const V fe = __builtin_convertvector(e, V);
    const V z = xm * xm;
    V y = splat<V>(7.0376836292e-2f);
    y = y * xm - 1.1514610310e-1f;
    y = y * xm + 1.1676998740e-1f;
    y = y * xm - 1.2420140846e-1f;
    y = y * xm + 1.4249322787e-1f;
    y = y * xm - 1.6668057665e-1f;
    y = y * xm + 2.0000714765e-1f;
    y = y * xm - 2.4999993993e-1f;
    y = y * xm + 3.3333331174e-1f;
    y = y * xm * z;
    y = y + fe * -2.12194440e-4f;
    y = y - 0.5f * z;
    V r = xm + y;
    r = r + fe * 0.693359375f;
    return x == x ? r : x;  // NaN stays NaN
  } else {
    for (int l = 0; l < static_cast<int>(sizeof(V) / sizeof(Elem<V>)); ++l) x[l] = std::log(x[l]);
    return x;
  }
}

// ------------------------------------------------------------------------------------------------------------
// Problem description shared by all threads
// ------------------------------------------------------------------------------------------------------------
template <typename T>
using LoadFn = void (*)(const void* logits, int64_t item, int64_t A, int64_t C, int64_t ld, T* xT);

// logits[item] ([A][C], input dtype) -> xT ([C][ld], accumulation dtype); lanes n >= A are left untouched.
template <typename scalar_t, typename T>
void load_logits(const void* logits, int64_t item, int64_t A, int64_t C, int64_t ld, T* xT) {
  const scalar_t* src = static_cast<const scalar_t*>(logits) + item * A * C;
  for (int64_t n = 0; n < A; ++n) {
    for (int64_t c = 0; c < C; ++c) xT[c * ld + n] = static_cast<T>(src[n * C + c]);
  }
}

template <typename T>
struct Problem {
  const void* logits;
  LoadFn<T> load;
  const int64_t* labels;   // [B][A]
  const T* wt;             // [ld / N][A][N] panels: wt[n / N][k][n % N] = S[n][k], zero diagonal and padding
  const T* mass_all;       // [ld]: sum_k wt[k][n] (contributors = all), else nullptr
  const int32_t* iota;     // 0..A-1 (contributors = all)
  int64_t A, C, ld, group;
  bool soft, impute, reverse, all, label_source, evidence;
  T threshold, log_c;
  T* grad;                 // [B][A][C]
  T* conf;                 // [B][A]
  int64_t* argmax;         // [B][A]
  bool* impute_mask;       // [B][A]
  double* ce_part;         // [B] per-item partial sums and counts
  double* kl_part;
  int64_t* nce_part;
  int64_t* nkl_part;
  std::atomic<int64_t>* bad_label;  // smallest flat index of an out-of-range label, INT64_MAX if none
};

template <typename T>
struct AlignedBuffer {
  T* ptr = nullptr;
  explicit AlignedBuffer(size_t n) {
    ptr = static_cast<T*>(::operator new[](std::max<size_t>(n, 1) * sizeof(T), std::align_val_t(64)));
    std::memset(static_cast<void*>(ptr), 0, std::max<size_t>(n, 1) * sizeof(T));
  }
  ~AlignedBuffer() { ::operator delete[](ptr, std::align_val_t(64)); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
};

// ------------------------------------------------------------------------------------------------------------
// Per-item steps (always_inline: they are compiled into each ISA's chunk function)
// ------------------------------------------------------------------------------------------------------------

// Logits -> lp = log_softmax ([C][ld]) and p = exp(lp) ([C][ld]); labels -> yT, contributor list L.
template <typename T, int B>
SL_INLINE void prepare_item(const Problem<T>& pb, int64_t i, T* lp, T* p, typename Vec<T, B>::Int* yT, int32_t* L,
                            int64_t& nL) {
  using V = typename Vec<T, B>::V;
  constexpr int N = Vec<T, B>::N;
  const int64_t A = pb.A, C = pb.C, ld = pb.ld;
  pb.load(pb.logits, i, A, C, ld, lp);
  const int64_t* lab = pb.labels + i * A;
  int64_t count = 0;
  for (int64_t n = 0; n < A; ++n) {
    int64_t y = lab[n];
    if (y < -1 || y >= C) {
      const int64_t flat = i * A + n;
      int64_t cur = pb.bad_label->load(std::memory_order_relaxed);
      while (flat < cur && !pb.bad_label->compare_exchange_weak(cur, flat, std::memory_order_relaxed)) {
      }
      y = -1;
    }
    yT[n] = static_cast<typename Vec<T, B>::Int>(y);
    if (y >= 0) L[count++] = static_cast<int32_t>(n);
  }
  nL = count;
  for (int64_t n0 = 0; n0 < ld; n0 += N) {
    V m = vload<V>(lp + n0);
    for (int64_t c = 1; c < C; ++c) m = vmax(m, vload<V>(lp + c * ld + n0));
    V s = V{};
    for (int64_t c = 0; c < C; ++c) s += vexp(vload<V>(lp + c * ld + n0) - m);
    const V ls = vlog(s);
    for (int64_t c = 0; c < C; ++c) {
      const V l = (vload<V>(lp + c * ld + n0) - m) - ls;
      vstore(lp + c * ld + n0, l);
      vstore(p + c * ld + n0, vexp(l));
    }
  }
}

// num[c0 + b][n0 + v*N .. +N) = sum_j pk[j][c0 + b] * S^T[L[j]][n0 + v*N .. +N) for b < CB, v < NV, with the
// CB x NV accumulators in registers. S^T is stored in panels of N columns (panel[k][0..N) contiguous), so the
// rows of one panel are one contiguous block that stays in L1/L2 while a group of items sweeps it.
template <typename T, int B, int CB, int NV>
SL_INLINE void mix_tile(const T* __restrict pk, int64_t rows, const int32_t* __restrict L, int64_t nL,
                        const T* __restrict panel, int64_t panel_stride, int64_t c0, T* __restrict num, int64_t ld,
                        int64_t n0) {
  using V = typename Vec<T, B>::V;
  constexpr int N = Vec<T, B>::N;
  V acc[NV][CB];
#pragma GCC unroll 8
  for (int b = 0; b < CB; ++b) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[v][b] = V{};
  }
  const T* s = pk + c0;
  for (int64_t j = 0; j < nL; ++j, s += rows) {
    const int64_t k = L[j];
    V w[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) w[v] = vload<V>(panel + v * panel_stride + k * N);
#pragma GCC unroll 8
    for (int b = 0; b < CB; ++b) {
      const T sb = s[b];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[v][b] += w[v] * sb;
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < CB; ++b) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) vstore(num + (c0 + b) * ld + n0 + v * N, acc[v][b]);
  }
}

constexpr int kTileRows = 6;  // rows of a full tile; the packed rows are padded to a multiple of kTileRows / 2

template <typename T, int B, int NV>
SL_INLINE void mix_rows(const T* pk, int64_t rows, const int32_t* L, int64_t nL, const T* panel,
                        int64_t panel_stride, T* num, int64_t ld, int64_t n0) {
  int64_t c0 = 0;
  for (; c0 + kTileRows <= rows; c0 += kTileRows) {
    mix_tile<T, B, kTileRows, NV>(pk, rows, L, nL, panel, panel_stride, c0, num, ld, n0);
  }
  if (c0 < rows) mix_tile<T, B, kTileRows / 2, NV>(pk, rows, L, nL, panel, panel_stride, c0, num, ld, n0);
}

// soft_source = labels, one panel: num[c][n0 .. +N) = sum of S^T[k][n0 .. +N) over the observed contributors k
// with label c, and the mass row their total. L is sorted by label: L[off[c] .. off[c+1]) have label c, so each
// class is a register sum (two chains) and every row is written once.
template <typename T, int B>
SL_INLINE void mix_labels(const int32_t* L, const int32_t* off, const T* panel, int64_t C, T* num, int64_t ld,
                          int64_t n0) {
  using V = typename Vec<T, B>::V;
  constexpr int N = Vec<T, B>::N;
  V mass = V{};
  for (int64_t c = 0; c < C; ++c) {
    V a0 = V{}, a1 = V{};
    int64_t j = off[c];
    const int64_t e = off[c + 1];
    for (; j + 1 < e; j += 2) {
      a0 += vload<V>(panel + static_cast<int64_t>(L[j]) * N);
      a1 += vload<V>(panel + static_cast<int64_t>(L[j + 1]) * N);
    }
    if (j < e) a0 += vload<V>(panel + static_cast<int64_t>(L[j]) * N);
    a0 += a1;
    vstore(num + c * ld + n0, a0);
    mass += a0;
  }
  vstore(num + C * ld + n0, mass);
}

// Losses, gradient rows, confidence, argmax and imputation of one item from lp, p and (num, mass).
// On return lp holds the gradient rows ([C][ld]); they are transposed into pb.grad.
template <typename T, int B>
SL_INLINE void finish_item(const Problem<T>& pb, int64_t i, T* lp, const T* p, const T* num,
                           const typename Vec<T, B>::Int* yT, T* lqbuf) {
  using V = typename Vec<T, B>::V;
  using I = typename Vec<T, B>::I;
  using Int = typename Vec<T, B>::Int;
  constexpr int N = Vec<T, B>::N;
  const int64_t A = pb.A, C = pb.C, ld = pb.ld;
  const T* mass = pb.all ? pb.mass_all : num + C * ld;
  const V zero = V{};
  const V one = splat<V>(T(1));
  double ce_acc = 0, kl_acc = 0;
  int64_t nce = 0, nkl = 0;
  T* conf_out = pb.conf + i * A;
  int64_t* argmax_out = pb.argmax + i * A;
  bool* impute_out = pb.impute_mask + i * A;
  for (int64_t n0 = 0; n0 < ld; n0 += N) {
    const I y = vload<I>(yT + n0);
    const I obs = y >= 0;
    V ce = zero;
    for (int64_t c = 0; c < C; ++c) {
      const I is_c = y == static_cast<Int>(c);
      ce = is_c ? -vload<V>(lp + c * ld + n0) : ce;
    }
    const int64_t lanes = std::min<int64_t>(N, A - n0);
    if (pb.soft) {
      const V m = vload<V>(mass + n0);
      const I soft = ~obs & (m > zero);
      const V mm = soft ? m : one;
      V kl = zero, qlq = zero, sq = zero, qmax = splat<V>(T(-1));
      I am = I{};
      for (int64_t c = 0; c < C; ++c) {
        const V q = vload<V>(num + c * ld + n0) / mm;
        const V lq = vlog(q < T(1e-12) ? splat<V>(T(1e-12)) : q);  // the floor of log q (NaN stays NaN)
        vstore(lqbuf + c * N, lq);
        qlq += q * lq;
        sq += q;
        const I gt = q > qmax;
        qmax = gt ? q : qmax;
        am = gt ? splat<I>(static_cast<Int>(c)) : am;
        const V l = vload<V>(lp + c * ld + n0);
        if (pb.reverse) {
          kl += vload<V>(p + c * ld + n0) * (l - lq);
        } else {
          kl += q * (lq - l);
        }
      }
      const V entropy = -qlq;
      const V w = pb.evidence ? vmin(m, one) : one;
      const V wkl = pb.evidence ? kl * w : kl;
      const V cf = qmax * (one - entropy / pb.log_c);
      for (int64_t c = 0; c < C; ++c) {
        const V pc = vload<V>(p + c * ld + n0);
        const I is_c = y == static_cast<Int>(c);
        V g;
        if (pb.reverse) {
          g = pc * ((vload<V>(lp + c * ld + n0) - vload<V>(lqbuf + c * N)) - kl);
        } else {
          g = pc * sq - vload<V>(num + c * ld + n0) / mm;
        }
        if (pb.evidence) g = g * w;
        const V gce = pc - (is_c ? one : zero);
        vstore(lp + c * ld + n0, obs ? gce : (soft ? g : zero));
      }
      for (int64_t l = 0; l < lanes; ++l) {
        const int64_t n = n0 + l;
        if (soft[l]) {
          conf_out[n] = cf[l];
          argmax_out[n] = static_cast<int64_t>(am[l]);
          impute_out[n] = pb.impute && cf[l] >= pb.threshold;
          kl_acc += static_cast<double>(wkl[l]);
          ++nkl;
        } else {
          conf_out[n] = T(0);
          argmax_out[n] = -1;
          impute_out[n] = false;
        }
        if (obs[l]) {
          ce_acc += static_cast<double>(ce[l]);
          ++nce;
        }
      }
    } else {
      for (int64_t c = 0; c < C; ++c) {
        const V pc = vload<V>(p + c * ld + n0);
        const I is_c = y == static_cast<Int>(c);
        vstore(lp + c * ld + n0, obs ? pc - (is_c ? one : zero) : zero);
      }
      for (int64_t l = 0; l < lanes; ++l) {
        const int64_t n = n0 + l;
        conf_out[n] = T(0);
        argmax_out[n] = -1;
        impute_out[n] = false;
        if (obs[l]) {
          ce_acc += static_cast<double>(ce[l]);
          ++nce;
        }
      }
    }
  }
  T* g = pb.grad + i * A * C;
  for (int64_t n = 0; n < A; ++n) {
    for (int64_t c = 0; c < C; ++c) g[n * C + c] = lp[c * ld + n];
  }
  pb.ce_part[i] = ce_acc;
  pb.kl_part[i] = kl_acc;
  pb.nce_part[i] = nce;
  pb.nkl_part[i] = nkl;
}

// Items [begin, end) in groups: prepare each item of a group (log-softmax, contributor list, packed
// contributor rows), mix the group with the S^T panel outermost (so the panel is reused across the group from
// L1/L2), finish each item.
// kPairs: tiles span two panels (2 x 6 accumulators).
template <typename T, int B, bool kPairs>
SL_INLINE void run_chunk(const Problem<T>& pb, int64_t begin, int64_t end) {
  using Int = typename Vec<T, B>::Int;
  constexpr int N = Vec<T, B>::N;
  const int64_t A = pb.A, C = pb.C, ld = pb.ld;
  const int64_t G = std::max<int64_t>(1, std::min(pb.group, end - begin));
  // Mixed rows: the C classes, plus the similarity mass when the contributors vary per item; padded with zero
  // rows to a multiple of half a tile (two tile shapes only: compile time).
  constexpr int64_t kHalf = kTileRows / 2;
  const int64_t rows = ((pb.all ? C : C + 1) + kHalf - 1) / kHalf * kHalf;
  const bool pack = pb.soft && !pb.label_source;
  const int64_t lp_size = C * ld, p_size = C * ld, num_size = std::max(C + 1, rows) * ld;
  const int64_t pk_size = pack ? A * rows : 0;
  const int64_t item_size = lp_size + p_size + num_size + pk_size;
  AlignedBuffer<T> buf(static_cast<size_t>(G * item_size + C * N));
  AlignedBuffer<Int> ybuf(static_cast<size_t>(G * ld));
  std::vector<int32_t> Lbuf(static_cast<size_t>(G * A));
  std::vector<int64_t> nL(static_cast<size_t>(G));
  // soft_source = labels: L sorted by label, class c at L[off[c] .. off[c+1])
  std::vector<int32_t> offbuf(pb.label_source ? static_cast<size_t>(G * (C + 1)) : 0);
  std::vector<int32_t> sortbuf(pb.label_source ? static_cast<size_t>(A) : 0);
  T* lqbuf = buf.ptr + G * item_size;
  for (int64_t g = 0; g < G; ++g) std::fill(ybuf.ptr + g * ld, ybuf.ptr + (g + 1) * ld, Int(-1));
  const int64_t nblocks = ld / N, panel_stride = A * N;
  for (int64_t i0 = begin; i0 < end; i0 += G) {
    const int64_t gn = std::min(G, end - i0);
    for (int64_t g = 0; g < gn; ++g) {
      T* lp = buf.ptr + g * item_size;
      T* p = lp + lp_size;
      const int32_t* L = Lbuf.data() + g * A;
      prepare_item<T, B>(pb, i0 + g, lp, p, ybuf.ptr + g * ld, Lbuf.data() + g * A, nL[g]);
      if (pb.soft && pb.label_source) {  // counting sort of the contributors by label
        int32_t* off = offbuf.data() + g * (C + 1);
        int32_t* Lg = Lbuf.data() + g * A;
        const Int* y = ybuf.ptr + g * ld;
        std::fill(off, off + C + 1, 0);
        for (int64_t j = 0; j < nL[g]; ++j) ++off[y[Lg[j]] + 1];
        for (int64_t c = 0; c < C; ++c) off[c + 1] += off[c];
        for (int64_t j = 0; j < nL[g]; ++j) sortbuf[off[y[Lg[j]]]++] = Lg[j];
        for (int64_t c = C; c > 0; --c) off[c] = off[c - 1];
        off[0] = 0;
        std::copy(sortbuf.begin(), sortbuf.begin() + nL[g], Lg);
      }
      if (pack) {  // pk[j][c] = p[c][L[j]] (1 in the mass column): the contributors' rows, contiguous
        T* pk = p + p_size + num_size;
        const int64_t nl = pb.all ? A : nL[g];
        if (pb.all) L = pb.iota;
        for (int64_t j = 0; j < nl; ++j) {
          const int64_t k = L[j];
          for (int64_t c = 0; c < C; ++c) pk[j * rows + c] = p[c * ld + k];
          if (!pb.all) pk[j * rows + C] = T(1);  // further padding rows stay 0
        }
      }
    }
    if (pb.soft) {
      if (pb.label_source) {
        for (int64_t nb = 0; nb < nblocks; ++nb) {
          const T* panel = pb.wt + nb * panel_stride;
          for (int64_t g = 0; g < gn; ++g) {
            T* num = buf.ptr + g * item_size + lp_size + p_size;
            mix_labels<T, B>(Lbuf.data() + g * A, offbuf.data() + g * (C + 1), panel, C, num, ld, nb * N);
          }
        }
      } else {
        for (int64_t nb = 0; nb < nblocks;) {
          const int nv = kPairs && nb + 1 < nblocks ? 2 : 1;
          const T* panel = pb.wt + nb * panel_stride;
          for (int64_t g = 0; g < gn; ++g) {
            T* num = buf.ptr + g * item_size + lp_size + p_size;
            const T* pk = num + num_size;
            const int32_t* L = pb.all ? pb.iota : Lbuf.data() + g * A;
            const int64_t nl = pb.all ? A : nL[g];
            if constexpr (kPairs) {
              if (nv == 2) {
                mix_rows<T, B, 2>(pk, rows, L, nl, panel, panel_stride, num, ld, nb * N);
                continue;
              }
            }
            mix_rows<T, B, 1>(pk, rows, L, nl, panel, panel_stride, num, ld, nb * N);
          }
          nb += nv;
        }
      }
    }
    for (int64_t g = 0; g < gn; ++g) {
      T* lp = buf.ptr + g * item_size;
      finish_item<T, B>(pb, i0 + g, lp, lp + lp_size, lp + lp_size + p_size, ybuf.ptr + g * ld, lqbuf);
    }
  }
}

#define SL_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi,bmi2,f16c,popcnt")))
#define SL_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2,f16c,popcnt")))

// Each path uses vectors as wide as its registers; 2 x 6 accumulators plus 3 more values fit 16 registers.
template <typename T>
SL_TARGET_AVX512 void run_chunk_avx512(const Problem<T>& pb, int64_t begin, int64_t end) {
  run_chunk<T, 64, true>(pb, begin, end);
}
template <typename T>
SL_TARGET_AVX2 void run_chunk_avx2(const Problem<T>& pb, int64_t begin, int64_t end) {
  run_chunk<T, 32, true>(pb, begin, end);
}
template <typename T>
void run_chunk_default(const Problem<T>& pb, int64_t begin, int64_t end) {
  run_chunk<T, 16, true>(pb, begin, end);
}
template <typename T>
using ChunkFn = void (*)(const Problem<T>&, int64_t, int64_t);

enum class Isa : int { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

Isa best_isa() {
  static const Isa best = [] {
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                      __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
                      __builtin_cpu_supports("popcnt");
    const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    return avx512 ? Isa::kAvx512 : (avx2 ? Isa::kAvx2 : Isa::kDefault);
  }();
  return best;
}

// The path used now: the best the CPU has, lowered by SIMLABEL_CPU_ISA=default|avx2|avx512 (read per call).
Isa current_isa() {
  Isa isa = best_isa();
  if (const char* env = std::getenv("SIMLABEL_CPU_ISA")) {
    const std::string want(env);
    Isa cap;
    if (want == "default") {
      cap = Isa::kDefault;
    } else if (want == "avx2") {
      cap = Isa::kAvx2;
    } else if (want == "avx512" || want.empty()) {
      cap = Isa::kAvx512;
    } else {
      TORCH_CHECK_VALUE(false, "SIMLABEL_CPU_ISA must be one of default, avx2, avx512; got '", want, "'");
    }
    isa = static_cast<Isa>(std::min(static_cast<int>(isa), static_cast<int>(cap)));
  }
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "default";
  }
}

// ------------------------------------------------------------------------------------------------------------
// Driver
// ------------------------------------------------------------------------------------------------------------

using Outputs = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                           at::Tensor>;

template <typename T, int kBytes>
Outputs run(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& similarity, bool soft,
            bool impute, double threshold, bool reverse_kl, bool all_contributors, bool label_source,
            bool evidence_weight, ChunkFn<T> chunk) {
  constexpr int N = Vec<T, kBytes>::N;
  const int64_t B = logits.size(0), A = logits.size(1), C = logits.size(2);
  const int64_t ld = (A + N - 1) / N * N;
  const auto acc_opts = logits.options().dtype(c10::CppTypeToScalarType<T>::value);

  // S^T with zero diagonal and padding (validated off the diagonal: finite, >= 0).
  AlignedBuffer<T> wt(static_cast<size_t>(A * ld));
  AlignedBuffer<T> mass_all(static_cast<size_t>(ld));
  std::vector<int32_t> iota(static_cast<size_t>(A));
  if (soft) {
    const T* S = similarity.const_data_ptr<T>();
    for (int64_t n = 0; n < A; ++n) {
      for (int64_t k = 0; k < A; ++k) {
        if (k == n) continue;
        const T s = S[n * A + k];
        TORCH_CHECK_VALUE(std::isfinite(s) && s >= T(0), "similarity[", n, ", ", k, "] = ", s,
                          " must be finite and >= 0");
        wt.ptr[((n / N) * A + k) * N + n % N] = s;
      }
    }
    if (all_contributors) {
      for (int64_t nb = 0; nb < ld / N; ++nb) {
        for (int64_t k = 0; k < A; ++k) {
          const T* w = wt.ptr + (nb * A + k) * N;
          for (int64_t l = 0; l < N; ++l) mass_all.ptr[nb * N + l] += w[l];
        }
      }
    }
    for (int64_t k = 0; k < A; ++k) iota[k] = static_cast<int32_t>(k);
  }

  at::Tensor grad = at::empty({B, A, C}, acc_opts);
  at::Tensor conf = at::empty({B, A}, acc_opts);
  at::Tensor argmax = at::empty({B, A}, logits.options().dtype(at::kLong));
  at::Tensor impute_mask = at::empty({B, A}, logits.options().dtype(at::kBool));
  std::vector<double> ce_part(static_cast<size_t>(B)), kl_part(static_cast<size_t>(B));
  std::vector<int64_t> nce_part(static_cast<size_t>(B)), nkl_part(static_cast<size_t>(B));
  std::atomic<int64_t> bad_label{std::numeric_limits<int64_t>::max()};

  Problem<T> pb;
  pb.logits = logits.const_data_ptr();
  switch (logits.scalar_type()) {
    case at::kHalf: pb.load = &load_logits<c10::Half, T>; break;
    case at::kBFloat16: pb.load = &load_logits<c10::BFloat16, T>; break;
    case at::kFloat: pb.load = &load_logits<float, T>; break;
    default: pb.load = &load_logits<double, T>; break;
  }
  pb.labels = labels.const_data_ptr<int64_t>();
  pb.wt = wt.ptr;
  pb.mass_all = all_contributors ? mass_all.ptr : nullptr;
  pb.iota = iota.data();
  pb.A = A;
  pb.C = C;
  pb.ld = ld;
  // Group so that the packed contributor rows of a group (at most A (C+1) values per item) plus one pair of
  // S^T panels (2 A N values) stay within about 768 KiB of L2.
  const int64_t pk_bytes = A * (C + 1) * static_cast<int64_t>(sizeof(T)) / (all_contributors ? 1 : 2);
  pb.group = std::clamp<int64_t>((768 << 10) / pk_bytes, 1, 16);
  pb.soft = soft;
  pb.impute = impute;
  pb.reverse = reverse_kl;
  pb.all = all_contributors;
  pb.label_source = label_source;
  pb.evidence = evidence_weight;
  pb.threshold = static_cast<T>(threshold);
  pb.log_c = static_cast<T>(std::log(static_cast<double>(C)));
  pb.grad = grad.mutable_data_ptr<T>();
  pb.conf = conf.mutable_data_ptr<T>();
  pb.argmax = argmax.mutable_data_ptr<int64_t>();
  pb.impute_mask = impute_mask.mutable_data_ptr<bool>();
  pb.ce_part = ce_part.data();
  pb.kl_part = kl_part.data();
  pb.nce_part = nce_part.data();
  pb.nkl_part = nkl_part.data();
  pb.bad_label = &bad_label;

  // Work per item: ~30 flops per (annotator, class) plus the mixing over the contributors.
  const int64_t mix = soft ? (label_source ? A * 2 : (C + 1) * (all_contributors ? A : std::max<int64_t>(A / 4, 1)))
                           : 0;
  const int64_t item_cost = ld * (30 * C + mix);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 20) / std::max<int64_t>(item_cost, 1));
  at::parallel_for(0, B, grain, [&](int64_t begin, int64_t end) { chunk(pb, begin, end); });

  const int64_t bad = bad_label.load();
  if (bad != std::numeric_limits<int64_t>::max()) {
    TORCH_CHECK_VALUE(false, "labels[", bad / A, ", ", bad % A, "] = ", pb.labels[bad], " is outside 0..", C - 1,
                      " (or -1 for missing)");
  }
  double ce_sum = 0, kl_sum = 0;
  int64_t n_ce = 0, n_kl = 0;
  for (int64_t i = 0; i < B; ++i) {  // in item order: independent of the thread count
    ce_sum += ce_part[i];
    kl_sum += kl_part[i];
    n_ce += nce_part[i];
    n_kl += nkl_part[i];
  }
  at::Tensor ce_t = at::empty({}, acc_opts), kl_t = at::empty({}, acc_opts);
  at::Tensor nce_t = at::empty({}, logits.options().dtype(at::kLong));
  at::Tensor nkl_t = at::empty({}, logits.options().dtype(at::kLong));
  *ce_t.mutable_data_ptr<T>() = static_cast<T>(ce_sum);
  *kl_t.mutable_data_ptr<T>() = static_cast<T>(kl_sum);
  *nce_t.mutable_data_ptr<int64_t>() = n_ce;
  *nkl_t.mutable_data_ptr<int64_t>() = n_kl;
  return {ce_t, kl_t, nce_t, nkl_t, conf, argmax, impute_mask, grad};
}

// The float32 kernels on the best instruction set (SIMLABEL_CPU_ISA may lower it); float64 always on the
// baseline path: it is the accuracy mode (and one instantiation less to compile).
template <typename T>
Outputs run_isa(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& similarity, bool soft,
                bool impute, double threshold, bool reverse_kl, bool all_contributors, bool label_source,
                bool evidence_weight) {
  if constexpr (std::is_same_v<T, float>) {
    switch (current_isa()) {
      case Isa::kAvx512:
        return run<T, 64>(logits, labels, similarity, soft, impute, threshold, reverse_kl, all_contributors,
                          label_source, evidence_weight, &run_chunk_avx512<T>);
      case Isa::kAvx2:
        return run<T, 32>(logits, labels, similarity, soft, impute, threshold, reverse_kl, all_contributors,
                          label_source, evidence_weight, &run_chunk_avx2<T>);
      default:
        break;
    }
  }
  return run<T, 16>(logits, labels, similarity, soft, impute, threshold, reverse_kl, all_contributors, label_source,
                    evidence_weight, &run_chunk_default<T>);
}

std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

const char* dtype_str(at::ScalarType t) {
  switch (t) {
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(t);
  }
}

}  // namespace

Outputs fused_loss_forward(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& similarity,
                           int64_t flags, double threshold) {
  TORCH_CHECK_VALUE((flags & ~kAllKernelFlags) == 0, "fused_loss_forward: flags = ", flags,
                    " holds bits that are no KernelFlag");
  const bool soft = flags & kSoft, impute = flags & kImpute, reverse_kl = flags & kReverseKL;
  const bool all_contributors = flags & kAllContributors, label_source = flags & kLabelSource;
  const bool evidence_weight = flags & kEvidenceWeight;
  // Shapes, dtypes, devices, layout (values of labels and similarity are checked while they are read).
  TORCH_CHECK_VALUE(logits.dim() == 3, "fused_loss_forward: logits must have shape [B, A, C]; got ",
                    shape_str(logits));
  const auto ldt = logits.scalar_type();
  TORCH_CHECK_TYPE(ldt == at::kHalf || ldt == at::kBFloat16 || ldt == at::kFloat || ldt == at::kDouble,
                   "fused_loss_forward: logits must be float16, bfloat16, float32 or float64; got ", dtype_str(ldt));
  const int64_t B = logits.size(0), A = logits.size(1), C = logits.size(2);
  TORCH_CHECK_VALUE(C >= 2, "fused_loss_forward: logits has C=", C, " classes; SimLabel needs at least 2");
  TORCH_CHECK_VALUE(A >= 1, "fused_loss_forward: logits has A=0 annotators");
  TORCH_CHECK_VALUE(A <= std::numeric_limits<int32_t>::max() / 2,
                    "fused_loss_forward: logits has A=", A, " annotators; too many");
  TORCH_CHECK_VALUE(labels.dim() == 2 && labels.size(0) == B && labels.size(1) == A,
                    "fused_loss_forward: labels must have shape [B, A] = [", B, ", ", A, "] to match logits ",
                    shape_str(logits), "; got ", shape_str(labels));
  TORCH_CHECK_TYPE(labels.scalar_type() == at::kLong, "fused_loss_forward: labels must be int64; got ",
                   dtype_str(labels.scalar_type()));
  TORCH_CHECK_VALUE(similarity.dim() == 2 && similarity.size(0) == A && similarity.size(1) == A,
                    "fused_loss_forward: similarity must have shape [A, A] = [", A, ", ", A, "]; got ",
                    shape_str(similarity));
  const auto acc = ldt == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK_TYPE(similarity.scalar_type() == acc, "fused_loss_forward: similarity must be ", dtype_str(acc),
                   " (the accumulation dtype of ", dtype_str(ldt), " logits); got ",
                   dtype_str(similarity.scalar_type()));
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor*>{"logits", &logits},
                                {"labels", &labels},
                                {"similarity", &similarity}}) {
    TORCH_CHECK_VALUE(t->device().is_cpu(), "fused_loss_forward: ", name, " must be a CPU tensor; got device ",
                      t->device().str());
    TORCH_CHECK_VALUE(t->is_contiguous(), "fused_loss_forward: ", name, " must be contiguous; got strides ",
                      t->strides());
  }
  TORCH_CHECK_VALUE(!(label_source && all_contributors),
                    "fused_loss_forward: the LABEL_SOURCE flag needs ALL_CONTRIBUTORS off (an annotator without a "
                    "label on the item has no label to contribute)");
  if (acc == at::kDouble) {
    return run_isa<double>(logits, labels, similarity, soft, impute, threshold, reverse_kl, all_contributors,
                           label_source, evidence_weight);
  }
  return run_isa<float>(logits, labels, similarity, soft, impute, threshold, reverse_kl, all_contributors,
                        label_source, evidence_weight);
}

void bind_fused_loss(pybind11::module_& m) {
  namespace py = pybind11;
  m.def("fused_loss_forward", &fused_loss_forward, py::arg("logits"), py::arg("labels"), py::arg("similarity"),
        py::arg("flags"), py::arg("threshold"), py::call_guard<py::gil_scoped_release>(),
        R"doc(One SimLabel batch step on the CPU, values and gradients in one pass (ALGORITHM.md §2-4).

logits [B, A, C] contiguous float16/bfloat16/float32/float64; labels [B, A] contiguous int64 in -1..C-1
(-1 = missing); similarity [A, A] contiguous, float32 (float64 for float64 logits), finite and >= 0 off the
diagonal (the diagonal is ignored). flags: the bits of KERNEL_FLAGS (SimLabelOptions.kernel_flags): SOFT
(mode != "skip"), IMPUTE (mode == "simlabel+confidence"), REVERSE_KL (KL(p || q), else KL(q || p)),
ALL_CONTRIBUTORS (every other annotator contributes, else only labelled ones), LABEL_SOURCE (contributors give
one-hot labels; needs ALL_CONTRIBUTORS off), EVIDENCE_WEIGHT (each KL term times min(1, similarity mass));
threshold: impute where confidence >= threshold.

Returns (ce_sum, kl_sum, n_ce, n_kl, confidence [B, A], soft_argmax [B, A] int64, impute_mask [B, A] bool,
grad [B, A, C]) with floats in the accumulation dtype (float32, float64 for float64 logits). grad holds
d ce/d logits on observed entries, d kl/d logits on soft entries (the soft label's gradient stopped) and 0
elsewhere: d loss/d logits = grad * where(observed, g_ce, g_kl)[..., None].)doc");
  m.attr("KERNEL_FLAGS") = py::dict(py::arg("SOFT") = int64_t(kSoft), py::arg("IMPUTE") = int64_t(kImpute),
                                    py::arg("REVERSE_KL") = int64_t(kReverseKL),
                                    py::arg("ALL_CONTRIBUTORS") = int64_t(kAllContributors),
                                    py::arg("LABEL_SOURCE") = int64_t(kLabelSource),
                                    py::arg("EVIDENCE_WEIGHT") = int64_t(kEvidenceWeight));
  m.def(
      "fused_loss_cpu_isa", [] { return std::string(isa_name(current_isa())); },
      "The instruction set the fused CPU kernel uses now (avx512, avx2 or default; SIMLABEL_CPU_ISA lowers it).");
}

}  // namespace simlabel
