// Reverse scans over the rows of [B, L] token buffers (t = L-1 down to 0), the driver under token_returns and
// token_gae. Each row is an independent recurrence, so the throughput comes from running several rows at once:
// with SSE2 (every x86-64), a block of 8 rows (token_returns) or 4 (token_gae) runs as vectors of 4 float or 2
// double lanes, one row per lane, read through small in-register transposes (N columns of N rows at a time).
// Every lane performs exactly the scalar operations of its row in the same order, so a row's result does not
// depend on which block, lane or thread computed it: any split of the rows gives bit-identical output. Without
// SSE2 every row runs scalar. One row alone is a latency-bound recurrence (each step waits for the last): few
// long rows (scan_long_rows below) take long_row_scan.hpp's blocked scan instead, whose results differ from the
// row-by-row order by rounding (still the same for any split).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "rltrain/thread_pool.hpp"

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define RLTRAIN_TOKEN_SSE2 1
#endif

namespace rltrain {

// A mask entry as a number of the compute type T: integer masks (bool/uint8, int64 attention masks) are flags,
// 0 or 1 (non-zero means set); float masks enter with their value (converted to T as numpy's astype does).
template <typename T, typename M>
inline T mask_value(M m) {
  if constexpr (std::is_integral_v<M>)
    return m != 0 ? T(1) : T(0);
  else
    return static_cast<T>(m);
}

// Buffers of one scan: NI float inputs and NO float outputs, all [B, L] C-contiguous, and the mask [B, L].
template <typename T, typename M, int NI, int NO>
struct ScanBuffers {
  std::size_t B = 0, L = 0;
  const T* in[NI] = {};
  const M* mask = nullptr;
  T* out[NO] = {};
};

// A step of a scan is a functor `void operator()(V* state, const V* x, V m, V* y) const` over V = T (one row)
// or V = Lanes<T>::V (one row per lane); splat<V>(c) gives a constant of either kind.

namespace scan_detail {

// Row `row`, columns [0, t_end) from the last down, continuing from `state` (NS values, updated).
template <int NS, typename T, typename M, int NI, int NO, typename Step>
void scan_row(const ScanBuffers<T, M, NI, NO>& b, std::size_t row, std::size_t t_end, T* state, const Step& step) {
  const std::size_t base = row * b.L;
  T s[NS];  // a local copy: the recurrence stays in registers (through `state` it went through memory, +70%)
  for (int k = 0; k < NS; ++k) s[k] = state[k];
  for (std::size_t t = t_end; t-- > 0;) {
    T x[NI], y[NO > 0 ? NO : 1];
    for (int i = 0; i < NI; ++i) x[i] = b.in[i][base + t];
    step(s, x, mask_value<T>(b.mask[base + t]), y);
    for (int o = 0; o < NO; ++o) b.out[o][base + t] = y[o];
  }
  for (int k = 0; k < NS; ++k) state[k] = s[k];
}

}  // namespace scan_detail

#if defined(RLTRAIN_TOKEN_SSE2)

// SSE2 lanes of float (4) and double (2): arithmetic, and N x N transposing loads and stores of N rows.
template <typename T>
struct Lanes;

template <>
struct Lanes<float> {
  static constexpr int N = 4;
  struct V {
    __m128 v;
  };
  static V splat(float x) { return {_mm_set1_ps(x)}; }
  static V zero() { return {_mm_setzero_ps()}; }
  static V load(const float* p) { return {_mm_loadu_ps(p)}; }
  static void get(V a, float* out) { _mm_storeu_ps(out, a.v); }
  // out[j] = column j of rows p, p + L, p + 2L, p + 3L (4 columns each).
  static void load_cols(const float* p, std::size_t L, V out[4]) {
    __m128 r0 = _mm_loadu_ps(p), r1 = _mm_loadu_ps(p + L), r2 = _mm_loadu_ps(p + 2 * L), r3 = _mm_loadu_ps(p + 3 * L);
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    out[0].v = r0, out[1].v = r1, out[2].v = r2, out[3].v = r3;
  }
  static void store_cols(float* p, std::size_t L, const V in[4]) {
    __m128 r0 = in[0].v, r1 = in[1].v, r2 = in[2].v, r3 = in[3].v;
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    _mm_storeu_ps(p, r0), _mm_storeu_ps(p + L, r1), _mm_storeu_ps(p + 2 * L, r2), _mm_storeu_ps(p + 3 * L, r3);
  }
  static void mask_cols(const float* p, std::size_t L, V out[4]) { load_cols(p, L, out); }
  static void mask_cols(const std::uint8_t* p, std::size_t L, V out[4]) {
    const __m128i z = _mm_setzero_si128();
    const __m128 one = _mm_set1_ps(1.0f);
    __m128 r[4];
    for (int k = 0; k < 4; ++k) {
      std::int32_t word;
      std::memcpy(&word, p + k * L, 4);
      __m128i b = _mm_cvtsi32_si128(word);
      b = _mm_unpacklo_epi16(_mm_unpacklo_epi8(b, z), z);  // 4 bytes -> 4 int32
      r[k] = _mm_andnot_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(b, z)), one);
    }
    _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
    for (int k = 0; k < 4; ++k) out[k].v = r[k];
  }
  static void mask_cols(const std::int64_t* p, std::size_t L, V out[4]) {
    const __m128 one = _mm_set1_ps(1.0f);
    __m128 r[4];
    for (int k = 0; k < 4; ++k) {
      const std::int64_t* row = p + k * L;
      const __m128 lo = zero64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row)));
      const __m128 hi = zero64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2)));
      r[k] = _mm_andnot_ps(_mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)), one);  // one 32-bit word per value
    }
    _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
    for (int k = 0; k < 4; ++k) out[k].v = r[k];
  }
  // All ones in each 64-bit lane that is zero (SSE2 has no 64-bit compare: both 32-bit halves zero).
  static __m128 zero64(__m128i x) {
    const __m128i z = _mm_cmpeq_epi32(x, _mm_setzero_si128());
    return _mm_castsi128_ps(_mm_and_si128(z, _mm_shuffle_epi32(z, _MM_SHUFFLE(2, 3, 0, 1))));
  }
  template <typename M>  // double masks of float data: element by element
  static void mask_cols(const M* p, std::size_t L, V out[4]) {
    for (std::size_t j = 0; j < 4; ++j)
      out[j].v = _mm_setr_ps(mask_value<float>(p[j]), mask_value<float>(p[L + j]), mask_value<float>(p[2 * L + j]),
                             mask_value<float>(p[3 * L + j]));
  }
};
inline Lanes<float>::V operator+(Lanes<float>::V a, Lanes<float>::V b) { return {_mm_add_ps(a.v, b.v)}; }
inline Lanes<float>::V operator-(Lanes<float>::V a, Lanes<float>::V b) { return {_mm_sub_ps(a.v, b.v)}; }
inline Lanes<float>::V operator*(Lanes<float>::V a, Lanes<float>::V b) { return {_mm_mul_ps(a.v, b.v)}; }

template <>
struct Lanes<double> {
  static constexpr int N = 2;
  struct V {
    __m128d v;
  };
  static V splat(double x) { return {_mm_set1_pd(x)}; }
  static V zero() { return {_mm_setzero_pd()}; }
  static V load(const double* p) { return {_mm_loadu_pd(p)}; }
  static void get(V a, double* out) { _mm_storeu_pd(out, a.v); }
  static void load_cols(const double* p, std::size_t L, V out[2]) {
    const __m128d r0 = _mm_loadu_pd(p), r1 = _mm_loadu_pd(p + L);
    out[0].v = _mm_unpacklo_pd(r0, r1), out[1].v = _mm_unpackhi_pd(r0, r1);
  }
  static void store_cols(double* p, std::size_t L, const V in[2]) {
    _mm_storeu_pd(p, _mm_unpacklo_pd(in[0].v, in[1].v));
    _mm_storeu_pd(p + L, _mm_unpackhi_pd(in[0].v, in[1].v));
  }
  static void mask_cols(const double* p, std::size_t L, V out[2]) { load_cols(p, L, out); }
  static void mask_cols(const std::int64_t* p, std::size_t L, V out[2]) {
    const __m128d one = _mm_set1_pd(1.0);
    __m128d r[2];
    for (std::size_t k = 0; k < 2; ++k) {
      const __m128i z =
          _mm_cmpeq_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k * L)), _mm_setzero_si128());
      r[k] = _mm_andnot_pd(_mm_castsi128_pd(_mm_and_si128(z, _mm_shuffle_epi32(z, _MM_SHUFFLE(2, 3, 0, 1)))), one);
    }
    out[0].v = _mm_unpacklo_pd(r[0], r[1]), out[1].v = _mm_unpackhi_pd(r[0], r[1]);
  }
  template <typename M>  // uint8, or float masks of double data: element by element
  static void mask_cols(const M* p, std::size_t L, V out[2]) {
    for (std::size_t j = 0; j < 2; ++j) out[j].v = _mm_set_pd(mask_value<double>(p[L + j]), mask_value<double>(p[j]));
  }
};
inline Lanes<double>::V operator+(Lanes<double>::V a, Lanes<double>::V b) { return {_mm_add_pd(a.v, b.v)}; }
inline Lanes<double>::V operator-(Lanes<double>::V a, Lanes<double>::V b) { return {_mm_sub_pd(a.v, b.v)}; }
inline Lanes<double>::V operator*(Lanes<double>::V a, Lanes<double>::V b) { return {_mm_mul_pd(a.v, b.v)}; }

#endif  // RLTRAIN_TOKEN_SSE2

// A constant as a scalar T or as lanes of T.
template <typename V, typename T>
inline V splat(T x) {
  if constexpr (std::is_same_v<V, T>) {
    return x;
  } else {
#if defined(RLTRAIN_TOKEN_SSE2)
    return Lanes<T>::splat(x);
#endif
  }
}

// Rows run together by the lane path. Enough independent vector recurrences must be in flight to cover the
// latency of the dependent multiply-add chain (8 rows = 2 float / 4 double vectors), but with a power-of-two
// row length every row's current line falls in the same L1 set (12 ways here), so rows x (inputs + mask +
// outputs) must stay near 24 lines: 8 rows for token_returns (3 streams), 4 for token_gae (5 streams).
// Measured on [1024, 4096] float32, one thread: token_gae 5.4 ms with 4 rows, 10.0 ms with 8 (5.1 ms with 8 at
// L = 4000); token_returns 2.4 ms with 8 rows, 3.8 ms with 4, 5.1 ms with 16.
constexpr std::size_t kScanBlockRows = 8;

template <int NI, int NO>
constexpr std::size_t scan_block_rows() {
  return (NI + NO + 1) * kScanBlockRows <= 24 ? kScanBlockRows : kScanBlockRows / 2;
}

namespace scan_detail {

#if defined(RLTRAIN_TOKEN_SSE2)
// Rows [row0, row0 + R) on lanes, R / N vector recurrences side by side: N columns at a time from the last,
// then the leftover L % N first columns scalar, each row continuing from its lane's state. `states` (R x NS,
// row-major) holds the rows' initial states and receives their final ones; null: start from 0.
template <std::size_t R, int NS, typename T, typename M, int NI, int NO, typename Step>
void scan_block(const ScanBuffers<T, M, NI, NO>& b, std::size_t row0, const Step& step, T* states) {
  using S = Lanes<T>;
  using V = typename S::V;
  constexpr int N = S::N, G = static_cast<int>(R) / N, NY = NO > 0 ? NO : 1;
  const std::size_t L = b.L;
  V s[G][NS];
  for (int q = 0; q < G; ++q)
    for (int k = 0; k < NS; ++k) {
      if (states == nullptr) {
        s[q][k] = S::zero();
      } else {
        T lanes[N];
        for (int j = 0; j < N; ++j) lanes[j] = states[(q * N + j) * NS + k];
        s[q][k] = S::load(lanes);
      }
    }
  std::size_t t1 = L;
  for (; t1 >= static_cast<std::size_t>(N); t1 -= N) {
    const std::size_t t0 = t1 - N;
    for (int q = 0; q < G; ++q) {
      const std::size_t off = (row0 + static_cast<std::size_t>(q * N)) * L + t0;
      V x[NI][N], m[N], y[NY][N];
      for (int i = 0; i < NI; ++i) S::load_cols(b.in[i] + off, L, x[i]);
      S::mask_cols(b.mask + off, L, m);
      for (int j = N; j-- > 0;) {
        V xj[NI], yj[NY];
        for (int i = 0; i < NI; ++i) xj[i] = x[i][j];
        step(s[q], xj, m[j], yj);
        for (int o = 0; o < NO; ++o) y[o][j] = yj[o];
      }
      for (int o = 0; o < NO; ++o) S::store_cols(b.out[o] + off, L, y[o]);
    }
  }
  if (t1 == 0 && states == nullptr) return;
  for (int q = 0; q < G; ++q) {
    T lanes[NS][N];
    for (int k = 0; k < NS; ++k) S::get(s[q][k], lanes[k]);
    for (int j = 0; j < N; ++j) {
      T state[NS];
      for (int k = 0; k < NS; ++k) state[k] = lanes[k][j];
      if (t1 > 0) scan_row<NS>(b, row0 + static_cast<std::size_t>(q * N + j), t1, state, step);
      if (states != nullptr)
        for (int k = 0; k < NS; ++k) states[(q * N + j) * NS + k] = state[k];
    }
  }
}
#endif

}  // namespace scan_detail

// Rows [r0, r1): blocks of R rows on lanes (with SSE2), the rows left over scalar. `states` (NS per row of
// [r0, r1)) gives each row's initial state and receives its final one; null: every row starts at 0.
template <int NS, std::size_t R, typename T, typename M, int NI, int NO, typename Step>
void scan_rows_by(const ScanBuffers<T, M, NI, NO>& b, std::size_t r0, std::size_t r1, const Step& step,
                  T* states = nullptr) {
  std::size_t row = r0;
#if defined(RLTRAIN_TOKEN_SSE2)
  for (; row + R <= r1; row += R)
    scan_detail::scan_block<R, NS>(b, row, step, states == nullptr ? nullptr : states + (row - r0) * NS);
#endif
  for (; row < r1; ++row) {
    T zero[NS] = {};
    T* state = states == nullptr ? zero : states + (row - r0) * NS;
    scan_detail::scan_row<NS>(b, row, b.L, state, step);
  }
}

// The same in blocks of scan_block_rows.
template <int NS, typename T, typename M, int NI, int NO, typename Step>
void scan_rows(const ScanBuffers<T, M, NI, NO>& b, std::size_t r0, std::size_t r1, const Step& step,
               T* states = nullptr) {
  scan_rows_by<NS, scan_block_rows<NI, NO>()>(b, r0, r1, step, states);
}

constexpr std::size_t kTaskElements = std::size_t(1) << 16;

// Splits rows over the pool: whole 8-row blocks of ~kTaskElements or more per task (the split depends on B and
// L only); inputs under that run on the calling thread.
template <typename Fn>
void split_rows(std::size_t B, std::size_t L, Fn&& fn, ThreadPool& pool) {
  const std::size_t want = std::max<std::size_t>(1, kTaskElements / std::max<std::size_t>(L, 1));
  const std::size_t rows = (want + kScanBlockRows - 1) / kScanBlockRows * kScanBlockRows;
  const std::size_t tasks = (B + rows - 1) / rows;
  if (tasks <= 1) {
    if (B > 0) fn(std::size_t(0), B);
    return;
  }
  pool.parallel_for(tasks, [&](std::size_t k) { fn(k * rows, std::min(B, (k + 1) * rows)); });
}

// ------------------------------------------------------------------------------------------ few long rows
// One row alone is a latency-bound recurrence, and lanes of rows need a block of R rows: few long rows (B below
// the block R of scan_block_rows, L >= 512 R) run on long_row_scan.hpp's blocked scan instead (token_returns and
// token_gae choose it; the rule depends on B and L only, never on the threads).
template <int NI, int NO>
constexpr bool scan_long_rows(std::size_t B, std::size_t L) {
  constexpr std::size_t R = scan_block_rows<NI, NO>();
  return B < R && L >= 512 * R;
}

// The scan of every row, rows split over the pool.
template <int NS, typename T, typename M, int NI, int NO, typename Step>
void scan(const ScanBuffers<T, M, NI, NO>& b, const Step& step, ThreadPool& pool) {
  split_rows(b.B, b.L, [&](std::size_t r0, std::size_t r1) { scan_rows<NS>(b, r0, r1, step); }, pool);
}

}  // namespace rltrain
