// Stand-in random generator for the native Box2D environments until numpy_rng.hpp (an exact copy of
// numpy.random.default_rng) lands: same interface (seed / uniform / integers), NOT the same numbers.
//
// The interface an environment RNG must provide (LunarLanderT is templated on it):
//   void seed(uint64_t s);                          // like numpy.random.default_rng(s)
//   double uniform(double low, double high);        // numpy: low + (high - low) * next_double()
//   int64_t integers(int64_t low, int64_t high);    // numpy Generator.integers: [low, high)
// Here: PCG32 (O'Neill, "PCG: A Family of Simple Fast Space-Efficient Statistically Good Algorithms", 2014)
// seeded through SplitMix64, 53-bit doubles and Lemire's unbiased bounded integers, as numpy does.
#pragma once

#include <cstdint>

namespace rltrain::envs {

class PlaceholderRng {
 public:
  PlaceholderRng() { seed(0); }
  explicit PlaceholderRng(uint64_t s) { seed(s); }

  void seed(uint64_t s) {
    // SplitMix64 spreads small consecutive seeds (0, 1, 2...) over the whole state space.
    uint64_t z = s;
    state_ = splitmix(z);
    inc_ = splitmix(z) | 1u;
    next_u32();
  }

  double uniform(double low, double high) { return low + (high - low) * next_double(); }

  int64_t integers(int64_t low, int64_t high) {
    const uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
    if (range == 0) return low;
    // Lemire's multiply-shift rejection for ranges below 2^32 (the only ones the environments draw).
    const uint32_t r32 = static_cast<uint32_t>(range);
    uint64_t m = static_cast<uint64_t>(next_u32()) * r32;
    uint32_t leftover = static_cast<uint32_t>(m);
    if (leftover < r32) {
      const uint32_t threshold = static_cast<uint32_t>(-r32) % r32;
      while (leftover < threshold) {
        m = static_cast<uint64_t>(next_u32()) * r32;
        leftover = static_cast<uint32_t>(m);
      }
    }
    return low + static_cast<int64_t>(m >> 32);
  }

  double next_double() {
    const uint64_t hi = next_u32(), lo = next_u32();
    return static_cast<double>(((hi << 32) | lo) >> 11) * (1.0 / 9007199254740992.0);
  }

  uint32_t next_u32() {
    const uint64_t old = state_;
    state_ = old * 6364136223846793005ULL + inc_;
    const uint32_t xorshifted = static_cast<uint32_t>(((old >> 18u) ^ old) >> 27u);
    const uint32_t rot = static_cast<uint32_t>(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
  }

 private:
  static uint64_t splitmix(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  uint64_t state_ = 0;
  uint64_t inc_ = 1;
};

}  // namespace rltrain::envs
