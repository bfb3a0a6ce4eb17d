// Bit-exact C++ re-implementation of numpy.random.default_rng(seed) for non-negative integer seeds:
// SeedSequence (pool size 4) -> PCG64 (128-bit LCG, XSL-RR output) -> random() / uniform() / integers(), so a
// native env seeded with s draws the same numbers as gymnasium's env.reset(seed=s) (which uses default_rng(s)).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(_MSC_VER) && !defined(__clang__) && (defined(_M_X64) || defined(_M_ARM64))
#include <intrin.h>
#endif

namespace rltrain {

// Unsigned 128-bit arithmetic modulo 2^128, as PCG64 needs it, on every compiler: two 64-bit halves, with the one
// 64x64->128 multiply taken from unsigned __int128 (GCC, Clang), _umul128/__umulh (MSVC) or 32-bit halves.
struct U128 {
  uint64_t hi = 0, lo = 0;

  static U128 mul64(uint64_t a, uint64_t b) {
#if defined(__SIZEOF_INT128__) && !defined(RLTRAIN_NO_INT128)  // the macro: tests of the fallback
    __extension__ typedef unsigned __int128 native;  // NOLINT(modernize-use-using): __extension__ needs a typedef
    const native p = static_cast<native>(a) * b;
    return {static_cast<uint64_t>(p >> 64), static_cast<uint64_t>(p)};
#elif defined(_MSC_VER) && defined(_M_X64)
    uint64_t hi;
    const uint64_t lo = _umul128(a, b, &hi);
    return {hi, lo};
#elif defined(_MSC_VER) && defined(_M_ARM64)
    return {__umulh(a, b), a * b};
#else
    const uint64_t a0 = a & 0xFFFFFFFFu, a1 = a >> 32, b0 = b & 0xFFFFFFFFu, b1 = b >> 32;
    const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    const uint64_t mid = (p00 >> 32) + (p01 & 0xFFFFFFFFu) + (p10 & 0xFFFFFFFFu);
    return {p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32), (mid << 32) | (p00 & 0xFFFFFFFFu)};
#endif
  }
  friend U128 operator*(const U128& a, const U128& b) {
    U128 p = mul64(a.lo, b.lo);
    p.hi += a.hi * b.lo + a.lo * b.hi;
    return p;
  }
  friend U128 operator+(const U128& a, const U128& b) {
    const uint64_t lo = a.lo + b.lo;
    return {a.hi + b.hi + (lo < a.lo ? 1u : 0u), lo};
  }
};

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
    for (std::size_t i = 0; i < kPoolSize; ++i) pool_[i] = hashmix(i < entropy.size() ? entropy[i] : 0u, hash_const);
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
  Pcg64() { seed_words(0, 0, 0, 0); }

  void seed(const SeedSequence& ss) {
    const std::vector<uint64_t> v = ss.generate_state64(4);
    seed_words(v[0], v[1], v[2], v[3]);
  }

  // pcg_setseq_128_srandom_r
  void seed_words(uint64_t state_hi, uint64_t state_lo, uint64_t inc_hi, uint64_t inc_lo) {
    state_ = U128{};
    inc_ = U128{(inc_hi << 1) | (inc_lo >> 63), (inc_lo << 1) | 1u};  // (initseq << 1) | 1
    step();
    state_ = state_ + U128{state_hi, state_lo};
    step();
    // numpy's _reset_state_variables: a (re)seeded generator holds no buffered half-word.
    has_uint32_ = false;
    uinteger_ = 0;
  }

  // pcg_setseq_128_xsl_rr_64_random_r: advance, then output the new state.
  uint64_t next64() {
    step();
    const unsigned rot = static_cast<unsigned>(state_.hi >> 58u);  // state >> 122
    const uint64_t x = state_.hi ^ state_.lo;
    return (x >> rot) | (x << ((-rot) & 63u));
  }

  // pcg64_next32: each 64-bit output serves two 32-bit draws, low half first; the high half waits in a buffer
  // that only 32-bit draws consume (next64 / next_double neither read nor clear it), exactly as numpy does.
  uint32_t next32() {
    if (has_uint32_) {
      has_uint32_ = false;
      return uinteger_;
    }
    const uint64_t next = next64();
    has_uint32_ = true;
    uinteger_ = static_cast<uint32_t>(next >> 32);
    return static_cast<uint32_t>(next & 0xFFFFFFFFu);
  }

  // numpy's next_double: the top 53 bits scaled into [0, 1).
  double next_double() { return static_cast<double>(next64() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  static constexpr U128 kMult{2549297995355413924ULL, 4865540595714422341ULL};
  void step() { state_ = state_ * kMult + inc_; }

  U128 state_;
  U128 inc_;
  bool has_uint32_ = false;
  uint32_t uinteger_ = 0;
};

// numpy.random.default_rng(seed) restricted to what the native envs draw.
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

  // Generator.integers(low, high) with the defaults dtype=int64, endpoint=False: one draw in [low, high).
  // numpy (_bounded_integers._rand_int64 -> random_bounded_uint64_fill, use_masked=False) maps it to the
  // inclusive range rng = high - 1 - low and picks the generator by its width: 32-bit draws (Lemire's
  // rejection on next32, which consumes PCG64's buffered half-words) below 2^32, 64-bit ones above.
  int64_t integers(int64_t low, int64_t high) {
    if (low >= high)
      throw std::invalid_argument("integers: high <= low (" + std::to_string(low) + ", " + std::to_string(high) + ")");
    const uint64_t rng = static_cast<uint64_t>(high) - static_cast<uint64_t>(low) - 1u;
    return static_cast<int64_t>(static_cast<uint64_t>(low) + bounded(rng));
  }

  Pcg64& bitgen() { return bitgen_; }

 private:
  // A uniform integer in [0, rng] (inclusive), drawn as numpy's random_bounded_uint64_fill draws it.
  uint64_t bounded(uint64_t rng) {
    if (rng == 0) return 0;  // no draw at all
    if (rng == 0xFFFFFFFFull) return bitgen_.next32();
    if (rng < 0xFFFFFFFFull) {
      const uint32_t excl = static_cast<uint32_t>(rng) + 1u;
      uint64_t m = static_cast<uint64_t>(bitgen_.next32()) * excl;
      uint32_t leftover = static_cast<uint32_t>(m);
      if (leftover < excl) {
        const uint32_t threshold = (UINT32_MAX - static_cast<uint32_t>(rng)) % excl;
        while (leftover < threshold) {
          m = static_cast<uint64_t>(bitgen_.next32()) * excl;
          leftover = static_cast<uint32_t>(m);
        }
      }
      return m >> 32;
    }
    if (rng == UINT64_MAX) return bitgen_.next64();
    const uint64_t excl = rng + 1u;
    U128 m = U128::mul64(bitgen_.next64(), excl);
    if (m.lo < excl) {
      const uint64_t threshold = (UINT64_MAX - rng) % excl;
      while (m.lo < threshold) m = U128::mul64(bitgen_.next64(), excl);
    }
    return m.hi;
  }

  Pcg64 bitgen_;
};

}  // namespace rltrain
