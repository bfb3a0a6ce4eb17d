// Per-token kernels of language-model RL over [B, L] response buffers with a mask (1 = response token):
// REINFORCE++ returns and GAE as verl computes them (reverse scans, token_scan.hpp), the masked whitening of
// verl_F.masked_whiten, and the KL estimators k1/k2/k3 of J. Schulman, "Approximating KL divergence" (2020).
// Masks are bool/uint8/int64 (non-zero = 1) or float (their value enters the formulas by multiplication, as
// verl's `x * mask` does; kl_estimate selects, so a 0 there is an exact 0). rltrain.reference holds the spec.
// Thread-count independence: scans split rows, kl_estimate splits elements, masked_whiten sums in fixed blocks
// combined in block order; no result depends on how many threads ran.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "rltrain/long_row_scan.hpp"
#include "rltrain/simd_isa.hpp"
#include "rltrain/thread_pool.hpp"
#include "rltrain/token_scan.hpp"

// The elementwise loops (kl_estimate, masked_whiten's sums and its output pass) carry AVX2 and AVX-512 clones
// (simd_isa.hpp): explicit target-attributed entry points around always-inlined bodies, so the compiler vectorises
// each body at the clone's width (on one 32,768-token row the SSE2 baseline ran k3 at 3 ns per element). GCC's
// target_clones on the templates was tried before and dropped (GCC 13 stops with an internal compiler error in its
// target-clone pass on this file); plain target attributes do not go through that pass.

namespace rltrain {

template <typename T, typename M>
using TokenScan1 = ScanBuffers<T, M, 1, 1>;  // token_rewards -> returns
template <typename T, typename M>
using TokenScan2 = ScanBuffers<T, M, 2, 2>;  // token_rewards, values -> advantages, returns

// ------------------------------------------------------------------------------------------ token_returns

// masked="restart" (SPEC §6): ret[t] = r[t] + gamma * run; run = ret[t] * m[t]  (a masked token restarts).
template <typename T>
struct ReturnsRestartStep {
  T gamma;
  template <typename V>
  void operator()(V* s, const V* x, V m, V* y) const {
    const V ret = x[0] + splat<V>(gamma) * s[0];
    y[0] = ret;
    s[0] = ret * m;
  }
};

// masked="carry" (verl's compute_reinforce_plus_plus_outcome_advantage): new = r[t] + gamma * run;
// ret[t] = new * m[t]; run = new * m[t] + run * (1 - m[t])  (the return carries across masked spans).
template <typename T>
struct ReturnsCarryStep {
  T gamma;
  template <typename V>
  void operator()(V* s, const V* x, V m, V* y) const {
    const V nw = x[0] + splat<V>(gamma) * s[0];
    const V kept = nw * m;
    y[0] = kept;
    s[0] = kept + s[0] * (splat<V>(T(1)) - m);
  }
};

template <typename T, typename M>
void token_returns(const TokenScan1<T, M>& b, double gamma, bool carry, ThreadPool& pool) {
  if (scan_long_rows<1, 1>(b.B, b.L)) {
    const T g = static_cast<T>(gamma);
    long_scan::each_row(b.B, pool, [&](std::size_t r0, std::size_t r1) {
      if (carry)
        long_scan::returns_rows_best(b, r0, r1, true, g, ReturnsCarryStep<T>{g});
      else
        long_scan::returns_rows_best(b, r0, r1, false, g, ReturnsRestartStep<T>{g});
    });
    return;
  }
  if (carry)
    scan<1>(b, ReturnsCarryStep<T>{static_cast<T>(gamma)}, pool);
  else
    scan<1>(b, ReturnsRestartStep<T>{static_cast<T>(gamma)}, pool);
}

// ---------------------------------------------------------------------------------------------- token_gae

// verl's compute_gae_advantage_return, before its whitening; state = (nextvalues, lastgaelam):
//   delta = r[t] + gamma * nextvalues - v[t];  lg = delta + gamma * lam * lastgaelam
//   nextvalues = v[t] * m[t] + (1 - m[t]) * nextvalues;  lastgaelam = lg * m[t] + (1 - m[t]) * lastgaelam
//   adv[t] = lastgaelam;  ret[t] = adv[t] + v[t]
template <typename T>
struct TokenGaeStep {
  T gamma, gl;  // gl = gamma * lam, rounded once
  template <typename V>
  void operator()(V* s, const V* x, V m, V* y) const {
    const V v = x[1], keep = splat<V>(T(1)) - m;
    const V delta = (x[0] + splat<V>(gamma) * s[0]) - v;
    const V lg = delta + splat<V>(gl) * s[1];
    s[0] = v * m + keep * s[0];
    s[1] = lg * m + keep * s[1];
    y[0] = s[1];
    y[1] = s[1] + v;
  }
};

template <typename T, typename M>
void token_gae(const TokenScan2<T, M>& b, double gamma, double lam, ThreadPool& pool) {
  const TokenGaeStep<T> step{static_cast<T>(gamma), static_cast<T>(gamma * lam)};
  if (scan_long_rows<2, 2>(b.B, b.L)) {
    long_scan::each_row(b.B, pool, [&](std::size_t r0, std::size_t r1) {
      long_scan::gae_rows_best(b, r0, r1, step.gamma, step.gl, step);
    });
    return;
  }
  scan<2>(b, step, pool);
}

// ---------------------------------------------------------------------------------- elementwise helpers

namespace token_detail {

// Elements per task of the elementwise kernels (a multiple of the whitening block; one 32,768-token row: two tasks).
constexpr std::size_t kChunk = std::size_t(1) << 14;

template <typename Fn>
void split_elements(std::size_t n, Fn&& fn, ThreadPool& pool) {
  const std::size_t tasks = (n + kChunk - 1) / kChunk;
  if (tasks <= 1) {
    if (n > 0) fn(std::size_t(0), n);
    return;
  }
  pool.parallel_for(tasks, [&](std::size_t k) { fn(k * kChunk, std::min(n, (k + 1) * kChunk)); });
}

template <typename To, typename From>
RLTRAIN_SIMD_INLINE To bit_cast(From f) {
  To t;
  std::memcpy(&t, &f, sizeof(To));
  return t;
}

// x < lo -> lo, x > hi -> hi, NaN stays NaN (torch.clamp, np.clip). Two selects of the form of SSE's
// maxps/minps (`a > b ? a : b` returns b when either is NaN), which the compiler emits for them.
template <typename T>
RLTRAIN_SIMD_INLINE T clamp(T x, T lo, T hi) {
  const T above = lo > x ? lo : x;
  return hi < above ? hi : above;
}

// exp written without branches or tables so that loops over it vectorise (libm's exp is a call per element:
// k3 over [1024, 4096] float32 took 18 ms with it, 7 ms with this). Cody-Waite reduction x = n ln2 + r,
// |r| <= ln2/2; exp(r) by Cephes' expf polynomial (float) or the Taylor series to r^13 (double, truncation
// < 2e-18); 2^n applied as two exact power-of-two factors so that subnormal results round once. Arguments
// beyond the overflow / underflow thresholds are selected at the end (an input clamp instead lets GCC push
// the selects through the polynomial: 40% slower); the exponent arithmetic is unsigned, so the garbage it makes
// for those arguments is well defined. Measured against glibc over 2e7 arguments: at most 1 ulp apart; NaN and
// +-inf as libm gives them, overflow to inf and underflow to 0 at the same arguments.
RLTRAIN_SIMD_INLINE float exp_lanes(float x) {
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits
  const float t = x * 1.44269504088896341f + magic;
  const float nf = t - magic;
  const std::uint32_t n = bit_cast<std::uint32_t>(t) - bit_cast<std::uint32_t>(magic);
  const float r = (x - nf * 0.693359375f) - nf * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  const float p = (y * (r * r) + r) + 1.0f;
  const float hi = (p * bit_cast<float>((n + 126u) << 23)) * 2.0f;                      // n in [0, 128]: 2^(n-1) * 2
  const float lo = (p * bit_cast<float>((n + 191u) << 23)) * 5.42101086242752217e-20f;  // n < 0: 2^(n+64) * 2^-64
  const float e = nf < 0.0f ? lo : hi;
  const float capped = x > 89.0f ? std::numeric_limits<float>::infinity() : e;
  return x < -104.0f ? 0.0f : capped;  // NaN stays NaN
}

RLTRAIN_SIMD_INLINE double exp_lanes(double x) {
  const double magic = 6755399441055744.0;  // 1.5 * 2^52
  const double t = x * 1.4426950408889634 + magic;
  const double nf = t - magic;
  const std::uint64_t n = bit_cast<std::uint64_t>(t) - bit_cast<std::uint64_t>(magic);
  // ln2 = hi + lo with 32 trailing zero bits in hi, so nf * hi is exact (fdlibm).
  const double r = (x - nf * 6.93147180369123816490e-01) - nf * 1.90821492927058770002e-10;
  double y = 1.0 / 6227020800.0;
  y = y * r + 1.0 / 479001600.0;
  y = y * r + 1.0 / 39916800.0;
  y = y * r + 1.0 / 3628800.0;
  y = y * r + 1.0 / 362880.0;
  y = y * r + 1.0 / 40320.0;
  y = y * r + 1.0 / 5040.0;
  y = y * r + 1.0 / 720.0;
  y = y * r + 1.0 / 120.0;
  y = y * r + 1.0 / 24.0;
  y = y * r + 1.0 / 6.0;
  y = y * r + 0.5;
  const double p = (y * (r * r) + r) + 1.0;
  const double hi = (p * bit_cast<double>((n + 1022u) << 52)) * 2.0;
  const double lo = (p * bit_cast<double>((n + 1623u) << 52)) * 0x1p-600;
  const double e = nf < 0.0 ? lo : hi;
  const double capped = x > 710.0 ? std::numeric_limits<double>::infinity() : e;
  return x < -746.0 ? 0.0 : capped;
}

// exp_lanes for arguments in [-20, 20] (kl_estimate's clamp) or NaN: there 2^n and the result are normal numbers,
// so p * 2^n in one multiplication is exactly what exp_lanes' two-step scaling gives (both exact) and its overflow
// and underflow selects never fire: the same bits in fewer instructions (checked against exp_lanes over 1.1e7
// arguments in [-25, 25], float and double).
RLTRAIN_SIMD_INLINE float exp_lanes_clamped(float x) {
  const float magic = 12582912.0f;
  const float t = x * 1.44269504088896341f + magic;
  const float nf = t - magic;
  const std::uint32_t n = bit_cast<std::uint32_t>(t) - bit_cast<std::uint32_t>(magic);
  const float r = (x - nf * 0.693359375f) - nf * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  const float p = (y * (r * r) + r) + 1.0f;
  return p * bit_cast<float>((n + 127u) << 23);
}

RLTRAIN_SIMD_INLINE double exp_lanes_clamped(double x) {
  const double magic = 6755399441055744.0;
  const double t = x * 1.4426950408889634 + magic;
  const double nf = t - magic;
  const std::uint64_t n = bit_cast<std::uint64_t>(t) - bit_cast<std::uint64_t>(magic);
  const double r = (x - nf * 6.93147180369123816490e-01) - nf * 1.90821492927058770002e-10;
  double y = 1.0 / 6227020800.0;
  y = y * r + 1.0 / 479001600.0;
  y = y * r + 1.0 / 39916800.0;
  y = y * r + 1.0 / 3628800.0;
  y = y * r + 1.0 / 362880.0;
  y = y * r + 1.0 / 40320.0;
  y = y * r + 1.0 / 5040.0;
  y = y * r + 1.0 / 720.0;
  y = y * r + 1.0 / 120.0;
  y = y * r + 1.0 / 24.0;
  y = y * r + 1.0 / 6.0;
  y = y * r + 0.5;
  const double p = (y * (r * r) + r) + 1.0;
  return p * bit_cast<double>((n + 1023u) << 52);
}

}  // namespace token_detail

// ------------------------------------------------------------------------------------------- kl_estimate

enum class KlKind { K1 = 0, K2 = 1, K3 = 2, Abs = 3 };

namespace token_detail {

// out[i] = f(logp[i] - ref_logp[i]) for i in [i0, i1), 0 where mask[i] == 0 (mask may be null). out may be
// logp or ref_logp itself (each element is read before it is written), so those pointers are not __restrict.
template <typename T, typename M, typename F>
RLTRAIN_SIMD_INLINE void kl_range(std::size_t i0, std::size_t i1, const T* a, const T* b, const M* __restrict mask,
                                  T* o, F f) {
  if (mask == nullptr) {
    for (std::size_t i = i0; i < i1; ++i) o[i] = f(a[i] - b[i]);
  } else if constexpr (std::is_integral_v<M> && sizeof(M) > 1) {
    // int64 flags as bytes first, piece by piece: a loop mixing 8-byte flags with the exp of 4-byte
    // floats does not vectorise (k3 with an int64 mask took 43 ms on [1024, 4096], 8 ms like this).
    constexpr std::size_t kPiece = 1024;
    std::uint8_t flags[kPiece];
    for (std::size_t p = i0; p < i1; p += kPiece) {
      const std::size_t len = std::min(kPiece, i1 - p);
      for (std::size_t j = 0; j < len; ++j) flags[j] = mask[p + j] != 0;
      for (std::size_t j = 0; j < len; ++j) {
        const T v = f(a[p + j] - b[p + j]);
        o[p + j] = flags[j] != 0 ? v : T(0);
      }
    }
  } else {
    for (std::size_t i = i0; i < i1; ++i) {
      const T v = f(a[i] - b[i]);
      o[i] = mask[i] != M(0) ? v : T(0);
    }
  }
}

// out = (x - mean) * inv + back in double, rounded once to T; out may be x itself.
template <typename T>
RLTRAIN_SIMD_INLINE void whiten_range(std::size_t i0, std::size_t i1, const T* a, double mean, double inv, double back,
                                      bool shift_mean, T* o) {
  if (shift_mean) {
    for (std::size_t i = i0; i < i1; ++i) o[i] = static_cast<T>((static_cast<double>(a[i]) - mean) * inv);
  } else {
    for (std::size_t i = i0; i < i1; ++i) o[i] = static_cast<T>((static_cast<double>(a[i]) - mean) * inv + back);
  }
}

// The same, then times the mask in T (masked_whiten(times_mask=True): verl's `masked_whiten(x, m) * m` in one
// pass). Integer masks enter as 0/1 through a byte piece (int64 flags do not vectorise mixed with floats).
template <typename T, typename M>
RLTRAIN_SIMD_INLINE void whiten_mask_range(std::size_t i0, std::size_t i1, const T* a, const M* __restrict m,
                                           double mean, double inv, double back, T* o) {
  if constexpr (std::is_integral_v<M>) {
    constexpr std::size_t kPiece = 1024;
    T w[kPiece];
    for (std::size_t p = i0; p < i1; p += kPiece) {
      const std::size_t len = std::min(kPiece, i1 - p);
      for (std::size_t j = 0; j < len; ++j) w[j] = m[p + j] != 0 ? T(1) : T(0);
      for (std::size_t j = 0; j < len; ++j)
        o[p + j] = static_cast<T>((static_cast<double>(a[p + j]) - mean) * inv + back) * w[j];
    }
  } else {
    for (std::size_t i = i0; i < i1; ++i)
      o[i] = static_cast<T>((static_cast<double>(a[i]) - mean) * inv + back) * static_cast<T>(m[i]);
  }
}

// The estimators as functors whose call inlines into each clone (a lambda's would be a baseline function).
template <typename T>
struct KlK1 {
  RLTRAIN_SIMD_INLINE T operator()(T d) const { return d; }
};
template <typename T>
struct KlK2 {
  RLTRAIN_SIMD_INLINE T operator()(T d) const { return T(0.5) * (d * d); }
};
template <typename T>
struct KlAbs {
  RLTRAIN_SIMD_INLINE T operator()(T d) const { return std::abs(d); }
};
template <typename T>
struct KlK3 {
  RLTRAIN_SIMD_INLINE T operator()(T d) const {
    const T kl = -d;
    return (exp_lanes(kl) - kl) - T(1);
  }
};
template <typename T>
struct KlK3Clamp {
  T kl_hi, out_hi;  // 20 and 10, read from volatile memory (see kl_estimate)
  RLTRAIN_SIMD_INLINE T operator()(T d) const {
    const T kl = clamp(-d, -kl_hi, kl_hi);
    return clamp((exp_lanes_clamped(kl) - kl) - T(1), -out_hi, out_hi);
  }
};

#if defined(RLTRAIN_X86_CLONES)
template <typename T, typename M, typename F>
__attribute__((target("avx2"))) void kl_range_avx2(std::size_t i0, std::size_t i1, const T* a, const T* b,
                                                   const M* mask, T* o, F f) {
  kl_range(i0, i1, a, b, mask, o, f);
}
template <typename T, typename M, typename F>
RLTRAIN_TARGET_AVX512 void kl_range_avx512(std::size_t i0, std::size_t i1, const T* a, const T* b, const M* mask, T* o,
                                           F f) {
  kl_range(i0, i1, a, b, mask, o, f);
}
template <typename T>
__attribute__((target("avx2"))) void whiten_range_avx2(std::size_t i0, std::size_t i1, const T* a, double mean,
                                                       double inv, double back, bool shift_mean, T* o) {
  whiten_range(i0, i1, a, mean, inv, back, shift_mean, o);
}
template <typename T>
RLTRAIN_TARGET_AVX512 void whiten_range_avx512(std::size_t i0, std::size_t i1, const T* a, double mean, double inv,
                                               double back, bool shift_mean, T* o) {
  whiten_range(i0, i1, a, mean, inv, back, shift_mean, o);
}
template <typename T, typename M>
__attribute__((target("avx2"))) void whiten_mask_range_avx2(std::size_t i0, std::size_t i1, const T* a, const M* m,
                                                            double mean, double inv, double back, T* o) {
  whiten_mask_range(i0, i1, a, m, mean, inv, back, o);
}
template <typename T, typename M>
RLTRAIN_TARGET_AVX512 void whiten_mask_range_avx512(std::size_t i0, std::size_t i1, const T* a, const M* m, double mean,
                                                    double inv, double back, T* o) {
  whiten_mask_range(i0, i1, a, m, mean, inv, back, o);
}
#endif

// kl_range on the widest clone the CPU has.
template <typename T, typename M, typename F>
void kl_range_best(std::size_t i0, std::size_t i1, const T* a, const T* b, const M* mask, T* o, F f) {
#if defined(RLTRAIN_X86_CLONES)
  const simd::Isa best = simd::isa();
  if (best == simd::Isa::Avx512) return kl_range_avx512(i0, i1, a, b, mask, o, f);
  if (best == simd::Isa::Avx2) return kl_range_avx2(i0, i1, a, b, mask, o, f);
#endif
  kl_range(i0, i1, a, b, mask, o, f);
}

// whiten_range / whiten_mask_range (mask not null) on the widest clone.
template <typename T, typename M>
void whiten_range_best(std::size_t i0, std::size_t i1, const T* a, const M* mask, double mean, double inv, double back,
                       bool shift_mean, T* o) {
#if defined(RLTRAIN_X86_CLONES)
  const simd::Isa best = simd::isa();
  if (best == simd::Isa::Avx512) {
    if (mask != nullptr) return whiten_mask_range_avx512(i0, i1, a, mask, mean, inv, back, o);
    return whiten_range_avx512(i0, i1, a, mean, inv, back, shift_mean, o);
  }
  if (best == simd::Isa::Avx2) {
    if (mask != nullptr) return whiten_mask_range_avx2(i0, i1, a, mask, mean, inv, back, o);
    return whiten_range_avx2(i0, i1, a, mean, inv, back, shift_mean, o);
  }
#endif
  if (mask != nullptr) return whiten_mask_range(i0, i1, a, mask, mean, inv, back, o);
  whiten_range(i0, i1, a, mean, inv, back, shift_mean, o);
}

}  // namespace token_detail

// With d = logp - ref_logp: k1 = d; k2 = d^2 / 2; k3 = exp(-d) + d - 1, evaluated as verl does,
// kl = ref_logp - logp, (exp(kl) - kl) - 1 (with clamp: kl into [-20, 20] first, the result into [-10, 10]);
// abs = |d|. Where mask == 0 the output is exactly 0 (a select: no inf * 0). mask may be null; out may be
// logp or ref_logp (the same buffer exactly: an elementwise kernel).
template <typename T, typename M>
void kl_estimate(std::size_t n, const T* logp, const T* ref_logp, const M* mask, KlKind kind, bool clamp, T* out,
                 ThreadPool& pool) {
  auto apply = [&](auto f) {
    token_detail::split_elements(
        n, [&](std::size_t i0, std::size_t i1) { token_detail::kl_range_best(i0, i1, logp, ref_logp, mask, out, f); },
        pool);
  };
  switch (kind) {
    case KlKind::K1:
      apply(token_detail::KlK1<T>{});
      break;
    case KlKind::K2:
      apply(token_detail::KlK2<T>{});
      break;
    case KlKind::Abs:
      apply(token_detail::KlAbs<T>{});
      break;
    case KlKind::K3:
      if (clamp) {
        // Bounds the compiler cannot see as constants: with constants GCC folds the selects into the exp and
        // computes every case (k3 with clamp, [1024, 4096] float32: 16.7 ms; like this 9.3 ms, maxps/minps).
        volatile T bounds[2] = {T(20), T(10)};
        apply(token_detail::KlK3Clamp<T>{bounds[0], bounds[1]});
      } else {
        apply(token_detail::KlK3<T>{});
      }
      break;
  }
}

// ----------------------------------------------------------------------------------------- masked_whiten

// Mask-weighted statistics in double: n = sum m, mean = sum m x / n, var = sum m (x - mean)^2 / (n - 1)
// (written as verl writes it: the population value times n / (n - 1)).
struct WhitenStats {
  double n = 0.0, mean = 0.0, var = 0.0;
};

namespace token_detail {

// Statistics are summed over fixed blocks of kWhitenBlock elements (the split never depends on the threads):
// each block gives its weight S0, weighted sum S1 and the squared deviations about its own mean M2 (a second
// sweep over the block while it is in L1: 2048 elements of x and mask), and the blocks are combined in order with
// Chan et al.'s pairwise update, M2 = sum_b M2_b + S0_b (mean_b - mean)^2. A block whose weights sum to 0 has no
// mean of its own; its squared deviations about the global mean are summed in a later sweep, unless its weights
// are all 0 and its values small (then they add exactly +0, known in the parallel pass).
constexpr std::size_t kWhitenBlock = 2048;

struct BlockSums {
  double s0, s1, m2;
  bool zero_small = false;  // s0 == 0 with every weight 0 and every |x| < kSmallX (see masked_stats)
};

// Below this, (x - mean)^2 cannot overflow for |mean| below it too: (2e150)^2 < DBL_MAX.
constexpr double kSmallX = 1e150;

// Whether every weight of x [n] under m is 0 and every |x| < kSmallX (NaN is not).
template <typename T, typename M>
RLTRAIN_SIMD_INLINE bool zero_weights_small_x(const T* x, const M* m, std::size_t n) {
  int bad = 0;  // no short-circuit: the loop vectorises (a && chain ran element by element, 1 ns each)
  for (std::size_t i = 0; i < n; ++i)
    bad |= static_cast<int>(mask_value<T>(m[i]) != T(0)) | static_cast<int>(!(std::fabs(x[i]) < T(kSmallX)));
  return bad == 0;
}

// Interleaved double sums (element i into accumulator i % kSumLanes, in a fixed order): with 4 the sweeps were
// bound by the latency of the adds (42 us for 32k float32 elements; 8 lanes fill the SSE2 adder's pipeline).
constexpr int kSumLanes = 8;

template <int K>
RLTRAIN_SIMD_INLINE double sum_lanes(const double* a) {
  if constexpr (K == 1)
    return a[0];
  else
    return sum_lanes<K / 2>(a) + sum_lanes<K / 2>(a + K / 2);
}

// Adds w[i] and x[i] * w[i] into s0[i % kSumLanes] and s1[i % kSumLanes].
template <typename T, typename W>
RLTRAIN_SIMD_INLINE void add_weighted(const T* __restrict x, const W* __restrict w, std::size_t n,
                                      double* __restrict s0, double* __restrict s1) {
  std::size_t i = 0;
  for (; i + kSumLanes <= n; i += kSumLanes)
    for (int k = 0; k < kSumLanes; ++k) {
      const double wk = static_cast<double>(w[i + k]);
      s0[k] += wk;
      s1[k] += static_cast<double>(x[i + k]) * wk;
    }
  for (int k = 0; i < n; ++i, ++k) {
    const double wk = static_cast<double>(w[i]);
    s0[k] += wk;
    s1[k] += static_cast<double>(x[i]) * wk;
  }
}

// Adds (x[i] - mean)^2 * w[i] into a[i % kSumLanes].
template <typename T, typename W>
RLTRAIN_SIMD_INLINE void add_sq_dev(const T* __restrict x, const W* __restrict w, std::size_t n, double mean,
                                    double* __restrict a) {
  std::size_t i = 0;
  for (; i + kSumLanes <= n; i += kSumLanes)
    for (int k = 0; k < kSumLanes; ++k) {
      const double d = static_cast<double>(x[i + k]) - mean;
      a[k] += (d * d) * static_cast<double>(w[i + k]);
    }
  for (int k = 0; i < n; ++i, ++k) {
    const double d = static_cast<double>(x[i]) - mean;
    a[k] += (d * d) * static_cast<double>(w[i]);
  }
}

#if defined(RLTRAIN_X86_CLONES)
// The same two loops written with W-wide vectors of doubles (GCC/Clang vector extensions) for the clones: lane j of
// the eight accumulators is vector k = j / W, element j % W, so every lane adds the same values in the same order
// as above (the compiler's own vectorisation of the loops above mixed scalar and vector code: 1.6 ns per element).
// The vectors are passed by reference (never by value through a baseline function: -Wpsabi); always inlined.
template <int W>
struct DVec;  // W doubles (a dependent vector_size is dropped by GCC: one specialisation per width)
template <>
struct DVec<4> {
  using V = double __attribute__((vector_size(32)));
};
template <>
struct DVec<8> {
  using V = double __attribute__((vector_size(64)));
};

template <int W, typename U>
RLTRAIN_SIMD_INLINE void load_d(typename DVec<W>::V& v, const U* p) {
  for (int k = 0; k < W; ++k) v[k] = static_cast<double>(p[k]);
}

template <int W, typename T, typename Wt>
RLTRAIN_SIMD_INLINE void add_weighted_vec(const T* __restrict x, const Wt* __restrict w, std::size_t n,
                                          double* __restrict s0, double* __restrict s1) {
  using V = typename DVec<W>::V;
  constexpr int K = kSumLanes / W;
  V a0[K], a1[K];
  std::memcpy(a0, s0, sizeof a0);
  std::memcpy(a1, s1, sizeof a1);
  std::size_t i = 0;
  for (; i + kSumLanes <= n; i += kSumLanes)
    for (int k = 0; k < K; ++k) {
      V xv, wv;
      load_d<W>(xv, x + i + k * W);
      load_d<W>(wv, w + i + k * W);
      a0[k] += wv;
      a1[k] += xv * wv;
    }
  std::memcpy(s0, a0, sizeof a0);
  std::memcpy(s1, a1, sizeof a1);
  add_weighted(x + i, w + i, n - i, s0, s1);  // the last n % 8 into lanes 0 .. n % 8 - 1, as above
}

template <int W, typename T, typename Wt>
RLTRAIN_SIMD_INLINE void add_sq_dev_vec(const T* __restrict x, const Wt* __restrict w, std::size_t n, double mean,
                                        double* __restrict a) {
  using V = typename DVec<W>::V;
  constexpr int K = kSumLanes / W;
  V acc[K];
  std::memcpy(acc, a, sizeof acc);
  std::size_t i = 0;
  for (; i + kSumLanes <= n; i += kSumLanes)
    for (int k = 0; k < K; ++k) {
      V xv, wv;
      load_d<W>(xv, x + i + k * W);
      load_d<W>(wv, w + i + k * W);
      const V d = xv - mean;
      acc[k] += (d * d) * wv;
    }
  std::memcpy(a, acc, sizeof acc);
  add_sq_dev(x + i, w + i, n - i, mean, a);
}
#endif

// The lane sums of one clone: W = 0 the plain loops (the baseline), else add_weighted_vec / add_sq_dev_vec.
template <int W, typename T, typename Wt>
RLTRAIN_SIMD_INLINE void add_weighted_w(const T* x, const Wt* w, std::size_t n, double* s0, double* s1) {
#if defined(RLTRAIN_X86_CLONES)
  if constexpr (W > 0) return add_weighted_vec<W>(x, w, n, s0, s1);
#endif
  add_weighted(x, w, n, s0, s1);
}

template <int W, typename T, typename Wt>
RLTRAIN_SIMD_INLINE void add_sq_dev_w(const T* x, const Wt* w, std::size_t n, double mean, double* a) {
#if defined(RLTRAIN_X86_CLONES)
  if constexpr (W > 0) return add_sq_dev_vec<W>(x, w, n, mean, a);
#endif
  add_sq_dev(x, w, n, mean, a);
}

// The sums over [0, n) with float weights: the mask itself when it is float, else its 0/1 values converted piece
// by piece into a small buffer (pieces of a multiple of kSumLanes keep the accumulation pattern). Written out for
// each sum, without a callback, so that everything inlines into the clones.
template <int W = 0, typename T, typename M>
RLTRAIN_SIMD_INLINE double sum_sq_dev(const T* x, const M* m, std::size_t n, double mean) {
  double a[kSumLanes] = {};
  if constexpr (std::is_integral_v<M>) {
    constexpr std::size_t kPiece = 1024;
    T w[kPiece];
    for (std::size_t i = 0; i < n; i += kPiece) {
      const std::size_t len = std::min(kPiece, n - i);
      for (std::size_t j = 0; j < len; ++j) w[j] = m[i + j] != 0 ? T(1) : T(0);
      add_sq_dev_w<W>(x + i, static_cast<const T*>(w), len, mean, a);
    }
  } else {
    add_sq_dev_w<W>(x, m, n, mean, a);
  }
  return sum_lanes<kSumLanes>(a);
}

template <int W, typename T, typename M>
RLTRAIN_SIMD_INLINE BlockSums block_sums(const T* x, const M* m, std::size_t n) {
  double s0[kSumLanes] = {}, s1[kSumLanes] = {};
  if constexpr (std::is_integral_v<M>) {
    constexpr std::size_t kPiece = 1024;
    T w[kPiece];
    for (std::size_t i = 0; i < n; i += kPiece) {
      const std::size_t len = std::min(kPiece, n - i);
      for (std::size_t j = 0; j < len; ++j) w[j] = m[i + j] != 0 ? T(1) : T(0);
      add_weighted_w<W>(x + i, static_cast<const T*>(w), len, s0, s1);
    }
  } else {
    add_weighted_w<W>(x, m, n, s0, s1);
  }
  BlockSums b{sum_lanes<kSumLanes>(s0), sum_lanes<kSumLanes>(s1), 0.0};
  if (b.s0 != 0.0)
    b.m2 = sum_sq_dev<W>(x, m, n, b.s1 / b.s0);
  else
    b.zero_small = zero_weights_small_x(x, m, n);
  return b;
}

// part[b] = block_sums of blocks [b0, b1) of x [n].
template <int W, typename T, typename M>
RLTRAIN_SIMD_INLINE void stats_blocks(const T* x, const M* mask, std::size_t n, std::size_t b0, std::size_t b1,
                                      BlockSums* part) {
  for (std::size_t b = b0; b < b1; ++b) {
    const std::size_t i0 = b * kWhitenBlock, len = std::min(n, i0 + kWhitenBlock) - i0;
    if constexpr (std::is_integral_v<M> && sizeof(M) > 1) {
      // int64 flags as bytes first (converted to weights directly they do not vectorise: 4x slower)
      std::uint8_t flags[kWhitenBlock];
      for (std::size_t j = 0; j < len; ++j) flags[j] = mask[i0 + j] != 0;
      part[b] = block_sums<W>(x + i0, static_cast<const std::uint8_t*>(flags), len);
    } else {
      part[b] = block_sums<W>(x + i0, mask + i0, len);
    }
  }
}

#if defined(RLTRAIN_X86_CLONES)
template <typename T, typename M>
__attribute__((target("avx2"))) void stats_blocks_avx2(const T* x, const M* mask, std::size_t n, std::size_t b0,
                                                       std::size_t b1, BlockSums* part) {
  stats_blocks<4>(x, mask, n, b0, b1, part);
}
template <typename T, typename M>
RLTRAIN_TARGET_AVX512 void stats_blocks_avx512(const T* x, const M* mask, std::size_t n, std::size_t b0, std::size_t b1,
                                               BlockSums* part) {
  stats_blocks<8>(x, mask, n, b0, b1, part);
}
#endif

// The squared deviations about `mean` of a block whose weights sum to 0 (masked_stats' later sweep).
template <int W, typename T, typename M>
RLTRAIN_SIMD_INLINE double zero_block_sq_dev(const T* x, const M* mask, std::size_t len, double mean) {
  return sum_sq_dev<W>(x, mask, len, mean);
}

#if defined(RLTRAIN_X86_CLONES)
template <typename T, typename M>
__attribute__((target("avx2"))) double zero_block_sq_dev_avx2(const T* x, const M* mask, std::size_t len, double mean) {
  return zero_block_sq_dev<4>(x, mask, len, mean);
}
template <typename T, typename M>
RLTRAIN_TARGET_AVX512 double zero_block_sq_dev_avx512(const T* x, const M* mask, std::size_t len, double mean) {
  return zero_block_sq_dev<8>(x, mask, len, mean);
}
#endif

// zero_block_sq_dev on the widest clone the CPU has (the same bits on each; the baseline's plain loops took
// 1.6 ns per element: 13 us for the masked last quarter of a 32,768-token row).
template <typename T, typename M>
double zero_block_sq_dev_best(const T* x, const M* mask, std::size_t len, double mean) {
#if defined(RLTRAIN_X86_CLONES)
  const simd::Isa best = simd::isa();
  if (best == simd::Isa::Avx512) return zero_block_sq_dev_avx512(x, mask, len, mean);
  if (best == simd::Isa::Avx2) return zero_block_sq_dev_avx2(x, mask, len, mean);
#endif
  return zero_block_sq_dev<0>(x, mask, len, mean);
}

template <typename T, typename M>
void stats_blocks_best(const T* x, const M* mask, std::size_t n, std::size_t b0, std::size_t b1, BlockSums* part) {
#if defined(RLTRAIN_X86_CLONES)
  const simd::Isa best = simd::isa();
  if (best == simd::Isa::Avx512) return stats_blocks_avx512(x, mask, n, b0, b1, part);
  if (best == simd::Isa::Avx2) return stats_blocks_avx2(x, mask, n, b0, b1, part);
#endif
  stats_blocks<0>(x, mask, n, b0, b1, part);
}

}  // namespace token_detail

// The statistics of x [n] under mask [n]. n < 2 is the caller's to refuse (WhitenStats.n says it).
template <typename T, typename M>
WhitenStats masked_stats(std::size_t n, const T* x, const M* mask, ThreadPool& pool) {
  using namespace token_detail;
  const std::size_t blocks = (n + kWhitenBlock - 1) / kWhitenBlock;
  std::vector<BlockSums> part(blocks);
  constexpr std::size_t kPerTask = kChunk / kWhitenBlock;
  auto run = [&](std::size_t b0, std::size_t b1) { stats_blocks_best(x, mask, n, b0, b1, part.data()); };
  const std::size_t tasks = (blocks + kPerTask - 1) / kPerTask;
  if (tasks <= 1)
    run(0, blocks);
  else
    pool.parallel_for(tasks, [&](std::size_t k) { run(k * kPerTask, std::min(blocks, (k + 1) * kPerTask)); });
  WhitenStats s;
  double s1 = 0.0;
  for (const BlockSums& b : part) s.n += b.s0, s1 += b.s1;
  s.mean = s1 / s.n;
  double m2 = 0.0;
  for (std::size_t b = 0; b < blocks; ++b) {
    const BlockSums& p = part[b];
    if (p.s0 != 0.0) {
      const double d = p.s1 / p.s0 - s.mean;
      m2 += p.m2 + p.s0 * (d * d);
    } else if (p.zero_small && std::fabs(s.mean) < kSmallX) {
      // every (x - mean)^2 * 0 is +0 or -0 and the lane sums +0: adding it leaves m2 as it is (the sweep below,
      // serial after the parallel blocks, took 2 us for the masked last quarter of a 32,768-token row)
    } else {
      const std::size_t i0 = b * kWhitenBlock;
      m2 += zero_block_sq_dev_best(x + i0, mask + i0, std::min(n, i0 + kWhitenBlock) - i0, s.mean);
    }
  }
  s.var = (m2 / s.n) * (s.n / (s.n - 1.0));
  return s;
}

// out = (x - mean) * (1 / sqrt(var + eps)), plus mean again when !shift_mean; in double, rounded once to T; then,
// when `mask` is not null, times mask_value<T>(mask) in T. out may be x itself (the same buffer exactly).
template <typename T, typename M = std::uint8_t>
void whiten_apply(std::size_t n, const T* x, const WhitenStats& s, double eps, bool shift_mean, T* out,
                  ThreadPool& pool, const M* mask = nullptr) {
  const double mean = s.mean, inv = 1.0 / std::sqrt(s.var + eps), back = shift_mean ? 0.0 : mean;
  token_detail::split_elements(
      n,
      [&](std::size_t i0, std::size_t i1) {
        token_detail::whiten_range_best(i0, i1, x, mask, mean, inv, back, shift_mean, out);
      },
      pool);
}

}  // namespace rltrain
