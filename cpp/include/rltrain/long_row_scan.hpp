// The reverse scans of token_returns and token_gae (llm_token.hpp) over few long rows. Row by row (token_scan.hpp)
// a row is one recurrence whose every step waits for the last: a 32,768-token row took 40 us (token_returns) and
// 74 us (token_gae) on one core, bound by the latency of the dependent multiply-add chain. Here each step is
// written as the affine map it is, s[t] = c[t] + a[t] s[t + 1], and a block of W consecutive tokens (one 64-byte
// vector: 16 float or 8 double) is scanned inside the vector in log2(W) doubling steps (Hillis and Steele: after
// the step of distance d, lane i holds the map of tokens i .. i + 2d - 1 of its block composed), so that only one
// multiply-add per block waits for the block to its right: s = c + A s_right. Blocks run from the end of the row;
// the L mod W first tokens then take the row-order step from the carried state.
//
// The same operations in the same order run in every clone (plain vector extensions, no FMA contraction): the
// results depend on L only, never on the clone, the threads or the other rows. They differ from the row order by
// rounding (a composed map rounds its products and sums in another order); with 0/1 masks, token_gae's carried
// next value is exact either way. tests/test_llm_token_fast_paths.py bounds the difference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "rltrain/simd_isa.hpp"
#include "rltrain/token_scan.hpp"

namespace rltrain {

namespace long_scan {

template <typename T>
struct Vec64;  // one 64-byte vector of T
template <>
struct Vec64<float> {
  using V = float __attribute__((vector_size(64)));
  using I = std::int32_t __attribute__((vector_size(64)));   // W int32 (a dependent vector_size is dropped by GCC)
  using C = I;                                               // lane conditions, as wide as T
  using U = std::uint32_t __attribute__((vector_size(64)));  // T's bits
  static constexpr std::uint32_t kOneBits = 0x3f800000u;     // 1.0f
  static constexpr int W = 16;
};
template <>
struct Vec64<double> {
  using V = double __attribute__((vector_size(64)));
  using I = std::int32_t __attribute__((vector_size(32)));
  using C = std::int64_t __attribute__((vector_size(64)));
  using U = std::uint64_t __attribute__((vector_size(64)));
  static constexpr std::uint64_t kOneBits = 0x3ff0000000000000u;  // 1.0
  static constexpr int W = 8;
};

// Vectors are passed by reference and every helper is inlined into its clone (never passed by value through a
// baseline function: -Wpsabi).

// out[i] = a[i + D] for i + D < W, else fill[i + D - W].
template <int D, typename V, std::size_t... I>
RLTRAIN_SIMD_INLINE void shift_down(V& out, const V& a, const V& fill, std::index_sequence<I...> /*lanes*/) {
  out = __builtin_shufflevector(a, fill, static_cast<int>(I + D)...);
}

// x in every lane, as a shuffle of lane 0 (one broadcast instruction; GCC 12 builds `x - V{}` or an initialiser
// list of x lane by lane, 16 masked moves for AVX-512).
template <typename T, std::size_t... I>
RLTRAIN_SIMD_INLINE void splat_lanes(typename Vec64<T>::V& out, T x, std::index_sequence<I...> /*lanes*/) {
  const typename Vec64<T>::V first = {x};
  out = __builtin_shufflevector(first, first, static_cast<int>(I * 0)...);
}

template <typename T>
RLTRAIN_SIMD_INLINE void splat_to(typename Vec64<T>::V& out, T x) {
  splat_lanes<T>(out, x, std::make_index_sequence<Vec64<T>::W>{});
}

template <typename T>
RLTRAIN_SIMD_INLINE void load(typename Vec64<T>::V& out, const T* p) {
  std::memcpy(&out, p, sizeof out);
}

template <typename T>
RLTRAIN_SIMD_INLINE void store(T* p, const typename Vec64<T>::V& v) {
  std::memcpy(p, &v, sizeof v);
}

// W mask entries as one vector (explicit types: a dependent vector_size is dropped by GCC).
template <typename T, typename M>
struct MaskVec;
template <>
struct MaskVec<float, std::uint8_t> {
  using type = std::uint8_t __attribute__((vector_size(16)));
};
template <>
struct MaskVec<float, std::int64_t> {
  using type = std::int64_t __attribute__((vector_size(128)));
};
template <>
struct MaskVec<float, double> {
  using type = double __attribute__((vector_size(128)));
};
template <>
struct MaskVec<double, std::uint8_t> {
  using type = std::uint8_t __attribute__((vector_size(8)));
};
template <>
struct MaskVec<double, std::int64_t> {
  using type = std::int64_t __attribute__((vector_size(64)));
};
template <>
struct MaskVec<double, float> {
  using type = float __attribute__((vector_size(32)));
};

// W mask entries as T (mask_value: integer masks are 0/1 flags, float masks their value), converted in vectors
// (an element loop through a stack buffer stalled on store forwarding: 4x slower on uint8 masks).
template <typename T, typename M>
RLTRAIN_SIMD_INLINE void load_mask(typename Vec64<T>::V& out, const M* p) {
  if constexpr (std::is_same_v<M, T>) {
    load<T>(out, p);
  } else {
    typename MaskVec<T, M>::type raw;
    std::memcpy(&raw, p, sizeof raw);
    if constexpr (std::is_integral_v<M>)  // flags as int32 first: GCC converts bytes to float lane by lane
      out =
          __builtin_convertvector(__builtin_convertvector((raw != 0) & 1, typename Vec64<T>::I), typename Vec64<T>::V);
    else
      out = __builtin_convertvector(raw, typename Vec64<T>::V);
  }
}

// (c, a) <- the maps of tokens i .. W - 1 composed, lane by lane: c[i] + a[i] s is the state at token i given the
// state s after the block. Lanes past the block take the identity (c 0, a 1).
template <typename T, int D = 1>
RLTRAIN_SIMD_INLINE void compose(typename Vec64<T>::V& c, typename Vec64<T>::V& a) {
  using V = typename Vec64<T>::V;
  constexpr int W = Vec64<T>::W;
  if constexpr (D < W) {
    const V zero = {};
    V one, cs, as;
    splat_to<T>(one, T(1));
    shift_down<D>(cs, c, zero, std::make_index_sequence<W>{});
    shift_down<D>(as, a, one, std::make_index_sequence<W>{});
    c = c + a * cs;
    a = a * as;
    compose<T, 2 * D>(c, a);
  }
}

// Lane 0 of v in every lane, written for the clone: GCC 12 compiles each spelling well for one width only. The
// AVX-512 clone broadcasts with a shuffle of v (a scalar splat became 16 masked moves there); the others extract
// the scalar and splat it (their lowering of the 64-byte shuffle went through 16 stores and reloads). The values
// are the same either way.
template <int Isa, typename T, std::size_t... I>
RLTRAIN_SIMD_INLINE void first_lane(typename Vec64<T>::V& out, const typename Vec64<T>::V& v,
                                    std::index_sequence<I...> /*lanes*/) {
  if constexpr (Isa == 2)
    out = __builtin_shufflevector(v, v, static_cast<int>(I * 0)...);
  else
    out = v[0] - typename Vec64<T>::V{};  // x - 0 is x exactly, -0 and NaN included
}

// s = c + a * right (the block's states, `right` holding the state after the block in every lane), next = the
// state after each token (s shifted down one lane, right's in the last), and right <- s[0] in every lane.
template <int Isa, typename T>
RLTRAIN_SIMD_INLINE void resolve(typename Vec64<T>::V& s, typename Vec64<T>::V& next, const typename Vec64<T>::V& c,
                                 const typename Vec64<T>::V& a, typename Vec64<T>::V& right) {
  constexpr int W = Vec64<T>::W;
  s = c + a * right;
  shift_down<1>(next, s, right, std::make_index_sequence<W>{});
  first_lane<Isa, T>(right, s, std::make_index_sequence<W>{});
}

// Whether every lane of `seen` (the running sum of a row's block outputs) is finite. The sum turns non-finite
// once any output is, and stays so; it may also overflow on finite outputs (then the row merely takes the slow
// path). A row with an inf or NaN is computed again in the row order, so that non-finite values reach exactly
// the positions they reach in the row order: verl's `x * m + (1 - m) * x_prev` makes an inf a NaN one token
// later (inf * 0), which the composed maps would not reproduce.
template <typename T>
RLTRAIN_SIMD_INLINE bool all_finite(const typename Vec64<T>::V& seen) {
  bool ok = true;
  for (int j = 0; j < Vec64<T>::W; ++j) ok = ok && (seen[j] - seen[j] == T(0));
  return ok;
}

// token_returns of one row; the state is the `run` of llm_token.hpp's steps. masked="restart":
// run[t] = m r + (gamma m) run[t + 1], ret = r + gamma run[t + 1]; masked="carry":
// run[t] = m r + (gamma m + (1 - m)) run[t + 1], ret = (r + gamma run[t + 1]) m. The first L mod W tokens: `step`.
template <int Isa, bool Carry, typename T, typename M, typename Step>
RLTRAIN_SIMD_INLINE void returns_row(const T* r, const M* mask, T* out, std::size_t L, T gamma, const Step& step) {
  using V = typename Vec64<T>::V;
  constexpr std::size_t W = Vec64<T>::W;
  V one, g, right = {}, seen = {};
  splat_to<T>(one, T(1));
  splat_to<T>(g, gamma);
  std::size_t t1 = L;
  for (; t1 >= W; t1 -= W) {
    const std::size_t t0 = t1 - W;
    V rv, m, s, next;
    load<T>(rv, r + t0);
    load_mask<T>(m, mask + t0);
    V c = m * rv;
    V a = g * m;
    if constexpr (Carry) a = a + (one - m);
    compose<T>(c, a);
    resolve<Isa, T>(s, next, c, a, right);
    V y = rv + g * next;
    if constexpr (Carry) y = y * m;
    store<T>(out + t0, y);
    seen = seen + y;
  }
  T run = right[0];
  if (!all_finite<T>(seen)) {  // an inf or NaN: the row order throughout (see all_finite)
    run = 0;
    t1 = L;
  }
  for (std::size_t t = t1; t-- > 0;) {
    T x[1] = {r[t]}, y[1];
    step(&run, x, mask_value<T>(mask[t]), y);
    out[t] = y[0];
  }
}

// The next values of a block whose mask values are all 0 or 1: n[t] = m[t] ? v[t] : n[t + 1], each unset lane
// taking the value of the nearest set lane to its right (log2(W) selects; `ok` marks the lanes that have one).
// The values are copied, not computed: the same as v m + (1 - m) n[t + 1] except for the sign of a zero and for
// non-finite values (rows with those take the row order anyway), in about half the vector operations.
// ok ? a : b lane by lane, as bit operations (GCC 12's AVX2 lowering of a 64-byte `?:` went lane by lane).
template <typename T>
RLTRAIN_SIMD_INLINE void select(typename Vec64<T>::V& out, const typename Vec64<T>::C& ok,
                                const typename Vec64<T>::V& a, const typename Vec64<T>::V& b) {
  using V = typename Vec64<T>::V;
  using C = typename Vec64<T>::C;
  out = reinterpret_cast<V>((reinterpret_cast<C>(a) & ok) | (reinterpret_cast<C>(b) & ~ok));
}

template <typename T, int D = 1>
RLTRAIN_SIMD_INLINE void fill_from_right(typename Vec64<T>::V& c, typename Vec64<T>::C& ok) {
  using V = typename Vec64<T>::V;
  using C = typename Vec64<T>::C;
  constexpr int W = Vec64<T>::W;
  if constexpr (D < W) {
    const V zero = {};
    V cs, oks;  // ok shifted as float bits: GCC 12's AVX2 lowering of an int32 shuffle went through inserts
    shift_down<D>(cs, c, zero, std::make_index_sequence<W>{});
    shift_down<D>(oks, reinterpret_cast<const V&>(ok), zero, std::make_index_sequence<W>{});
    select<T>(c, ok, c, cs);
    ok = ok | reinterpret_cast<C>(oks);
    fill_from_right<T, 2 * D>(c, ok);
  }
}

// ok = -1 in the lanes of m that are not +0.0 (by their bits), and `odd` |= non-zero in the lanes that are neither
// +0.0 nor +1.0. Integer operations only: GCC 12's AVX2 lowering of a 64-byte float compare went lane by lane.
// The bits x + 0x7f..f carry into the sign bit exactly when x != 0 and x is not negative... or wrap for x past
// 0x80..0; either way a lane that is not +0.0 or +1.0 leaves x ^ (ok & bits(1.0)) non-zero.
template <typename T>
RLTRAIN_SIMD_INLINE void binary_lanes(typename Vec64<T>::C& ok, typename Vec64<T>::C& odd,
                                      const typename Vec64<T>::V& m) {
  using C = typename Vec64<T>::C;
  using U = typename Vec64<T>::U;
  using Bits = decltype(Vec64<T>::kOneBits);
  constexpr int kTop = static_cast<int>(8 * sizeof(Bits)) - 1;
  const U x = reinterpret_cast<U>(m);
  const U top = (x + static_cast<Bits>(~Bits(0) >> 1)) >> kTop;  // 0 or 1
  ok = -reinterpret_cast<C>(top);
  odd = odd | reinterpret_cast<C>(x ^ (reinterpret_cast<U>(ok) & Vec64<T>::kOneBits));
}

template <typename T>
RLTRAIN_SIMD_INLINE bool any_lane(const typename Vec64<T>::C& c) {
  bool any = false;
  for (int j = 0; j < Vec64<T>::W; ++j) any = any || c[j] != 0;
  return any;
}

// token_gae of one row; states (next value n, lastgaelam g) as in llm_token.hpp's TokenGaeStep:
// n[t] = v m + (1 - m) n[t + 1];  delta = (r + gamma n[t + 1]) - v;  g[t] = delta m + (gl m + (1 - m)) g[t + 1];
// adv = g[t], ret = g[t] + v. Binary: the next values by fill_from_right, which holds for masks of 0s and 1s
// (integer masks always; a float mask is checked as it goes: false, with the row unfinished, when it is not).
template <int Isa, bool Binary, typename T, typename M, typename Step>
RLTRAIN_SIMD_INLINE bool gae_row_as(const T* r, const T* v, const M* mask, T* adv, T* ret, std::size_t L, T gamma, T gl,
                                    const Step& step) {
  using V = typename Vec64<T>::V;
  using C = typename Vec64<T>::C;
  constexpr std::size_t W = Vec64<T>::W;
  V one, gm, glv, n_right = {}, g_right = {}, seen = {};
  C fractional = {};
  splat_to<T>(one, T(1));
  splat_to<T>(gm, gamma);
  splat_to<T>(glv, gl);
  std::size_t t1 = L;
  for (; t1 >= W; t1 -= W) {
    const std::size_t t0 = t1 - W;
    V rv, vv, m, n, n_next, g, g_next;
    load<T>(rv, r + t0);
    load<T>(vv, v + t0);
    load_mask<T>(m, mask + t0);
    const V keep = one - m;
    V c, a;
    if constexpr (Binary) {
      C ok;
      binary_lanes<T>(ok, fractional, m);  // integer masks give exact 0.0 / 1.0: `fractional` stays 0
      c = vv;
      fill_from_right<T>(c, ok);
      select<T>(n, ok, c, n_right);
      shift_down<1>(n_next, n, n_right, std::make_index_sequence<W>{});
      first_lane<Isa, T>(n_right, n, std::make_index_sequence<W>{});
    } else {
      c = vv * m;
      a = keep;
      compose<T>(c, a);
      resolve<Isa, T>(n, n_next, c, a, n_right);
    }
    const V delta = (rv + gm * n_next) - vv;
    c = delta * m;
    a = glv * m + keep;
    compose<T>(c, a);
    resolve<Isa, T>(g, g_next, c, a, g_right);
    store<T>(adv + t0, g);
    const V rt = g + vv;
    store<T>(ret + t0, rt);
    seen = seen + rt;  // g non-finite makes rt so
  }
  if constexpr (Binary && !std::is_integral_v<M>) {
    if (any_lane<T>(fractional)) return false;
  }
  T state[2] = {n_right[0], g_right[0]};  // n, g
  if (!all_finite<T>(seen)) {             // an inf or NaN: the row order throughout (see all_finite)
    state[0] = state[1] = 0;
    t1 = L;
  }
  for (std::size_t t = t1; t-- > 0;) {
    T x[2] = {r[t], v[t]}, y[2];
    step(state, x, mask_value<T>(mask[t]), y);
    adv[t] = y[0];
    ret[t] = y[1];
  }
  return true;
}

template <int Isa, typename T, typename M, typename Step>
RLTRAIN_SIMD_INLINE void gae_row(const T* r, const T* v, const M* mask, T* adv, T* ret, std::size_t L, T gamma, T gl,
                                 const Step& step) {
  if (!gae_row_as<Isa, true>(r, v, mask, adv, ret, L, gamma, gl, step))
    gae_row_as<Isa, false>(r, v, mask, adv, ret, L, gamma, gl, step);
}

// Rows [r0, r1) of [B, L] buffers; `carry` picks the masked="carry" recurrence.
template <int Isa, typename T, typename M, typename Step>
RLTRAIN_SIMD_INLINE void returns_rows(const ScanBuffers<T, M, 1, 1>& b, std::size_t r0, std::size_t r1, bool carry,
                                      T gamma, const Step& step) {
  for (std::size_t row = r0; row < r1; ++row) {
    const std::size_t o = row * b.L;
    if (carry)
      returns_row<Isa, true>(b.in[0] + o, b.mask + o, b.out[0] + o, b.L, gamma, step);
    else
      returns_row<Isa, false>(b.in[0] + o, b.mask + o, b.out[0] + o, b.L, gamma, step);
  }
}

template <int Isa, typename T, typename M, typename Step>
RLTRAIN_SIMD_INLINE void gae_rows(const ScanBuffers<T, M, 2, 2>& b, std::size_t r0, std::size_t r1, T gamma, T gl,
                                  const Step& step) {
  for (std::size_t row = r0; row < r1; ++row) {
    const std::size_t o = row * b.L;
    gae_row<Isa>(b.in[0] + o, b.in[1] + o, b.mask + o, b.out[0] + o, b.out[1] + o, b.L, gamma, gl, step);
  }
}

#if defined(RLTRAIN_X86_CLONES)
template <typename T, typename M, typename Step>
__attribute__((target("avx2"))) void returns_rows_avx2(const ScanBuffers<T, M, 1, 1>& b, std::size_t r0, std::size_t r1,
                                                       bool carry, T gamma, const Step& step) {
  returns_rows<1>(b, r0, r1, carry, gamma, step);
}
template <typename T, typename M, typename Step>
RLTRAIN_TARGET_AVX512 void returns_rows_avx512(const ScanBuffers<T, M, 1, 1>& b, std::size_t r0, std::size_t r1,
                                               bool carry, T gamma, const Step& step) {
  returns_rows<2>(b, r0, r1, carry, gamma, step);
}
template <typename T, typename M, typename Step>
__attribute__((target("avx2"))) void gae_rows_avx2(const ScanBuffers<T, M, 2, 2>& b, std::size_t r0, std::size_t r1,
                                                   T gamma, T gl, const Step& step) {
  gae_rows<1>(b, r0, r1, gamma, gl, step);
}
template <typename T, typename M, typename Step>
RLTRAIN_TARGET_AVX512 void gae_rows_avx512(const ScanBuffers<T, M, 2, 2>& b, std::size_t r0, std::size_t r1, T gamma,
                                           T gl, const Step& step) {
  gae_rows<2>(b, r0, r1, gamma, gl, step);
}
#endif

template <typename T, typename M, typename Step>
void returns_rows_best(const ScanBuffers<T, M, 1, 1>& b, std::size_t r0, std::size_t r1, bool carry, T gamma,
                       const Step& step) {
#if defined(RLTRAIN_X86_CLONES)
  const simd::Isa best = simd::isa();
  if (best == simd::Isa::Avx512) return returns_rows_avx512(b, r0, r1, carry, gamma, step);
  if (best == simd::Isa::Avx2) return returns_rows_avx2(b, r0, r1, carry, gamma, step);
#endif
  returns_rows<0>(b, r0, r1, carry, gamma, step);
}

template <typename T, typename M, typename Step>
void gae_rows_best(const ScanBuffers<T, M, 2, 2>& b, std::size_t r0, std::size_t r1, T gamma, T gl, const Step& step) {
#if defined(RLTRAIN_X86_CLONES)
  const simd::Isa best = simd::isa();
  if (best == simd::Isa::Avx512) return gae_rows_avx512(b, r0, r1, gamma, gl, step);
  if (best == simd::Isa::Avx2) return gae_rows_avx2(b, r0, r1, gamma, gl, step);
#endif
  gae_rows<0>(b, r0, r1, gamma, gl, step);
}

// Runs fn(r0, r1) for each row on the pool (rows are independent: any split gives the same bits).
template <typename Fn>
void each_row(std::size_t B, ThreadPool& pool, Fn&& fn) {
  if (B <= 1) {
    if (B == 1) fn(std::size_t(0), std::size_t(1));
    return;
  }
  pool.parallel_for(B, [&](std::size_t k) { fn(k, k + 1); });
}

}  // namespace long_scan

}  // namespace rltrain
