// The groups of the LLM group kernels (llm_group.hpp): contiguous groups of a fixed size, contiguous runs of
// uneven length, or members scattered through the batch, and the grouping that integer group ids describe:
// group_ids [B] -> equal runs (FixedGroups) | runs (RunGroups) | counting sort of dense keys (SortedGroups).
// A grouping lists group g's members as positions [begin(g), end(g)) of a member order; index(j) is the element at
// position j. Members are always in ascending element order, so every grouping path sums a group identically.
// A caller may also take scattered dense ids whose groups all have one size itself (the `uniform` hook of
// group_ids_layout: llm_group.hpp counting-sorts the rewards together with the ids there, Kind::Done).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "rltrain/simd_isa.hpp"

namespace rltrain::llm {

struct FixedGroups {  // contiguous groups of `size` elements
  static constexpr bool kContiguous = true;
  std::size_t n = 0, size = 1;
  std::size_t count() const { return n / size; }
  std::size_t begin(std::size_t g) const { return g * size; }
  std::size_t end(std::size_t g) const { return (g + 1) * size; }
  static std::size_t index(std::size_t j) { return j; }
};

struct RunGroups {  // contiguous runs of uneven length: group g = [offsets[g], offsets[g + 1])
  static constexpr bool kContiguous = true;
  const std::size_t* offsets = nullptr;
  std::size_t groups = 0;
  std::size_t count() const { return groups; }
  std::size_t begin(std::size_t g) const { return offsets[g]; }
  std::size_t end(std::size_t g) const { return offsets[g + 1]; }
  static std::size_t index(std::size_t j) { return j; }
};

struct SortedGroups {  // scattered members: group g = order[offsets[g] .. offsets[g + 1])
  static constexpr bool kContiguous = false;
  const std::size_t* offsets = nullptr;
  const uint32_t* order = nullptr;  // element indices (n < 2^32)
  std::size_t groups = 0;
  std::size_t count() const { return groups; }
  std::size_t begin(std::size_t g) const { return offsets[g]; }
  std::size_t end(std::size_t g) const { return offsets[g + 1]; }
  std::size_t index(std::size_t j) const { return order[j]; }
};

// The grouping that integer ids describe, built once per call (the ids are read, never trusted as indices).
struct IdGrouping {
  // Done: the uniform hook of group_ids_layout took the call (no grouping to run).
  enum class Kind { Fixed, Runs, Sorted, Done } kind = Kind::Runs;
  std::size_t n = 0, run = 0;        // Fixed: runs of `run` elements each
  std::vector<std::size_t> offsets;  // Runs, Sorted: groups + 1 entries
  std::vector<uint32_t> order;       // Sorted only: 4-byte indices halve the bytes its random accesses touch
  FixedGroups fixed() const { return {n, run}; }
  RunGroups runs() const { return {offsets.data(), offsets.size() - 1}; }
  SortedGroups scattered() const { return {offsets.data(), order.data(), offsets.size() - 1}; }
};

// How many elements ahead the counting sorts prefetch the random place they will store to.
constexpr std::size_t kScatterAhead = 32;

template <typename P>
inline void prefetch_write(const P* p) {
#if defined(__GNUC__)
  __builtin_prefetch(p, 1);
#else
  (void)p;
#endif
}

[[noreturn]] inline void ids_changed() {
  throw std::invalid_argument("group_ids: changed by another thread while the kernel ran");
}

// Whether the run ids v are pairwise distinct (ids spanning more than 4n values, n elements, are sorted to tell).
inline bool distinct(const std::vector<int64_t>& v, std::size_t n) {
  if (std::adjacent_find(v.begin(), v.end(), [](int64_t a, int64_t b) { return a >= b; }) == v.end()) return true;
  const int64_t lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
  const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);  // exact for any int64 pair
  if (range < 4 * static_cast<uint64_t>(n)) {
    std::vector<uint8_t> seen(static_cast<std::size_t>(range) + 1, 0);
    for (const int64_t x : v) {
      uint8_t& s = seen[static_cast<std::size_t>(static_cast<uint64_t>(x) - static_cast<uint64_t>(lo))];
      if (s) return false;
      s = 1;
    }
    return true;
  }
  std::vector<int64_t> sorted(v);
  std::sort(sorted.begin(), sorted.end());
  return std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end();
}

// One pass over the ids: their least and greatest value and, while there are at most `limit` of them, the number
// of boundaries (i >= 1 with ids[i] != ids[i - 1]; more than `limit`: only that is known, and counting stops).
// Why one pass: reading 8 bytes an id is most of what either costs; the boundaries of scattered ids pass any
// limit within the first few hundred elements. Vector clones as llm_group_fixed.hpp's (integer work: any clone
// gives the same answer).
struct IdScan {
  int64_t lo = 0, hi = 0;
  std::size_t boundaries = 0;
  bool many = false;  // boundaries > limit
};

RLTRAIN_SIMD_INLINE void scan_min_max(const int64_t* ids, std::size_t n, int64_t& lo_out, int64_t& hi_out) {
  int64_t lo = lo_out, hi = hi_out;
  for (std::size_t i = 0; i < n; ++i) {
    const int64_t v = ids[i];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  lo_out = lo, hi_out = hi;
}

RLTRAIN_SIMD_INLINE std::size_t scan_boundaries(const int64_t* ids, std::size_t i0, std::size_t i1) {
  std::size_t b = 0;
  for (std::size_t i = i0; i < i1; ++i) b += ids[i] != ids[i - 1] ? 1 : 0;
  return b;
}

RLTRAIN_SIMD_INLINE IdScan scan_ids_body(const int64_t* ids, std::size_t n, std::size_t limit) {
  constexpr std::size_t kChunk = 512;
  IdScan s;
  s.lo = s.hi = ids[0];
  std::size_t i = 0;
  for (; i < n && !s.many; i += kChunk) {  // chunk by chunk while the boundaries count
    const std::size_t e = std::min(n, i + kChunk);
    scan_min_max(ids + i, e - i, s.lo, s.hi);
    s.boundaries += scan_boundaries(ids, std::max<std::size_t>(i, 1), e);
    s.many = s.boundaries > limit;
  }
  if (i < n) scan_min_max(ids + i, n - i, s.lo, s.hi);
  return s;
}

#if defined(RLTRAIN_X86_CLONES)
RLTRAIN_TARGET_AVX512 inline IdScan scan_ids_avx512(const int64_t* ids, std::size_t n, std::size_t limit) {
  return scan_ids_body(ids, n, limit);
}
__attribute__((target("avx2"))) inline IdScan scan_ids_avx2(const int64_t* ids, std::size_t n, std::size_t limit) {
  return scan_ids_body(ids, n, limit);
}
#endif

inline IdScan scan_ids(const int64_t* ids, std::size_t n, std::size_t limit) {
#if defined(RLTRAIN_X86_CLONES)
  if (simd::isa() == simd::Isa::Avx512) return scan_ids_avx512(ids, n, limit);
  if (simd::isa() == simd::Isa::Avx2) return scan_ids_avx2(ids, n, limit);
#endif
  return scan_ids_body(ids, n, limit);
}

// Whether ids spanning [lo, hi] take offset keys (id - lo): fewer than 4n values.
inline bool offset_keys(int64_t lo, int64_t hi, std::size_t n) {
  return static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) < 4 * static_cast<uint64_t>(n);  // exact for any pair
}

// Dense group keys in [0, count) for every element: id - lo when the ids (whose range [lo, hi] a scan found) span
// fewer than 4n values, else numbered by first appearance through an open-addressing hash table. The ids are read
// once here (the caller's array may be changed by another thread meanwhile: a key out of range raises instead of
// indexing out of bounds).
inline std::vector<uint32_t> dense_keys(const int64_t* ids, std::size_t n, int64_t lo, int64_t hi, std::size_t& count) {
  std::vector<uint32_t> key(n);
  if (offset_keys(lo, hi, n)) {
    count = static_cast<std::size_t>(static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo)) + 1;
    for (std::size_t i = 0; i < n; ++i) {
      const uint64_t k = static_cast<uint64_t>(ids[i]) - static_cast<uint64_t>(lo);
      if (k >= count) ids_changed();
      key[i] = static_cast<uint32_t>(k);
    }
    return key;
  }
  // The table grows with the distinct ids (kept at most half full), not with n: 4096 groups of 16 take a 128 KiB
  // table (in cache) where one sized for 65,536 distinct ids took 1.5 MiB of random probes.
  struct Slot {
    int64_t id;
    uint32_t key;  // kEmpty: a free slot
  };
  constexpr uint32_t kEmpty = 0xffffffffu;
  // Fibonacci hashing: the top `bits` bits of the product (its low bits are those of v: ids that are multiples of
  // a large power of two would share a few homes).
  auto home = [](int64_t v, int bits) {
    return static_cast<std::size_t>((static_cast<uint64_t>(v) * 0x9E3779B97F4A7C15ull) >> (64 - bits));
  };
  int bits = 4;
  std::vector<Slot> slots(std::size_t(1) << bits, Slot{0, kEmpty});
  std::size_t mask = slots.size() - 1;
  uint32_t next = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const int64_t v = ids[i];
    std::size_t at = home(v, bits);
    while (slots[at].key != kEmpty && slots[at].id != v) at = (at + 1) & mask;
    if (slots[at].key == kEmpty) {
      slots[at] = Slot{v, next++};
      if (2 * static_cast<std::size_t>(next) > slots.size()) {  // rehash into twice the slots
        std::vector<Slot> grown(2 * slots.size(), Slot{0, kEmpty});
        const std::size_t gmask = grown.size() - 1;
        for (const Slot& s : slots) {
          if (s.key == kEmpty) continue;
          std::size_t to = home(s.id, bits + 1);
          while (grown[to].key != kEmpty) to = (to + 1) & gmask;
          grown[to] = s;
        }
        slots.swap(grown);
        mask = gmask;
        ++bits;
        at = home(v, bits);
        while (slots[at].id != v || slots[at].key == kEmpty) at = (at + 1) & mask;
      }
    }
    key[i] = slots[at].key;
  }
  count = next;
  return key;
}

// The grouping of ids. The length L of the first run of equal ids tells whether they may be runs of one length
// (ids = repeat(distinct ids, L), the common case; checked with a vectorised xor-or pass per run; no offsets
// needed). Otherwise one scan (scan_ids) finds the ids' range and, where the runs are 4 elements long on average or
// more, that they are runs; a second pass finds where they start. When each id has a single run, the runs are the
// groups. Else (or with shorter runs) the elements are grouped by a counting sort of dense keys, which keeps members
// in ascending index order, so a group sums the same way on every path. Before that, ids spanning exactly n / size
// values (offset keys, none missing if the groups all have `size` members) are offered to uniform(lo, count,
// size): true means it took the call (Kind::Done), false that it did nothing of consequence (a group was not of
// that size). n < 2^32 (the binding checks it).
template <class Uniform>
IdGrouping group_ids_layout(const int64_t* ids, std::size_t n, Uniform&& uniform) {
  IdGrouping out;
  out.n = n;
  if (n == 0) {
    out.offsets.push_back(0);
    return out;
  }
  std::size_t L = 1;
  while (L < n && ids[L] == ids[0]) ++L;
  std::vector<int64_t> heads;
  if (n % L == 0) {
    const std::size_t nruns = n / L;
    bool equal = true;
    for (std::size_t g = 0; g < nruns && equal; ++g) {
      const int64_t* x = ids + g * L;
      const int64_t h = x[0];
      uint64_t diff = 0;
      for (std::size_t j = 1; j < L; ++j) diff |= static_cast<uint64_t>(x[j] ^ h);
      equal = diff == 0 && (g == 0 || h != x[-1]);
    }
    if (equal) {
      heads.resize(nruns);
      for (std::size_t g = 0; g < nruns; ++g) heads[g] = ids[g * L];
      if (distinct(heads, n)) {
        out.kind = IdGrouping::Kind::Fixed;
        out.run = L;
        return out;
      }
    }
  }
  // Runs need 4 * (boundaries + 1) <= n.
  const IdScan scan = scan_ids(ids, n, heads.empty() ? n / 4 : 0);
  if (heads.empty() && !scan.many && 4 * (scan.boundaries + 1) <= n) {
    out.offsets.reserve(scan.boundaries + 2);
    heads.reserve(scan.boundaries + 1);
    out.offsets.push_back(0);
    heads.push_back(ids[0]);
    for (std::size_t i = 1; i < n; ++i)
      if (ids[i] != ids[i - 1]) {
        out.offsets.push_back(i);
        heads.push_back(ids[i]);
      }
    out.offsets.push_back(n);
    if (distinct(heads, n)) return out;  // Kind::Runs
  }
  if (offset_keys(scan.lo, scan.hi, n)) {
    const std::size_t count =
        static_cast<std::size_t>(static_cast<uint64_t>(scan.hi) - static_cast<uint64_t>(scan.lo)) + 1;
    if (n % count == 0 && uniform(scan.lo, count, n / count)) {
      out.kind = IdGrouping::Kind::Done;
      return out;
    }
  }
  out.kind = IdGrouping::Kind::Sorted;
  std::size_t count = 0;
  const std::vector<uint32_t> key = dense_keys(ids, n, scan.lo, scan.hi, count);
  std::vector<uint32_t> start(count + 1, 0);
  for (std::size_t i = 0; i < n; ++i) ++start[key[i] + 1];
  out.offsets.clear();
  for (std::size_t k = 0; k < count; ++k) {
    if (start[k + 1] != 0) out.offsets.push_back(start[k]);  // a non-empty key opens a group
    start[k + 1] += start[k];
  }
  out.offsets.push_back(n);
  out.order.resize(n);
  uint32_t* order = out.order.data();
  // Stores to random places: prefetching the place kScatterAhead elements on halves the pass (measured).
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kScatterAhead < n) prefetch_write(order + start[key[i + kScatterAhead]]);
    order[start[key[i]]++] = static_cast<uint32_t>(i);
  }
  return out;
}

inline IdGrouping group_ids_layout(const int64_t* ids, std::size_t n) {
  return group_ids_layout(ids, n, [](int64_t, std::size_t, std::size_t) { return false; });
}

}  // namespace rltrain::llm
