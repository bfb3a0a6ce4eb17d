// Run-time instruction-set choice for the loops that carry AVX2 / AVX-512 clones (llm_group_fixed.hpp,
// llm_token.hpp): the build's baseline stays x86-64, and a loop compiled again under a target attribute is picked
// when the CPU has the extension. Every clone performs the same IEEE operations in the same order (the build never
// contracts into FMA: -ffp-contract=off), so results are bitwise identical whichever clone runs; only the vector
// width differs. `set_isa_cap` lowers the choice (tests run each clone and compare their bits).
#pragma once

#include <atomic>

// GCC and Clang on x86: target attributes, __builtin_cpu_supports.
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RLTRAIN_X86_CLONES 1
#endif

// The AVX-512 clones' attribute: GCC's auto-vectoriser would otherwise stay at 256 bits under generic tuning; Clang
// does not take prefer-vector-width in a target attribute (it would ignore the whole attribute).
#if defined(RLTRAIN_X86_CLONES) && !defined(__clang__)
#define RLTRAIN_TARGET_AVX512 __attribute__((target("avx512f,prefer-vector-width=512")))
#elif defined(RLTRAIN_X86_CLONES)
#define RLTRAIN_TARGET_AVX512 __attribute__((target("avx512f")))
#endif

#if defined(__GNUC__)
#define RLTRAIN_SIMD_INLINE inline __attribute__((always_inline))
#else
#define RLTRAIN_SIMD_INLINE inline
#endif

namespace rltrain::simd {

enum class Isa { Baseline = 0, Avx2 = 1, Avx512 = 2 };

// The widest extension the CPU has, detected once.
inline Isa cpu_isa() {
#if defined(RLTRAIN_X86_CLONES)
  static const Isa best = __builtin_cpu_supports("avx512f") ? Isa::Avx512
                          : __builtin_cpu_supports("avx2")  ? Isa::Avx2
                                                            : Isa::Baseline;
  return best;
#else
  return Isa::Baseline;
#endif
}

inline std::atomic<int>& isa_cap_ref() {
  static std::atomic<int> cap{static_cast<int>(Isa::Avx512)};
  return cap;
}

// At most `cap` from now on (for tests; clamped to the CPU's own).
inline void set_isa_cap(Isa cap) { isa_cap_ref().store(static_cast<int>(cap), std::memory_order_relaxed); }

// The clone to run: the CPU's widest, lowered by set_isa_cap.
inline Isa isa() {
  const int cap = isa_cap_ref().load(std::memory_order_relaxed);
  const Isa cpu = cpu_isa();
  return static_cast<int>(cpu) < cap ? cpu : static_cast<Isa>(cap);
}

}  // namespace rltrain::simd
