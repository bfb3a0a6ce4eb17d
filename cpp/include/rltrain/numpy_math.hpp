// Scalar maths exactly as NumPy and CPython evaluate it, for operation-for-operation ports of gymnasium envs:
// libm pow that the compiler may not rewrite, NumPy's own float32 sin/cos, NumPy's float remainder and clip,
// Python's builtin min/max, and NEP 50 promotion of NumPy float32/float64 scalars against Python floats.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <immintrin.h>
#include <intrin.h>
#endif

namespace rltrain::npmath {

// x ** y on a float64 scalar (CPython float and NumPy float64 both call libm pow). The volatile exponent stops
// the compiler from rewriting pow(x, 2.0) as x * x, which rounds differently from glibc's pow in rare cases.
inline double pow(double x, double y) {
  volatile double yy = y;
  return std::pow(x, static_cast<double>(yy));
}

// x ** y on a NumPy float32 scalar (libm powf).
inline float powf(float x, float y) {
  volatile float yy = y;
  return std::pow(x, static_cast<float>(yy));
}

// Python float % on NumPy float64 (npy_divmod): fmod, then moved to the sign of the divisor.
inline double remainder(double a, double b) {
  double mod = std::fmod(a, b);
  if (b == 0.0) return mod;
  if (mod != 0.0) {
    if ((b < 0.0) != (mod < 0.0)) mod += b;
  } else {
    mod = std::copysign(0.0, b);
  }
  return mod;
}

// np.clip on a float scalar: min(max(x, lo), hi) with NaN passed through.
template <typename T>
inline T clip(T x, T lo, T hi) {
  if (std::isnan(x)) return x;
  x = x > lo ? x : lo;
  return x < hi ? x : hi;
}

// Python's builtin max(a, b) / min(a, b): the first argument wins ties (and NaN comparisons).
template <typename T>
inline T py_max(T a, T b) {
  return b > a ? b : a;
}
template <typename T>
inline T py_min(T a, T b) {
  return b < a ? b : a;
}

namespace detail {

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
// MSVC has no __builtin_cpu_supports: CPUID leaf 1 (FMA, OSXSAVE, AVX), leaf 7 (AVX2), and XGETBV for the OS
// saving the YMM registers, which is what GCC's check amounts to.
inline bool msvc_has_avx2_fma() {
  int r[4];
  __cpuid(r, 0);
  if (r[0] < 7) return false;
  __cpuid(r, 1);
  const bool fma = (r[2] >> 12) & 1, osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
  if (!(fma && osxsave && avx) || (_xgetbv(0) & 6) != 6) return false;
  __cpuidex(r, 7, 0);
  return (r[1] >> 5) & 1;
}
#endif

// Whether NumPy's float32 sin/cos run its SIMD kernel: NumPy dispatches it only to targets with FMA
// (x86 AVX2+FMA3 and up, aarch64 ASIMD); elsewhere it calls libm sinf/cosf.
inline bool numpy_f32_trig_uses_simd() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  static const bool yes = __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
  return yes;
#elif defined(_M_X64) || defined(_M_IX86)
  static const bool yes = msvc_has_avx2_fma();
  return yes;
#elif defined(__aarch64__) || defined(_M_ARM64)
  return true;
#else
  return false;
#endif
}

// NumPy's float32 sin/cos kernel (numpy/_core/src/umath/loops_trigonometric.dispatch.cpp, simd_sincos_f32):
// Cody-Waite reduction by pi/2 with fused multiply-adds, then minimax polynomials on [-pi/4, pi/4].
// Checked bit for bit against np.cos/np.sin of float32 scalars (tests/test_native_envs.py).
// Outside the Cody-Waite range NumPy falls back to libm.
inline float numpy_sincos_f32(float x, bool cosine) {
  if (std::isnan(x)) return std::numeric_limits<float>::quiet_NaN();
  const float max_cody = cosine ? 71476.0625f : 117435.992f;
  if (!(std::fabs(x) <= max_cody)) return cosine ? std::cos(x) : std::sin(x);

  // quadrant = rint(x * 2/pi) by the magic-number trick. NumPy's build (GCC, default -ffp-contract=fast)
  // fuses the multiply into the add, which decides the quadrant for arguments near odd multiples of pi/4.
  float q = std::fma(x, 0x1.45f306p-1f, 0x1.800000p+23f);
  q = q - 0x1.800000p+23f;
  float r = std::fma(q, -0x1.921fb0p+00f, x);
  r = std::fma(q, -0x1.5110b4p-22f, r);
  r = std::fma(q, -0x1.846988p-48f, r);
  const float r2 = r * r;

  float c = std::fma(0x1.98e616p-16f, r2, -0x1.6c06dcp-10f);
  c = std::fma(c, r2, 0x1.55553cp-05f);
  c = std::fma(c, r2, -0x1.000000p-01f);
  c = std::fma(c, r2, 0x1.000000p+00f);

  float s = std::fma(0x1.7d3bbcp-19f, r2, -0x1.a06bbap-13f);
  s = std::fma(s, r2, 0x1.11119ap-07f);
  s = std::fma(s, r2, -0x1.555556p-03f);
  s = std::fma(s, r2, 0.0f);
  s = std::fma(s, r, r);

  int iq = static_cast<int>(q);
  if (cosine) iq += 1;
  float v = (iq & 1) == 0 ? s : c;
  if ((iq & 2) == 2) v = 0.0f - v;
  return v;
}

}  // namespace detail

// np.cos / np.sin on a NumPy float32 scalar.
inline float cos_f32(float x) {
  return detail::numpy_f32_trig_uses_simd() ? detail::numpy_sincos_f32(x, true) : std::cos(x);
}
inline float sin_f32(float x) {
  return detail::numpy_f32_trig_uses_simd() ? detail::numpy_sincos_f32(x, false) : std::sin(x);
}

// A scalar as NumPy 2 promotes it (NEP 50): NumPy float32/float64 scalars are "strong"; Python floats and ints
// are "weak" and take the precision of the NumPy operand. float32 op Python float therefore rounds the Python
// float to float32 and computes in float32, and comparisons do the same.
struct Scalar {
  enum Kind : uint8_t { kPy, kF32, kF64 };
  double v = 0.0;
  Kind k = kPy;

  static Scalar py(double x) { return {x, kPy}; }
  static Scalar f32(float x) { return {static_cast<double>(x), kF32}; }
  static Scalar f64(double x) { return {x, kF64}; }

  static Kind promote(Kind a, Kind b) {
    if (a == kF64 || b == kF64) return kF64;
    if (a == kF32 || b == kF32) return kF32;
    return kPy;
  }
  float as_f32() const { return static_cast<float>(v); }
};

#define RLTRAIN_NP_SCALAR_OP(OP)                                                            \
  inline Scalar operator OP(Scalar a, Scalar b) {                                           \
    const Scalar::Kind k = Scalar::promote(a.k, b.k);                                       \
    if (k == Scalar::kF32) return Scalar{static_cast<double>(a.as_f32() OP b.as_f32()), k}; \
    return Scalar{a.v OP b.v, k};                                                           \
  }
RLTRAIN_NP_SCALAR_OP(+)
RLTRAIN_NP_SCALAR_OP(-)
RLTRAIN_NP_SCALAR_OP(*)
RLTRAIN_NP_SCALAR_OP(/)
#undef RLTRAIN_NP_SCALAR_OP

#define RLTRAIN_NP_SCALAR_CMP(OP)                                                   \
  inline bool operator OP(Scalar a, Scalar b) {                                     \
    if (Scalar::promote(a.k, b.k) == Scalar::kF32) return a.as_f32() OP b.as_f32(); \
    return a.v OP b.v;                                                              \
  }
RLTRAIN_NP_SCALAR_CMP(<)
RLTRAIN_NP_SCALAR_CMP(>)
RLTRAIN_NP_SCALAR_CMP(<=)
RLTRAIN_NP_SCALAR_CMP(>=)
RLTRAIN_NP_SCALAR_CMP(==)
#undef RLTRAIN_NP_SCALAR_CMP

}  // namespace rltrain::npmath
