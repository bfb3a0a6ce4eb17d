// The groups of the LLM group kernels (llm_group.hpp): contiguous groups of a fixed size, contiguous runs of
// uneven length, or members scattered through the batch, and the grouping that integer group ids describe:
// group_ids [B] -> equal runs (FixedGroups) | runs (RunGroups) | counting sort of dense keys (SortedGroups).
// A grouping lists group g's members as positions [begin(g), end(g)) of a member order; index(j) is the element at
// position j. Members are always in ascending element order, so every grouping path sums a group identically.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

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
  enum class Kind { Fixed, Runs, Sorted } kind = Kind::Runs;
  std::size_t n = 0, run = 0;        // Fixed: runs of `run` elements each
  std::vector<std::size_t> offsets;  // Runs, Sorted: groups + 1 entries
  std::vector<uint32_t> order;       // Sorted only: 4-byte indices halve the bytes its random accesses touch
  FixedGroups fixed() const { return {n, run}; }
  RunGroups runs() const { return {offsets.data(), offsets.size() - 1}; }
  SortedGroups scattered() const { return {offsets.data(), order.data(), offsets.size() - 1}; }
};

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

// Dense group keys in [0, count) for every element: id - min(ids) when the ids span fewer than 4n values, else
// numbered by first appearance through an open-addressing hash table. The ids are read once here (the caller's
// array may be changed by another thread meanwhile: a key out of range raises instead of indexing out of bounds).
inline std::vector<uint32_t> dense_keys(const int64_t* ids, std::size_t n, std::size_t& count) {
  std::vector<uint32_t> key(n);
  int64_t lo = ids[0], hi = ids[0];
  for (std::size_t i = 1; i < n; ++i) {
    lo = std::min(lo, ids[i]);
    hi = std::max(hi, ids[i]);
  }
  const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  if (range < 4 * static_cast<uint64_t>(n)) {
    count = static_cast<std::size_t>(range) + 1;
    for (std::size_t i = 0; i < n; ++i) {
      const uint64_t k = static_cast<uint64_t>(ids[i]) - static_cast<uint64_t>(lo);
      if (k >= count) ids_changed();
      key[i] = static_cast<uint32_t>(k);
    }
    return key;
  }
  std::size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  constexpr uint32_t kEmpty = 0xffffffffu;
  std::vector<int64_t> slot_id(cap);
  std::vector<uint32_t> slot_key(cap, kEmpty);
  uint32_t next = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const int64_t v = ids[i];
    uint64_t h = static_cast<uint64_t>(v) * 0x9E3779B97F4A7C15ull;  // Fibonacci hashing: the top bits
    std::size_t at = static_cast<std::size_t>(h >> 32) & (cap - 1);
    while (slot_key[at] != kEmpty && slot_id[at] != v) at = (at + 1) & (cap - 1);
    if (slot_key[at] == kEmpty) {
      slot_id[at] = v;
      slot_key[at] = next++;
    }
    key[i] = slot_key[at];
  }
  count = next;
  return key;
}

// The grouping of ids. The length L of the first run of equal ids tells whether they may be runs of one length
// (ids = repeat(distinct ids, L), the common case; checked with a vectorised xor-or pass per run; no offsets
// needed). Otherwise, where the runs are 4 elements long on average or more, one pass finds where they start.
// When each id has a single run, the runs are the groups; else (or with shorter runs) the elements are grouped by a
// counting sort of dense keys, which keeps members in ascending index order, so a group sums the same way on every
// path. n < 2^32 (the binding checks it).
inline IdGrouping group_ids_layout(const int64_t* ids, std::size_t n) {
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
  if (heads.empty()) {
    std::size_t boundaries = 0;
    for (std::size_t i = 1; i < n; ++i) boundaries += ids[i] != ids[i - 1] ? 1 : 0;
    if (4 * (boundaries + 1) <= n) {
      out.offsets.reserve(boundaries + 2);
      heads.reserve(boundaries + 1);
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
  }
  out.kind = IdGrouping::Kind::Sorted;
  std::size_t count = 0;
  const std::vector<uint32_t> key = dense_keys(ids, n, count);
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
  for (std::size_t i = 0; i < n; ++i) order[start[key[i]]++] = static_cast<uint32_t>(i);
  return out;
}

}  // namespace rltrain::llm
