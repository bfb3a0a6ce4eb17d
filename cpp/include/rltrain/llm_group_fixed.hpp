// The fast path of the LLM group kernels (llm_group.hpp) for contiguous groups of 8, 16, 32 or 64 elements:
// rewards -> W-wide vectors of doubles (GCC/Clang vector extensions) -> the same eight-lane sums, divisions and
// square roots as the generic path, bit for bit -> out. x86 builds carry an AVX2 and an AVX-512 clone of the loop,
// picked at run time (the baseline stays x86-64); no FMA contraction, so every clone rounds alike.
// Why: the generic loops (runtime group sizes, pointer batches) run at ~2 ns per element; these at ~0.5-0.7.
#pragma once

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "rltrain/simd_isa.hpp"

// GCC and Clang on x86: vector extensions, target attributes, __builtin_cpu_supports.
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RLTRAIN_FIXED_GROUPS 1
#endif

namespace rltrain::llm::fixed {

enum class Mode { Group, Shift, Rloo };  // (x - mean) / d per group; (x - mean) * inv; leave-one-out

struct Params {
  Mode mode = Mode::Group;
  double ddof = 0.0, eps = 0.0;  // Group
  bool eps_on_std = true;        // Group: std + eps, else sqrt(var + eps)
  double inv = 1.0;              // Shift: the factor (1 / batch denominator, or 1)
};

#if defined(RLTRAIN_FIXED_GROUPS)

// The helpers take and give vectors by reference: a 32- or 64-byte vector by value in a function compiled for the
// baseline would change the ABI (-Wpsabi); they are always inlined into the AVX2 / AVX-512 loops anyway.
#define RLTRAIN_ALWAYS_INLINE inline __attribute__((always_inline))

template <int W>
struct Vec;  // W doubles / W floats
template <>
struct Vec<4> {
  using D = double __attribute__((vector_size(32)));
  using F = float __attribute__((vector_size(16)));
};
template <>
struct Vec<8> {
  using D = double __attribute__((vector_size(64)));
  using F = float __attribute__((vector_size(32)));
};

template <int W, typename T>
RLTRAIN_ALWAYS_INLINE void load(typename Vec<W>::D& v, const T* p) {
  if constexpr (std::is_same_v<T, float>) {
    // Element by element: GCC 12 lowers __builtin_convertvector(float x4 -> double x4) through the stack.
    for (int k = 0; k < W; ++k) v[k] = static_cast<double>(p[k]);
  } else {
    std::memcpy(&v, p, sizeof v);
  }
}

template <int W, typename T>
RLTRAIN_ALWAYS_INLINE void store(T* p, const typename Vec<W>::D& v) {
  if constexpr (std::is_same_v<T, float>) {
    const typename Vec<W>::F f = __builtin_convertvector(v, typename Vec<W>::F);
    std::memcpy(p, &f, sizeof f);
  } else {
    std::memcpy(p, &v, sizeof v);
  }
}

// Lanes of x[0..N) (lane j = the sum of the elements i with i % 8 == j, from +0.0, as lane_sum), or of (x - m)^2
// when Squares (lane_ssd), half combined: b[k] = a[k] + a[k + 4], k < 4.
template <int N, int W, bool Squares, typename T>
RLTRAIN_ALWAYS_INLINE void lanes(Vec<4>::D& b, const T* x, double m) {
  constexpr int K = 8 / W;
  typename Vec<W>::D a[K] = {};
  for (int i = 0; i < N; i += 8)
    for (int k = 0; k < K; ++k) {
      typename Vec<W>::D v;
      load<W>(v, x + i + k * W);
      if constexpr (Squares) {
        const typename Vec<W>::D d = v - m;
        a[k] += d * d;
      } else {
        a[k] += v;
      }
    }
  if constexpr (W == 4)
    b = a[0] + a[1];
  else
    b = __builtin_shufflevector(a[0], a[0], 0, 1, 2, 3) + __builtin_shufflevector(a[0], a[0], 4, 5, 6, 7);
}

// The sums of four groups from their half-combined lanes b0..b3: (b[0] + b[2]) + (b[1] + b[3]) each, as
// combine_lanes; transposed so that the four groups share each addition.
RLTRAIN_ALWAYS_INLINE void fold4(Vec<4>::D& s, const Vec<4>::D (&b)[4]) {
  using D = Vec<4>::D;
  // c01 = {c0[0], c0[1], c1[0], c1[1]} with c_l[k] = b_l[k] + b_l[k + 2]
  const D c01 = __builtin_shufflevector(b[0], b[1], 0, 1, 4, 5) + __builtin_shufflevector(b[0], b[1], 2, 3, 6, 7);
  const D c23 = __builtin_shufflevector(b[2], b[3], 0, 1, 4, 5) + __builtin_shufflevector(b[2], b[3], 2, 3, 6, 7);
  s = __builtin_shufflevector(c01, c23, 0, 2, 4, 6) + __builtin_shufflevector(c01, c23, 1, 3, 5, 7);
}

// o[j] = (x[j] - m) * s, or, for RLOO, x[j] - (m - x[j]) * s with m the group's sum.
template <int N, int W, bool Rloo, typename T>
RLTRAIN_ALWAYS_INLINE void emit(const T* x, T* o, double m, double s) {
  for (int j = 0; j < N; j += W) {
    typename Vec<W>::D v;
    load<W>(v, x + j);
    v = Rloo ? v - (m - v) * s : (v - m) * s;
    store<W>(o + j, v);
  }
}

// The statistics of groups [0, count) of N elements at x (count <= kBlock): m[l] = mean (RLOO: sum) and
// r[l] = the factor of group l. Four groups at a time, so that their divisions and square roots share vector
// instructions (a short last batch runs the same operations on zero lanes, so no bit depends on where a group
// falls). Returns sum * 0 over the groups: 0 when every sum is finite, nan otherwise.
constexpr std::size_t kBlock = 64;

template <int N, int W, typename T>
RLTRAIN_ALWAYS_INLINE double block_stats(const T* x, std::size_t count, const Params& p, double* m, double* r) {
  using S = Vec<4>::D;
  const double n = static_cast<double>(N);
  const bool pos = n > p.ddof;
  const double dv = n - p.ddof, eps = p.eps, rloo_inv = 1.0 / (n - 1.0);
  S nonfinite = {0.0, 0.0, 0.0, 0.0};
  for (std::size_t g = 0; g < count; g += 4) {
    const T* xb = x + g * N;
    const std::size_t nl = count - g < 4 ? count - g : 4;  // a short last batch is padded with zero lanes
    S b[4] = {};
    for (std::size_t l = 0; l < nl; ++l) lanes<N, W, false>(b[l], xb + l * N, 0.0);
    S s;
    fold4(s, b);
    nonfinite += s * 0.0;
    S mean = s, inv = S{} + rloo_inv;
    if (p.mode != Mode::Rloo) {
      mean = s / n;
      inv = S{} + p.inv;
    }
    if (p.mode == Mode::Group) {
      for (std::size_t l = 0; l < nl; ++l) lanes<N, W, true>(b[l], xb + l * N, mean[l]);
      S v;
      fold4(v, b);
      v = pos ? v / dv : S{0.0, 0.0, 0.0, 0.0};
      if (!p.eps_on_std) v += eps;
      for (int l = 0; l < 4; ++l) inv[l] = std::sqrt(v[l]);
      if (p.eps_on_std) inv += eps;
      inv = 1.0 / inv;
    }
    std::memcpy(m + g, &mean, sizeof mean);  // m and r hold kBlock + 3 entries
    std::memcpy(r + g, &inv, sizeof inv);
  }
  return (nonfinite[0] + nonfinite[1]) + (nonfinite[2] + nonfinite[3]);
}

// Groups [0, groups) of N elements at x -> out, in blocks of kBlock groups (statistics, then the outputs, while the
// block is in L1); false when a group's sum is not finite (the caller raises).
template <int N, int W, typename T>
RLTRAIN_ALWAYS_INLINE bool run(const T* x, T* out, std::size_t groups, const Params& p) {
  double nonfinite = 0.0, m[kBlock + 3], r[kBlock + 3];
  for (std::size_t g0 = 0; g0 < groups; g0 += kBlock) {
    const std::size_t count = groups - g0 < kBlock ? groups - g0 : kBlock;
    const T* xb = x + g0 * N;
    T* ob = out + g0 * N;
    nonfinite += block_stats<N, W>(xb, count, p, m, r);
    if (p.mode == Mode::Rloo)
      for (std::size_t l = 0; l < count; ++l) emit<N, W, true>(xb + l * N, ob + l * N, m[l], r[l]);
    else
      for (std::size_t l = 0; l < count; ++l) emit<N, W, false>(xb + l * N, ob + l * N, m[l], r[l]);
  }
  return nonfinite == 0.0;
}

// b[k] = a[k] + a[k + 4]: an eight-lane sum half combined, as lanes<> leaves it.
RLTRAIN_ALWAYS_INLINE void half(Vec<4>::D& b, const Vec<8>::D& a) {
  b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
}

// run<N, 8> for N <= 32 with each batch of four groups held in registers (4 * N / 8 of the 32 zmm registers):
// every reward is loaded and widened once, and the deviations x - mean of the squares pass are the ones the output
// scales (the same operations on the same values as block_stats + emit, so the same bits). Why: widening float to
// double takes two uops on the vector ports, and run<> widens each reward three times; here once.
template <int N, typename T>
RLTRAIN_ALWAYS_INLINE bool run_regs(const T* x, T* out, std::size_t groups, const Params& p) {
  using D = Vec<8>::D;
  using S = Vec<4>::D;
  constexpr int K = N / 8;
  static_assert(K >= 1 && K <= 4, "four groups of N <= 32 doubles fit the register file");
  const bool pos = static_cast<double>(N) > p.ddof;
  const double dv = static_cast<double>(N) - p.ddof, eps = p.eps, rloo_inv = 1.0 / (N - 1.0);
  constexpr double inv_n = 1.0 / N;         // N is a power of two: s * inv_n is s / N exactly
  const std::size_t full = groups / 4 * 4;  // whole batches here (constant trip counts keep v in registers)
  S nonfinite = {0.0, 0.0, 0.0, 0.0};
  for (std::size_t g = 0; g < full; g += 4) {
    const T* xb = x + g * N;
    T* ob = out + g * N;
    D v[4][K];
    S b[4];
#pragma GCC unroll 16
    for (int l = 0; l < 4; ++l) {
#pragma GCC unroll 4
      for (int k = 0; k < K; ++k) load<8>(v[l][k], xb + l * N + k * 8);
      D a = D{} + v[l][0];  // from +0.0, as lanes<>: a -0.0 reward must not leave a -0.0 lane
#pragma GCC unroll 4
      for (int k = 1; k < K; ++k) a += v[l][k];
      half(b[l], a);
    }
    S s;
    fold4(s, b);
    nonfinite += s * 0.0;
    if (p.mode == Mode::Rloo) {
#pragma GCC unroll 16
      for (int l = 0; l < 4; ++l)
#pragma GCC unroll 4
        for (int k = 0; k < K; ++k) {
          const D r = v[l][k] - (s[l] - v[l][k]) * rloo_inv;
          store<8>(ob + l * N + k * 8, r);
        }
      continue;
    }
    const S mean = s * inv_n;
    S inv = S{} + p.inv;
#pragma GCC unroll 16
    for (int l = 0; l < 4; ++l)
#pragma GCC unroll 4
      for (int k = 0; k < K; ++k) v[l][k] -= mean[l];  // the deviations, kept for the output
    if (p.mode == Mode::Group) {
#pragma GCC unroll 16
      for (int l = 0; l < 4; ++l) {
        D a = v[l][0] * v[l][0];  // = +0.0 + d * d: a square is never -0.0
#pragma GCC unroll 4
        for (int k = 1; k < K; ++k) a += v[l][k] * v[l][k];
        half(b[l], a);
      }
      S var;
      fold4(var, b);
      var = pos ? var / dv : S{0.0, 0.0, 0.0, 0.0};
      if (!p.eps_on_std) var += eps;
      for (int l = 0; l < 4; ++l) inv[l] = std::sqrt(var[l]);
      if (p.eps_on_std) inv += eps;
      inv = 1.0 / inv;
    }
#pragma GCC unroll 16
    for (int l = 0; l < 4; ++l)
#pragma GCC unroll 4
      for (int k = 0; k < K; ++k) {
        const D r = v[l][k] * inv[l];
        store<8>(ob + l * N + k * 8, r);
      }
  }
  const bool ok = (nonfinite[0] + nonfinite[1]) + (nonfinite[2] + nonfinite[3]) == 0.0;
  if (full == groups) return ok;
  return run<N, 8>(x + full * N, out + full * N, groups - full, p) && ok;  // the last 1-3 groups
}

template <int N, typename T>
__attribute__((target("avx2"))) bool run_avx2(const T* x, T* out, std::size_t groups, const Params& p) {
  return run<N, 4>(x, out, groups, p);
}

// Whether the AVX-512 clone holds groups of N <= 32 in registers (run_regs; default) or runs run<N, 8> (tests
// compare the two bit for bit; the LLM bench times both in one process).
inline std::atomic<bool>& regs_enabled() {
  static std::atomic<bool> on{true};
  return on;
}

template <int N, typename T>
__attribute__((target("avx512f"))) bool run_avx512(const T* x, T* out, std::size_t groups, const Params& p) {
  if constexpr (N <= 32) {
    if (regs_enabled().load(std::memory_order_relaxed)) return run_regs<N>(x, out, groups, p);
  }
  return run<N, 8>(x, out, groups, p);
}

// Whole-batch lane sums (llm_group.hpp's batch_stats): part[k] = the lane sum of block k, x[k * kSumBlock, min(n,
// (k + 1) * kSumBlock)) for k in [k0, k1), of x (or, when Squares, of (x - m[k])^2), bit for bit as lane_sum /
// lane_ssd and combine_lanes give it (lane j = the elements i with i % 8 == j, from +0.0; ((a0 + a4) + (a2 + a6))
// + ((a1 + a5) + (a3 + a7))). Four blocks run side by side: one block's eight lanes are a single dependency chain
// of vector additions (latency-bound: 4 cycles per 8 elements), four overlap.
constexpr std::size_t kSumBlock = 4096;  // llm_group.hpp's kBatchBlock

template <int W, bool Squares, typename T>
RLTRAIN_ALWAYS_INLINE void block_sums(const T* x, std::size_t n, std::size_t k0, std::size_t k1, const double* m,
                                      double* part) {
  using D = typename Vec<W>::D;
  constexpr int K = 8 / W;
  for (std::size_t kb = k0; kb < k1; kb += 4) {
    const std::size_t nb = k1 - kb < 4 ? k1 - kb : 4;
    const T* xb[4];
    std::size_t cnt[4];
    double mb[4];
    std::size_t common = kSumBlock;
    for (std::size_t b = 0; b < 4; ++b) {
      const std::size_t k = kb + (b < nb ? b : 0);  // padding blocks repeat the first (discarded)
      mb[b] = Squares ? m[k] : 0.0;
      const std::size_t lo = k * kSumBlock, hi = n < lo + kSumBlock ? n : lo + kSumBlock;
      xb[b] = x + lo;
      cnt[b] = hi - lo;
      const std::size_t c8 = cnt[b] / 8 * 8;
      common = c8 < common ? c8 : common;
    }
    D a[4][K] = {};
    auto add = [&](std::size_t b, std::size_t i) {
      for (int k = 0; k < K; ++k) {
        D v;
        load<W>(v, xb[b] + i + k * W);
        if constexpr (Squares) {
          const D d = v - mb[b];
          a[b][k] += d * d;
        } else {
          a[b][k] += v;
        }
      }
    };
    std::size_t i = 0;
    for (; i < common; i += 8)
      for (std::size_t b = 0; b < 4; ++b) add(b, i);
    for (std::size_t b = 0; b < nb; ++b) {
      std::size_t j = i;
      for (; j + 8 <= cnt[b]; j += 8) add(b, j);
      double l[8];
      std::memcpy(l, a[b], sizeof l);
      const std::size_t rem = cnt[b] - j;  // add_tail: +0.0 into the unused lanes
      for (std::size_t k = 0; k < 8; ++k) {
        const double t = k < rem ? static_cast<double>(xb[b][j + k]) - mb[b] : 0.0;
        l[k] += Squares ? t * t : t;
      }
      part[kb + b] = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
    }
  }
}

template <bool Squares, typename T>
__attribute__((target("avx2"))) void block_sums_avx2(const T* x, std::size_t n, std::size_t k0, std::size_t k1,
                                                     const double* m, double* part) {
  block_sums<4, Squares>(x, n, k0, k1, m, part);
}

template <bool Squares, typename T>
__attribute__((target("avx512f"))) void block_sums_avx512(const T* x, std::size_t n, std::size_t k0, std::size_t k1,
                                                          const double* m, double* part) {
  block_sums<8, Squares>(x, n, k0, k1, m, part);
}

using simd::Isa;
using simd::isa;  // the CPU's widest clone, lowered by simd::set_isa_cap (tests: Baseline takes the generic loops)

template <int N, typename T>
bool run_best(const T* x, T* out, std::size_t groups, const Params& p) {
  if (isa() == Isa::Avx512) return run_avx512<N>(x, out, groups, p);
  return run_avx2<N>(x, out, groups, p);
}

#undef RLTRAIN_ALWAYS_INLINE

#endif  // RLTRAIN_FIXED_GROUPS

// Whether groups of `size` elements take this path (on a CPU with AVX2; the generic loops otherwise).
inline bool fixed_size_supported(std::size_t size) {
#if defined(RLTRAIN_FIXED_GROUPS)
  return (size == 8 || size == 16 || size == 32 || size == 64) && isa() != Isa::Baseline;
#else
  (void)size;
  return false;
#endif
}

// Whether batch_lane_sums runs (a CPU with AVX2).
inline bool batch_sums_supported() {
#if defined(RLTRAIN_FIXED_GROUPS)
  return isa() != Isa::Baseline;
#else
  return false;
#endif
}

// part[k] for blocks [k0, k1) of x [n] (see block_sums; m: the means by block, read when Squares);
// batch_sums_supported() only.
template <bool Squares, typename T>
void batch_lane_sums(const T* x, std::size_t n, std::size_t k0, std::size_t k1, const double* m, double* part) {
#if defined(RLTRAIN_FIXED_GROUPS)
  if (isa() == Isa::Avx512)
    block_sums_avx512<Squares>(x, n, k0, k1, m, part);
  else
    block_sums_avx2<Squares>(x, n, k0, k1, m, part);
#else
  (void)x, (void)n, (void)k0, (void)k1, (void)m, (void)part;
#endif
}

// Groups [0, groups) of `size` elements (fixed_size_supported(size)) at x -> out; false when a group's sum is not
// finite.
template <typename T>
bool fixed_groups(std::size_t size, const T* x, T* out, std::size_t groups, const Params& p) {
#if defined(RLTRAIN_FIXED_GROUPS)
  switch (size) {
    case 8:
      return run_best<8>(x, out, groups, p);
    case 16:
      return run_best<16>(x, out, groups, p);
    case 32:
      return run_best<32>(x, out, groups, p);
    case 64:
      return run_best<64>(x, out, groups, p);
    default:
      break;
  }
#endif
  (void)size, (void)x, (void)out, (void)groups, (void)p;
  return false;
}

}  // namespace rltrain::llm::fixed
