// Bit-exact C++ re-implementation of numpy.random.default_rng(seed) for non-negative integer seeds:
// SeedSequence (pool size 4) -> PCG64 (128-bit LCG, XSL-RR output) -> random() / uniform(), so a native env
// seeded with s draws the same initial state as gymnasium's env.reset(seed=s) (which uses default_rng(s)).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#if !defined(__SIZEOF_INT128__)
#error "rltrain/numpy_rng.hpp needs a compiler with unsigned __int128 (GCC or Clang)"
#endif

namespace rltrain {

// numpy.random.SeedSequence(entropy) with the default pool_size=4 and no spawn key
// (numpy/random/bit_generator.pyx). All arithmetic is modulo 2^32, as in numpy's uint32 code.
class SeedSequence {
 public:
  static constexpr std::size_t kPoolSize = 4;

  // `entropy` holds the seed's 32-bit words, least significant first (numpy's _coerce_to_uint32_array).
  explicit SeedSequence(const std::vector<uint32_t>& entropy) { mix_entropy(entropy); }

  // _int_to_uint32_array: 0 -> [0]; otherwise 32-bit words while n > 0.
  static std::vector<uint32_t> int_to_words(uint64_t n) {
    std::vector<uint32_t> words;
    if (n == 0) words.push_back(0);
    while (n > 0) {
      words.push_back(static_cast<uint32_t>(n & 0xFFFFFFFFu));
      n >>= 32;
    }
    return words;
  }

  // generate_state(n_words, np.uint32)
  std::vector<uint32_t> generate_state32(std::size_t n_words) const {
    std::vector<uint32_t> out(n_words);
    uint32_t hash_const = kInitB;
    for (std::size_t i = 0; i < n_words; ++i) {
      uint32_t v = pool_[i % kPoolSize];
      v ^= hash_const;
      hash_const *= kMultB;
      v *= hash_const;
      v ^= v >> kXShift;
      out[i] = v;
    }
    return out;
  }

  // generate_state(n_words, np.uint64): twice the uint32 words, paired little-endian.
  std::vector<uint64_t> generate_state64(std::size_t n_words) const {
    const std::vector<uint32_t> w = generate_state32(2 * n_words);
    std::vector<uint64_t> out(n_words);
    for (std::size_t i = 0; i < n_words; ++i) out[i] = uint64_t(w[2 * i]) | (uint64_t(w[2 * i + 1]) << 32);
    return out;
  }

  const std::array<uint32_t, kPoolSize>& pool() const { return pool_; }

 private:
  static constexpr uint32_t kInitA = 0x43b0d7e5u;
  static constexpr uint32_t kMultA = 0x931e8875u;
  static constexpr uint32_t kInitB = 0x8b51f9ddu;
  static constexpr uint32_t kMultB = 0x58f38dedu;
  static constexpr uint32_t kMixMultL = 0xca01f9ddu;
  static constexpr uint32_t kMixMultR = 0x4973f715u;
  static constexpr unsigned kXShift = 16;

  static uint32_t hashmix(uint32_t value, uint32_t& hash_const) {
    value ^= hash_const;
    hash_const *= kMultA;
    value *= hash_const;
    value ^= value >> kXShift;
    return value;
  }
  static uint32_t mix(uint32_t x, uint32_t y) {
    uint32_t r = kMixMultL * x - kMixMultR * y;
    r ^= r >> kXShift;
    return r;
  }

  void mix_entropy(const std::vector<uint32_t>& entropy) {
    uint32_t hash_const = kInitA;
    for (std::size_t i = 0; i < kPoolSize; ++i)
      pool_[i] = hashmix(i < entropy.size() ? entropy[i] : 0u, hash_const);
    for (std::size_t src = 0; src < kPoolSize; ++src)
      for (std::size_t dst = 0; dst < kPoolSize; ++dst)
        if (src != dst) pool_[dst] = mix(pool_[dst], hashmix(pool_[src], hash_const));
    for (std::size_t src = kPoolSize; src < entropy.size(); ++src)
      for (std::size_t dst = 0; dst < kPoolSize; ++dst) pool_[dst] = mix(pool_[dst], hashmix(entropy[src], hash_const));
  }

  std::array<uint32_t, kPoolSize> pool_{};
};

// numpy's PCG64 bit generator (numpy/random/src/pcg64): pcg_setseq_128 with the XSL-RR 128->64 output,
// seeded from generate_state(4, uint64) as [state_hi, state_lo, inc_hi, inc_lo].
class Pcg64 {
 public:
  __extension__ typedef unsigned __int128 u128;

  Pcg64() { seed_words(0, 0, 0, 0); }

  void seed(const SeedSequence& ss) {
    const std::vector<uint64_t> v = ss.generate_state64(4);
    seed_words(v[0], v[1], v[2], v[3]);
  }

  // pcg_setseq_128_srandom_r
  void seed_words(uint64_t state_hi, uint64_t state_lo, uint64_t inc_hi, uint64_t inc_lo) {
    const u128 initstate = (u128(state_hi) << 64) | state_lo;
    const u128 initseq = (u128(inc_hi) << 64) | inc_lo;
    state_ = 0;
    inc_ = (initseq << 1u) | 1u;
    step();
    state_ += initstate;
    step();
  }

  // pcg_setseq_128_xsl_rr_64_random_r: advance, then output the new state.
  uint64_t next64() {
    step();
    const uint64_t hi = static_cast<uint64_t>(state_ >> 64);
    const uint64_t lo = static_cast<uint64_t>(state_);
    const unsigned rot = static_cast<unsigned>(state_ >> 122u);
    const uint64_t x = hi ^ lo;
    return (x >> rot) | (x << ((-rot) & 63u));
  }

  // numpy's next_double: the top 53 bits scaled into [0, 1).
  double next_double() { return static_cast<double>(next64() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  static constexpr u128 kMult = (u128(2549297995355413924ULL) << 64) + 4865540595714422341ULL;
  void step() { state_ = state_ * kMult + inc_; }

  u128 state_ = 0;
  u128 inc_ = 0;
};

// numpy.random.default_rng(seed) restricted to what the classic-control envs draw.
class NumpyRng {
 public:
  // Unseeded: 128 bits from std::random_device, like SeedSequence(None) drawing OS entropy.
  NumpyRng() { seed_from_entropy(); }
  explicit NumpyRng(uint64_t seed) { this->seed(seed); }

  void seed(uint64_t s) { bitgen_.seed(SeedSequence(SeedSequence::int_to_words(s))); }

  void seed_from_entropy() {
    std::random_device rd;
    std::vector<uint32_t> words(SeedSequence::kPoolSize);
    for (auto& w : words) w = static_cast<uint32_t>(rd());
    bitgen_.seed(SeedSequence(words));
  }

  // Generator.random()
  double random() { return bitgen_.next_double(); }

  // Generator.uniform(low, high): numpy computes the range first, then low + range * U.
  double uniform(double low, double high) {
    const double range = high - low;
    return low + range * random();
  }

  Pcg64& bitgen() { return bitgen_; }

 private:
  Pcg64 bitgen_;
};

}  // namespace rltrain
