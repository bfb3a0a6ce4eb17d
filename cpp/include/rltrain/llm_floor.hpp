// Bare-loop ceilings for the LLM kernels' bench (rltrain.bench llm, "floors"): the unavoidable work of a kernel
// written as plainly and as fast as this machine allows, without its options, checks or bit-exactness contract,
// single-threaded, so that a kernel's time can be stated as a share of what the hardware gives for that work.
// Not part of the API (rltrain._core._testing).
//   floor_groups:  contiguous groups of 16 float32: load, convert to float64, sum, mean, sum of squared
//                  deviations, sqrt, divide, scale, convert, store (AVX-512 / AVX2 by target attribute).
//   floor_roundtrip: the float64 round trip alone (load, convert, one add, one multiply, convert, store).
//   floor_scatter: the same with groups named by scattered dense ids: histogram, prefix sums, scatter of the values
//                  into group order, the group statistics there, gather back.
//   floor_permute: the data movement alone of any random-order group-by: gather the values into group order
//                  (tmp[j] = x[order[j]]) and scatter them back (out[order[j]] = tmp[j]), no arithmetic.
//   floor_divider: the divider work alone of scale="group" in groups of 16, four groups per instruction as the
//                  kernel's clones take it: var / 15, sqrt, + eps, 1 / d (ymm), for n / 16 groups.
//   floor_chain:   one core's dependent recurrence over a row, the REINFORCE++ "carry" step, serial.
//   floor_pass:    the bare elementwise pass out = a - b over float32 (what kl_estimate and masked_whiten move).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "rltrain/simd_isa.hpp"

namespace rltrain::floor {

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RLTRAIN_FLOOR_X86 1
#endif

// One group of 16 at x -> out, (x - mean) / (std + eps) with ddof 1, in W-wide vectors of doubles: each value loaded
// and converted once, sums by vertical adds then a horizontal tree (any order: no bit-exactness asked here).
// Consecutive groups are independent, so the core overlaps them.
template <int W>
struct FloorVec;  // explicit sizes: GCC does not subscript a vector type whose size depends on W
template <>
struct FloorVec<2> {
  using D = double __attribute__((vector_size(16)));
};
template <>
struct FloorVec<4> {
  using D = double __attribute__((vector_size(32)));
};
template <>
struct FloorVec<8> {
  using D = double __attribute__((vector_size(64)));
};

#define RLTRAIN_FLOOR_INLINE inline __attribute__((always_inline))

template <int W>
RLTRAIN_FLOOR_INLINE double hsum(const typename FloorVec<W>::D& a) {
  double s = 0.0;
  for (int k = 0; k < W; ++k) s += a[k];
  return s;
}

template <int W>
RLTRAIN_FLOOR_INLINE void group16(const float* x, float* out, double eps) {
  using D = typename FloorVec<W>::D;
  constexpr int J = 16 / W;
  D v[J];
  for (int j = 0; j < J; ++j)
    for (int k = 0; k < W; ++k) v[j][k] = static_cast<double>(x[j * W + k]);
  D a = v[0];
  for (int j = 1; j < J; ++j) a += v[j];
  const double m = hsum<W>(a) / 16.0;
  D q = (v[0] - m) * (v[0] - m);
  for (int j = 1; j < J; ++j) q += (v[j] - m) * (v[j] - m);
  const double inv = 1.0 / (std::sqrt(hsum<W>(q) / 15.0) + eps);
  for (int j = 0; j < J; ++j) {
    const D o = (v[j] - m) * inv;
    for (int k = 0; k < W; ++k) out[j * W + k] = static_cast<float>(o[k]);
  }
}

template <int W>
RLTRAIN_FLOOR_INLINE void groups_plain(const float* x, float* out, std::size_t groups, double eps) {
  for (std::size_t g = 0; g < groups; ++g) group16<W>(x + g * 16, out + g * 16, eps);
}

#if defined(RLTRAIN_FLOOR_X86)
__attribute__((target("avx512f"))) inline void groups_avx512(const float* x, float* out, std::size_t groups,
                                                             double eps) {
  groups_plain<8>(x, out, groups, eps);
}
__attribute__((target("avx2"))) inline void groups_avx2(const float* x, float* out, std::size_t groups, double eps) {
  groups_plain<4>(x, out, groups, eps);
}
#endif

inline void floor_groups(const float* x, float* out, std::size_t n, double eps) {
  const std::size_t groups = n / 16;
#if defined(RLTRAIN_FLOOR_X86)
  if (__builtin_cpu_supports("avx512f")) return groups_avx512(x, out, groups, eps);
  if (__builtin_cpu_supports("avx2")) return groups_avx2(x, out, groups, eps);
#endif
  groups_plain<2>(x, out, groups, eps);
}

// The float64 round trip alone, the least any kernel with float64 statistics does per element: load, convert, one
// add into a sum (eight lanes), one multiply, convert back, store. Returns the sum (so the adds stay).
template <int W>
RLTRAIN_FLOOR_INLINE double roundtrip_plain(const float* x, float* out, std::size_t n, double c) {
  using D = typename FloorVec<W>::D;
  D a[8 / W] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8 / W; ++j) {
      D v;
      for (int k = 0; k < W; ++k) v[k] = static_cast<double>(x[i + j * W + k]);
      a[j] += v;
      const D o = v * c;
      for (int k = 0; k < W; ++k) out[i + j * W + k] = static_cast<float>(o[k]);
    }
  double s = 0.0;
  const float* xt = x + i;
  float* ot = out + i;
  for (std::size_t t = 0, rem = n - i; t < rem; ++t) {
    const double v = static_cast<double>(xt[t]);
    s += v;
    ot[t] = static_cast<float>(v * c);
  }
  for (int j = 0; j < 8 / W; ++j) s += hsum<W>(a[j]);
  return s;
}

#if defined(RLTRAIN_FLOOR_X86)
__attribute__((target("avx512f"))) inline double roundtrip_avx512(const float* x, float* out, std::size_t n, double c) {
  return roundtrip_plain<8>(x, out, n, c);
}
__attribute__((target("avx2"))) inline double roundtrip_avx2(const float* x, float* out, std::size_t n, double c) {
  return roundtrip_plain<4>(x, out, n, c);
}
#endif

inline double floor_roundtrip(const float* x, float* out, std::size_t n, double c) {
#if defined(RLTRAIN_FLOOR_X86)
  if (__builtin_cpu_supports("avx512f")) return roundtrip_avx512(x, out, n, c);
  if (__builtin_cpu_supports("avx2")) return roundtrip_avx2(x, out, n, c);
#endif
  return roundtrip_plain<2>(x, out, n, c);
}

// var / 15 -> sqrt -> + eps -> 1 / d for groups of four variances |x[4b .. 4b + 3]| (b < n / 64: one batch of four
// groups of 16 per 64 rewards), summed so that nothing is dropped; independent batches, as in the kernel.
template <int W>
RLTRAIN_FLOOR_INLINE double divider_plain(const float* x, std::size_t n, double eps) {
  using D = typename FloorVec<4>::D;
  D acc = {0.0, 0.0, 0.0, 0.0};
  for (std::size_t b = 0; b + 64 <= n; b += 64) {
    D v;
    for (int k = 0; k < 4; ++k) v[k] = std::fabs(static_cast<double>(x[b + k]));
    v = v / 15.0;
    for (int k = 0; k < 4; ++k) v[k] = std::sqrt(v[k]);
    acc += 1.0 / (v + eps);
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

#if defined(RLTRAIN_FLOOR_X86)
__attribute__((target("avx2"))) inline double divider_avx2(const float* x, std::size_t n, double eps) {
  return divider_plain<4>(x, n, eps);
}
#endif

inline double floor_divider(const float* x, std::size_t n, double eps) {
#if defined(RLTRAIN_FLOOR_X86)
  if (__builtin_cpu_supports("avx2")) return divider_avx2(x, n, eps);
#endif
  return divider_plain<4>(x, n, eps);
}

// The bare elementwise pass: out[i] = a[i] - b[i], two float32 streams in and one out (the bytes kl_estimate and
// masked_whiten with a float32 mask move), the compiler's vectorisation at the widest width the CPU has.
RLTRAIN_FLOOR_INLINE void pass_plain(const float* __restrict a, const float* __restrict b, float* __restrict out,
                                     std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = a[i] - b[i];
}

#if defined(RLTRAIN_FLOOR_X86)
RLTRAIN_TARGET_AVX512 inline void pass_avx512(const float* a, const float* b, float* out, std::size_t n) {
  pass_plain(a, b, out, n);
}
__attribute__((target("avx2"))) inline void pass_avx2(const float* a, const float* b, float* out, std::size_t n) {
  pass_plain(a, b, out, n);
}
#endif

inline void floor_pass(const float* a, const float* b, float* out, std::size_t n) {
#if defined(RLTRAIN_FLOOR_X86)
  if (__builtin_cpu_supports("avx512f")) return pass_avx512(a, b, out, n);
  if (__builtin_cpu_supports("avx2")) return pass_avx2(a, b, out, n);
#endif
  pass_plain(a, b, out, n);
}

// ids: dense keys in [0, n / 16), each 16 times, any order.
inline void floor_scatter(const int64_t* ids, const float* x, float* out, std::size_t n, double eps) {
  const std::size_t groups = n / 16;
  std::vector<uint32_t> start(groups + 1, 0), pos(n);
  std::vector<float> sorted(n), res(n);
  for (std::size_t i = 0; i < n; ++i) ++start[static_cast<std::size_t>(ids[i]) + 1];
  for (std::size_t g = 0; g < groups; ++g) start[g + 1] += start[g];
  for (std::size_t i = 0; i < n; ++i) {
    const uint32_t p = start[static_cast<std::size_t>(ids[i])]++;
    pos[i] = p;
    sorted[p] = x[i];
  }
  floor_groups(sorted.data(), res.data(), n, eps);
  for (std::size_t i = 0; i < n; ++i) out[i] = res[pos[i]];
}

// tmp[j] = x[order[j]], then out[order[j]] = tmp[j]: a random gather and a random scatter of n floats (an entry
// of order outside [0, n) is skipped: the caller's array is never trusted as an index).
inline void floor_permute(const int64_t* order, const float* x, float* tmp, float* out, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) {
    const uint64_t i = static_cast<uint64_t>(order[j]);
    tmp[j] = i < n ? x[i] : 0.0f;
  }
  for (std::size_t j = 0; j < n; ++j) {
    const uint64_t i = static_cast<uint64_t>(order[j]);
    if (i < n) out[i] = tmp[j];
  }
}

// out[t] = m[t] * (r[t] + gamma * run); run = out[t] + run * (1 - m[t]), t from n - 1 down: one dependent chain.
inline void floor_chain(const float* r, const float* m, float* out, std::size_t n, float gamma) {
  float run = 0.0f;
  for (std::size_t t = n; t-- > 0;) {
    const float kept = (r[t] + gamma * run) * m[t];
    out[t] = kept;
    run = kept + run * (1.0f - m[t]);
  }
}

#undef RLTRAIN_FLOOR_INLINE

}  // namespace rltrain::floor
