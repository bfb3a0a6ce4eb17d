// Group-relative advantages of per-sample LLM rewards (SPEC §6): group_advantages (GRPO with the conventions of
// TRL, verl, Dr. GRPO and rltrain; several reward columns summed or normalised then summed, GDPO) and
// rloo_advantages (leave-one-out baseline, Ahmadian et al. 2024).
// rewards [B] or [B, R] -> groups (llm_grouping.hpp: fixed size, runs of ids, or scattered ids counting-sorted) ->
// batches of 8 groups: float64 statistics (two passes: mean, then squared deviations) -> out [B].
// Every group is reduced by one thread in member order with the same eight-lane pattern, whatever the grouping
// path, and batch reductions run over fixed blocks of kBatchBlock elements combined in block order, so results are
// bitwise identical for any thread count and for any of the equivalent ways of naming the same groups.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "rltrain/llm_group_fixed.hpp"
#include "rltrain/llm_grouping.hpp"
#include "rltrain/thread_pool.hpp"

namespace rltrain {

namespace llm {

enum class Scale { Group = 0, Batch = 1, None = 2 };
enum class EpsOn { Std = 0, Var = 1 };              // denominator std + eps, or sqrt(var + eps)
enum class Singleton { Center = 0, Identity = 1 };  // a group of one: mean = r (A = 0), or mean 0 and std 1 (verl)
enum class Combine { Sum = 0, NormalizeThenSum = 1 };

struct Norm {
  Scale scale = Scale::Group;
  int64_t ddof = 0;
  double eps = 1e-8;
  EpsOn eps_on = EpsOn::Std;
  Singleton singleton = Singleton::Center;
};

// Threads: a pass over fewer than kSplitMin elements runs on the caller alone; larger ones are split into tasks of
// about kGrainElems elements (65,536 rewards: two tasks). A second thread used to make the call much slower
// whenever another process was running (the pool waited for a descheduled worker); the pool's claimed calls no
// longer wait for a worker that has not started (thread_pool.hpp). Batch reductions run over fixed blocks of
// kBatchBlock elements.
constexpr std::size_t kSplitMin = std::size_t(1) << 16;
constexpr std::size_t kGrainElems = std::size_t(1) << 15;
constexpr std::size_t kBatchBlock = 4096;

// ------------------------------------------------------------------------------------------ inputs and sums

template <typename T>
struct Contig {  // x[i]
  using value_type = T;
  static constexpr bool kContiguous = true;
  const T* p;
  double operator[](std::size_t i) const { return static_cast<double>(p[i]); }
};

template <typename T>
struct Strided {  // column k of [B, R]: x[i * R + k]
  using value_type = T;
  static constexpr bool kContiguous = false;
  const T* p;
  std::size_t stride;
  double operator[](std::size_t i) const { return static_cast<double>(p[i * stride]); }
};

// Lane sums over x[0..n): element j goes to lane j % 8 and the lanes combine as
// ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)): the same bits for any caller, written so that the compiler
// keeps the lanes in vector registers (a serial chain per group would be latency-bound).
inline double combine_lanes(const double* a) {
  double b[4], c[2];
  for (int k = 0; k < 4; ++k) b[k] = a[k] + a[k + 4];
  for (int k = 0; k < 2; ++k) c[k] = b[k] + b[k + 2];
  return c[0] + c[1];
}

// The last n % 8 values of a lane sum (or of squared deviations about m when Squares) added to the lanes a; the
// unused lanes get +0.0, which is exact since a lane that started at +0.0 is never -0.0. Kept out of line so that
// the main loops inline.
template <bool Squares, typename V>
void add_tail(double* a, const V* x, std::size_t rem, double m) {
  double t[8];
  for (std::size_t k = 0; k < 8; ++k) t[k] = k < rem ? static_cast<double>(x[k]) - m : 0.0;
  for (std::size_t k = 0; k < 8; ++k) a[k] += Squares ? t[k] * t[k] : t[k];
}

template <typename V>
inline double lane_sum(const V* x, std::size_t n) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (std::size_t k = 0; k < 8; ++k) a[k] += static_cast<double>(x[i + k]);
  if (i < n) add_tail<false>(a, x + i, n - i, 0.0);
  return combine_lanes(a);
}

// Sum of (x - m)^2 over x[0..n), same lanes.
template <typename V>
inline double lane_ssd(const V* x, std::size_t n, double m) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (std::size_t k = 0; k < 8; ++k) {
      const double d = static_cast<double>(x[i + k]) - m;
      a[k] += d * d;
    }
  if (i < n) add_tail<true>(a, x + i, n - i, m);
  return combine_lanes(a);
}

// Variance with ddof: ss / (n - ddof) when n > ddof, else 0.
inline double variance(double ss, std::size_t n, int64_t ddof) {
  if (static_cast<double>(n) <= static_cast<double>(ddof)) return 0.0;
  return ss / (static_cast<double>(n) - static_cast<double>(ddof));
}

inline double denominator(double var, const Norm& p) {
  return p.eps_on == EpsOn::Std ? std::sqrt(var) + p.eps : std::sqrt(var + p.eps);
}

// Runs fn(b, e) over ranges of [0, count) items that hold `elems` elements in all: one call on this thread below
// kSplitMin elements, else tasks of about kGrainElems elements on the pool. Items never straddle tasks, and what
// each item computes does not depend on the split.
template <class Fn>
void split_items(std::size_t count, std::size_t elems, ThreadPool& pool, Fn&& fn) {
  if (count == 0) return;
  if (elems < kSplitMin) {
    fn(std::size_t(0), count);
    return;
  }
  const std::size_t per = std::max<std::size_t>(1, elems / count);
  pool.parallel_range(count, std::max<std::size_t>(1, kGrainElems / per), fn);
}

// Mean and ddof-variance of x[0..n) in one pass over fixed blocks of kBatchBlock: each block gives its lane sum and
// the lane sum of squared deviations about its own mean (a second sweep while the block is in cache), and the
// blocks combine in block order (Chan et al.): ss = sum_k m2_k + n_k (mean_k - mean)^2. One parallel pass, not
// two (a sum, then the squares about the batch mean): 2 us less at 65,536 rewards on two threads. false when a sum
// is not finite. A strided source is gathered block by block.
struct BlockStats {
  std::size_t n = 0, blocks = 0;
  std::vector<double> v;  // sum, mean, m2: blocks each
  explicit BlockStats(std::size_t n_) : n(n_), blocks((n_ + kBatchBlock - 1) / kBatchBlock), v(3 * blocks) {}
  double* sum() { return v.data(); }
  double* mean() { return v.data() + blocks; }
  double* m2() { return v.data() + 2 * blocks; }
  std::size_t count(std::size_t k) const { return std::min(n, (k + 1) * kBatchBlock) - k * kBatchBlock; }
};

// Blocks [k0, k1) of st; vec: the vector lane sums (contiguous sources on a CPU with AVX2; the same bits).
template <class Src>
void block_stats(const Src& src, std::size_t k0, std::size_t k1, bool vec, BlockStats& st) {
  static_assert(kBatchBlock == fixed::kSumBlock, "the vector block sums use the same blocks");
  double *sum = st.sum(), *bmean = st.mean(), *m2 = st.m2();
  if constexpr (Src::kContiguous) {
    if (vec) {  // four blocks side by side in vectors
      fixed::batch_lane_sums<false>(src.p, st.n, k0, k1, nullptr, sum);
      for (std::size_t k = k0; k < k1; ++k) bmean[k] = sum[k] / static_cast<double>(st.count(k));
      fixed::batch_lane_sums<true>(src.p, st.n, k0, k1, bmean, m2);
      return;
    }
  }
  std::vector<double> buf(Src::kContiguous ? 0 : kBatchBlock);
  for (std::size_t k = k0; k < k1; ++k) {
    const std::size_t b = k * kBatchBlock, cnt = st.count(k);
    auto one = [&](const auto* x) {
      sum[k] = lane_sum(x, cnt);
      bmean[k] = sum[k] / static_cast<double>(cnt);
      m2[k] = lane_ssd(x, cnt, bmean[k]);
    };
    if constexpr (Src::kContiguous) {
      one(src.p + b);
    } else {
      for (std::size_t j = 0; j < cnt; ++j) buf[j] = src[b + j];
      one(static_cast<const double*>(buf.data()));
    }
  }
}

// The blocks combined in block order; false when a sum is not finite.
inline bool combine_block_stats(BlockStats& st, int64_t ddof, double& mean, double& var) {
  const double *sum = st.sum(), *bmean = st.mean(), *m2 = st.m2();
  double s = 0.0;
  for (std::size_t k = 0; k < st.blocks; ++k) s += sum[k];
  if (!std::isfinite(s)) return false;
  mean = s / static_cast<double>(st.n);
  double ss = 0.0;
  for (std::size_t k = 0; k < st.blocks; ++k) {
    const double d = bmean[k] - mean;
    ss += m2[k] + static_cast<double>(st.count(k)) * (d * d);
  }
  if (!std::isfinite(ss)) return false;
  var = variance(ss, st.n, ddof);
  return true;
}

template <class Src>
bool batch_stats(const Src& src, std::size_t n, int64_t ddof, ThreadPool& pool, double& mean, double& var) {
  BlockStats st(n);
  bool vec = false;
  if constexpr (Src::kContiguous) vec = fixed::batch_sums_supported();
  split_items(st.blocks, n, pool, [&](std::size_t k0, std::size_t k1) { block_stats(src, k0, k1, vec, st); });
  return combine_block_stats(st, ddof, mean, var);
}

// ------------------------------------------------------------------------------------------ the passes

// Runs fn(first, nl, ptr, cnt) for consecutive batches of up to kBatchGroups groups first, ..., first + nl - 1 of
// [g0, g1), so that the independent per-group dependency chains (sum -> mean -> squared deviations -> sqrt) overlap.
// ptr[l] points at the cnt[l] values of group first + l, contiguous: the source itself where the groups are runs of
// a contiguous source, else a gathered copy (double) in member order.
constexpr std::size_t kBatchGroups = 8;

template <class Groups, class Src, class Fn>
void for_group_batches(const Groups& gr, const Src& src, std::size_t g0, std::size_t g1, Fn&& fn) {
  constexpr bool direct = Groups::kContiguous && Src::kContiguous;
  using V = std::conditional_t<direct, typename Src::value_type, double>;
  std::vector<double> buf;
  for (std::size_t gb = g0; gb < g1; gb += kBatchGroups) {
    const std::size_t nl = std::min(kBatchGroups, g1 - gb);
    const V* ptr[kBatchGroups];
    std::size_t cnt[kBatchGroups];
    const std::size_t p0 = gr.begin(gb);
    if constexpr (direct) {
      for (std::size_t l = 0; l < nl; ++l) ptr[l] = src.p + gr.begin(gb + l);
    } else {
      const std::size_t p1 = gr.end(gb + nl - 1);
      buf.resize(p1 - p0);
      for (std::size_t j = p0; j < p1; ++j) buf[j - p0] = src[gr.index(j)];
      for (std::size_t l = 0; l < nl; ++l) ptr[l] = buf.data() + (gr.begin(gb + l) - p0);
    }
    for (std::size_t l = 0; l < nl; ++l) cnt[l] = gr.end(gb + l) - gr.begin(gb + l);
    fn(gb, nl, ptr, cnt);
  }
}

// Calls f(i, j) for the members j = 0..n-1 of group g, i their element indices; a plain counted loop for
// contiguous groups (so that the compiler vectorizes f).
template <class Groups, class F>
inline void for_members(const Groups& gr, std::size_t g, std::size_t n, F&& f) {
  const std::size_t b = gr.begin(g);
  if constexpr (Groups::kContiguous) {
    for (std::size_t j = 0; j < n; ++j) f(b + j, j);
  } else {
    for (std::size_t j = 0; j < n; ++j) f(gr.index(b + j), j);
  }
}

// Per-group statistics of a batch of kBatchGroups groups (lanes past nl are padding: count 1, sum 0), written as
// loops over the batch that the compiler turns into vector divisions and square roots.
struct BatchStats {
  double count[kBatchGroups], mean[kBatchGroups], inv[kBatchGroups];
};

template <typename V>
void batch_stats_of(std::size_t nl, const V* const* ptr, const std::size_t* cnt, const Norm& p, double batch_inv,
                    BatchStats& st, bool* ok) {
  double sum[kBatchGroups];
  for (std::size_t l = 0; l < kBatchGroups; ++l) {
    sum[l] = l < nl ? lane_sum(ptr[l], cnt[l]) : 0.0;
    st.count[l] = l < nl ? static_cast<double>(cnt[l]) : 1.0;
  }
  for (std::size_t l = 0; l < kBatchGroups; ++l) ok[l] = std::isfinite(sum[l]);
  for (std::size_t l = 0; l < kBatchGroups; ++l) st.mean[l] = sum[l] / st.count[l];
  const bool identity = p.singleton == Singleton::Identity;
  if (identity)
    for (std::size_t l = 0; l < kBatchGroups; ++l) st.mean[l] = st.count[l] == 1.0 ? 0.0 : st.mean[l];
  if (p.scale != Scale::Group) {
    // x * 1.0 is exact: scale "none" is r - mean.
    for (std::size_t l = 0; l < kBatchGroups; ++l) st.inv[l] = p.scale == Scale::Batch ? batch_inv : 1.0;
    return;
  }
  double var[kBatchGroups];
  const double ddof = static_cast<double>(p.ddof);
  for (std::size_t l = 0; l < kBatchGroups; ++l) var[l] = l < nl ? lane_ssd(ptr[l], cnt[l], st.mean[l]) : 0.0;
  for (std::size_t l = 0; l < kBatchGroups; ++l)
    var[l] = st.count[l] > ddof ? var[l] / (st.count[l] - ddof) : 0.0;  // variance(): ss / (n - ddof) or 0
  if (identity)
    for (std::size_t l = 0; l < kBatchGroups; ++l) var[l] = st.count[l] == 1.0 ? 1.0 : var[l];
  if (p.eps_on == EpsOn::Std)
    for (std::size_t l = 0; l < kBatchGroups; ++l) st.inv[l] = 1.0 / (std::sqrt(var[l]) + p.eps);
  else
    for (std::size_t l = 0; l < kBatchGroups; ++l) st.inv[l] = 1.0 / std::sqrt(var[l] + p.eps);
}

// sink(i, a) receives every element's advantage a (double). batch_denom is used with Scale::Batch only.
// A group whose sum is not finite is skipped and flags `bad`. The division by the denominator is a multiplication
// by its reciprocal (within an ulp of dividing, in float64; a division per element costs a third of the pass).
template <class Groups, class Src, class Sink>
void normalize_groups(const Groups& gr, std::size_t n, const Src& src, const Norm& p, double batch_denom, Sink&& sink,
                      std::atomic<bool>& bad, ThreadPool& pool) {
  const std::size_t ng = gr.count();
  const double batch_inv = 1.0 / batch_denom;
  split_items(ng, n, pool, [&](std::size_t g0, std::size_t g1) {
    for_group_batches(gr, src, g0, g1, [&](std::size_t gb, std::size_t nl, const auto* ptr, const std::size_t* cnt) {
      BatchStats st;
      bool ok[kBatchGroups];
      batch_stats_of(nl, ptr, cnt, p, batch_inv, st, ok);
      for (std::size_t l = 0; l < nl; ++l) {
        if (!ok[l]) {
          bad.store(true, std::memory_order_relaxed);
          continue;
        }
        const auto* x = ptr[l];
        const double m = st.mean[l], s = st.inv[l];
        for_members(gr, gb + l, cnt[l],
                    [&](std::size_t i, std::size_t j) { sink(i, (static_cast<double>(x[j]) - m) * s); });
      }
    });
  });
}

// RLOO: A_i = r_i - (sum_g - r_i) / (n_g - 1); 0 in a group of one (the division again a reciprocal's product).
template <class Groups, class Src, typename O>
void rloo_groups(const Groups& gr, std::size_t n, const Src& src, O* out, std::atomic<bool>& bad, ThreadPool& pool) {
  const std::size_t ng = gr.count();
  split_items(ng, n, pool, [&](std::size_t g0, std::size_t g1) {
    for_group_batches(gr, src, g0, g1, [&](std::size_t gb, std::size_t nl, const auto* ptr, const std::size_t* cnt) {
      double sum[kBatchGroups];
      for (std::size_t l = 0; l < nl; ++l) sum[l] = lane_sum(ptr[l], cnt[l]);
      for (std::size_t l = 0; l < nl; ++l) {
        if (!std::isfinite(sum[l])) {
          bad.store(true, std::memory_order_relaxed);
          continue;
        }
        if (cnt[l] == 1) {
          for_members(gr, gb + l, 1, [&](std::size_t i, std::size_t) { out[i] = O(0); });
          continue;
        }
        const auto* x = ptr[l];
        const double s = sum[l], inv = 1.0 / static_cast<double>(cnt[l] - 1);
        for_members(gr, gb + l, cnt[l], [&](std::size_t i, std::size_t j) {
          const double r = static_cast<double>(x[j]);
          out[i] = static_cast<O>(r - (s - r) * inv);
        });
      }
    });
  });
}

// Groups of a size that llm_group_fixed.hpp specialises (rewards [B] -> out [B], same bits as normalize_groups /
// rloo_groups): contiguous ones in place; scattered ones (counting-sorted ids) all of that one size are gathered
// into member order, run there and scattered back (the generic loops over gathered batches take ~4x as long per
// element). False, having done nothing, for any other grouping or size.
template <class Groups, typename T>
bool fixed_fast_path(const Groups& gr, std::size_t n, const T* x, T* out, const fixed::Params& p,
                     std::atomic<bool>& bad, ThreadPool& pool) {
  if constexpr (std::is_same_v<Groups, FixedGroups>) {
    const std::size_t size = gr.size;
    if (!fixed::fixed_size_supported(size)) return false;
    split_items(gr.count(), n, pool, [&](std::size_t g0, std::size_t g1) {
      if (!fixed::fixed_groups(size, x + g0 * size, out + g0 * size, g1 - g0, p))
        bad.store(true, std::memory_order_relaxed);
    });
    return true;
  } else if constexpr (std::is_same_v<Groups, SortedGroups>) {
    const std::size_t ng = gr.count();
    const std::size_t size = ng == 0 ? 0 : gr.end(0) - gr.begin(0);
    if (!fixed::fixed_size_supported(size) || size * ng != n) return false;
    for (std::size_t g = 1; g < ng; ++g)
      if (gr.end(g) - gr.begin(g) != size) return false;
    std::unique_ptr<T[]> buf(new T[n]);  // run in place (as out = rewards may be)
    T* xs = buf.get();
    for (std::size_t j = 0; j < n; ++j) xs[j] = x[gr.index(j)];
    split_items(ng, n, pool, [&](std::size_t g0, std::size_t g1) {
      if (!fixed::fixed_groups(size, xs + g0 * size, xs + g0 * size, g1 - g0, p))
        bad.store(true, std::memory_order_relaxed);
    });
    for (std::size_t j = 0; j < n; ++j) {  // stores to random places: prefetched, as the counting sorts'
      if (j + kScatterAhead < n) prefetch_write(out + gr.index(j + kScatterAhead));
      out[gr.index(j)] = xs[j];
    }
    return true;
  } else {
    (void)gr, (void)n, (void)x, (void)out, (void)p, (void)bad, (void)pool;
    return false;
  }
}

// Scattered dense ids (id - lo in [0, count)) whose groups all have `size` members (fixed_size_supported): one
// pass over the ids counting-sorts the rewards themselves into group order, assuming that layout (group k at
// [k * size, (k + 1) * size)) and noting each element's place; the groups run there in place (the vector
// copies); a gather takes the results back. As the counting sort of group_ids_layout, members stay in ascending
// element order, so the bits are those of the SortedGroups path. Returns false, having written nothing to out,
// when a group turns out to have more members than `size` (then, the total being count * size, none has fewer
// otherwise). Why: the general path builds the member order (a scatter of indices), then gathers the rewards
// through it and scatters the results back: three passes of random accesses; this takes one of each, and keeps
// the places in 2 bytes where n <= 65,536. The ids are read once (a key out of range raises).
// Scratch memory for uniform_scatter: up to kKeepScratch bytes a buffer stay with the calling thread between calls
// (buffer `which` of three), larger requests are the caller's own (`own`). Why: fresh pages fault on first touch,
// and at B = 65,536 the ~70 faults a call of freshly mapped buffers took ~90 us, 40% of the call (glibc maps blocks
// this large afresh until its threshold adapts, and returns them when the heap trims). Three separate blocks, as
// separate allocations were: carved from one block, the scale="group" call measured ~15% slower.
constexpr std::size_t kKeepScratch = std::size_t(2) << 20;

inline unsigned char* scratch(int which, std::size_t bytes, std::unique_ptr<unsigned char[]>& own) {
  struct Kept {
    std::unique_ptr<unsigned char[]> p;
    std::size_t size = 0;
  };
  thread_local Kept kept[3];
  if (bytes > kKeepScratch) {
    own.reset(new unsigned char[bytes]);
    return own.get();
  }
  Kept& k = kept[which];
  if (k.size < bytes) {
    k.p.reset(new unsigned char[bytes]);
    k.size = bytes;
  }
  return k.p.get();
}

template <typename P, typename T, class Run>
bool uniform_scatter(const int64_t* ids, std::size_t n, int64_t lo, std::size_t count, std::size_t size, const T* x,
                     T* out, Run&& run) {
  std::unique_ptr<unsigned char[]> own[3];
  T* xs = reinterpret_cast<T*>(scratch(0, n * sizeof(T), own[0]));
  uint32_t* start = reinterpret_cast<uint32_t*>(scratch(1, count * sizeof(uint32_t), own[1]));
  P* pos = reinterpret_cast<P*>(scratch(2, n * sizeof(P), own[2]));
  for (std::size_t k = 0; k < count; ++k) start[k] = static_cast<uint32_t>(k * size);
  const uint64_t base = static_cast<uint64_t>(lo);
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kScatterAhead < n) {  // a hint only: an id changed meanwhile prefetches some other place
      const uint64_t ahead = static_cast<uint64_t>(ids[i + kScatterAhead]) - base;
      prefetch_write(xs + start[ahead < count ? ahead : 0]);
    }
    const uint64_t k = static_cast<uint64_t>(ids[i]) - base;
    if (k >= count) ids_changed();
    const uint32_t at = start[k];
    if (at >= (k + 1) * size) return false;  // a group larger than size
    start[k] = at + 1;
    xs[at] = x[i];
    pos[i] = static_cast<P>(at);
  }
  if (!run(static_cast<const T*>(xs), xs)) return true;  // non-finite: flagged by run, raised by the caller
  for (std::size_t i = 0; i < n; ++i) out[i] = xs[pos[i]];
  return true;
}

// uniform_scatter with fixed::fixed_groups run on the sorted rewards, with the parameters params(p) sets (false:
// the rewards are not finite, flagged in bad); flags bad on a non-finite group sum.
template <typename T, class Params>
bool uniform_fast_path(const int64_t* ids, std::size_t n, int64_t lo, std::size_t count, std::size_t size, const T* x,
                       T* out, Params&& params, std::atomic<bool>& bad, ThreadPool& pool) {
  if (!fixed::fixed_size_supported(size)) return false;
  auto run = [&](const T* xs, T* os) {
    fixed::Params p;
    if (!params(p)) return false;
    split_items(count, n, pool, [&](std::size_t g0, std::size_t g1) {
      if (!fixed::fixed_groups(size, xs + g0 * size, os + g0 * size, g1 - g0, p))
        bad.store(true, std::memory_order_relaxed);
    });
    return !bad.load();
  };
  if (n <= (std::size_t(1) << 16)) return uniform_scatter<uint16_t>(ids, n, lo, count, size, x, out, run);
  return uniform_scatter<uint32_t>(ids, n, lo, count, size, x, out, run);
}

// Elementwise f(i0, i1) over [0, n).
template <class Fn>
void for_elements(std::size_t n, ThreadPool& pool, Fn&& fn) {
  split_items(n, n, pool, fn);
}

// Throws std::invalid_argument naming the first non-finite reward (or, when every reward is finite, the overflow).
template <typename T>
[[noreturn]] void non_finite_rewards(const T* r, std::size_t B, std::size_t R, bool two_d) {
  for (std::size_t i = 0; i < B * R; ++i)
    if (!std::isfinite(static_cast<double>(r[i]))) {
      const std::string at =
          two_d ? "(" + std::to_string(i / R) + ", " + std::to_string(i % R) + ")" : std::to_string(i);
      throw std::invalid_argument("rewards: expected finite values, got " + std::to_string(static_cast<double>(r[i])) +
                                  " at index " + at);
    }
  throw std::invalid_argument("rewards: expected values whose (weighted) sums are finite in float64; they overflow");
}

// Runs fn(grouping) with the grouping the ids or group_size describe; uniform(lo, count, size) may take scattered
// ids in groups of one size first (group_ids_layout).
template <class Fn, class Uniform>
void with_groups(std::size_t n, const int64_t* ids, std::size_t group_size, Fn&& fn, Uniform&& uniform) {
  if (ids != nullptr) {
    const IdGrouping layout = group_ids_layout(ids, n, uniform);
    if (layout.kind == IdGrouping::Kind::Fixed)
      fn(layout.fixed());
    else if (layout.kind == IdGrouping::Kind::Runs)
      fn(layout.runs());
    else if (layout.kind == IdGrouping::Kind::Sorted)
      fn(layout.scattered());
  } else {
    fn(FixedGroups{n, group_size == 0 ? n : group_size});
  }
}

template <class Fn>
void with_groups(std::size_t n, const int64_t* ids, std::size_t group_size, Fn&& fn) {
  with_groups(n, ids, group_size, fn, [](int64_t, std::size_t, std::size_t) { return false; });
}

}  // namespace llm

// Arguments of group_advantages. rewards: [B] (two_d false, R = 1) or [B, R] row-major; group_ids [B] or null;
// group_size: contiguous groups of that size (0: one group of all B; ignored with group_ids); weights [R] or null
// (all ones); out [B].
template <typename T>
struct LlmGroupArgs {
  std::size_t B = 0, R = 1;
  bool two_d = false;
  const T* rewards = nullptr;
  const int64_t* group_ids = nullptr;
  std::size_t group_size = 0;
  llm::Norm norm;
  llm::Combine combine = llm::Combine::Sum;
  const double* weights = nullptr;
  T* out = nullptr;
};

// group_advantages (SPEC §6); rltrain.reference.group_advantages is the specification. Throws
// scale="batch" over contiguous groups of a vector size, split over the pool: the batch statistics and the groups
// in one parallel_for (one hand-off to the pool, not two). Tasks [0, S) sum blocks; tasks [S, S + G) wait until
// every block is summed, combine the blocks (each the same way: the same bits) and run their groups. The pool hands
// tasks out in index order (a call inline runs them in order), so every block task is running or done when a group
// task waits: no task waits on one that has not started. The same bits as batch_stats then fixed_fast_path.
template <typename T>
void batch_groups_fused(std::size_t size, std::size_t n, const T* x, T* out, const llm::Norm& norm,
                        std::atomic<bool>& bad, ThreadPool& pool) {
  using namespace llm;
  BlockStats st(n);
  const std::size_t per_stat = std::max<std::size_t>(1, kGrainElems / kBatchBlock);
  const std::size_t stat_tasks = (st.blocks + per_stat - 1) / per_stat;
  const std::size_t groups = n / size, per_out = std::max<std::size_t>(1, kGrainElems / size);
  const std::size_t out_tasks = (groups + per_out - 1) / per_out;
  std::atomic<std::size_t> summed{0};
  pool.parallel_for(stat_tasks + out_tasks, [&](std::size_t t) {
    if (t < stat_tasks) {
      block_stats(Contig<T>{x}, t * per_stat, std::min(st.blocks, (t + 1) * per_stat), true, st);
      summed.fetch_add(1, std::memory_order_acq_rel);
      return;
    }
    for (int spins = 0; summed.load(std::memory_order_acquire) != stat_tasks; ++spins) {
      if (spins < 4000)
        RLTRAIN_PAUSE();
      else
        std::this_thread::yield();
    }
    double mean = 0.0, var = 0.0;
    if (!combine_block_stats(st, norm.ddof, mean, var)) {
      bad.store(true, std::memory_order_relaxed);
      return;
    }
    fixed::Params fp;
    fp.mode = fixed::Mode::Shift;
    fp.ddof = static_cast<double>(norm.ddof), fp.eps = norm.eps, fp.eps_on_std = norm.eps_on == EpsOn::Std;
    fp.inv = 1.0 / denominator(var, norm);
    const std::size_t g0 = (t - stat_tasks) * per_out, g1 = std::min(groups, g0 + per_out);
    if (!fixed::fixed_groups(size, x + g0 * size, out + g0 * size, g1 - g0, fp))
      bad.store(true, std::memory_order_relaxed);
  });
}

// std::invalid_argument on non-finite rewards.
template <typename T>
void group_advantages(const LlmGroupArgs<T>& a, ThreadPool& pool) {
  using namespace llm;
  const std::size_t B = a.B, R = a.R;
  if (B == 0) return;
  std::atomic<bool> bad{false};
  T* out = a.out;
  auto weight = [&](std::size_t k) { return a.weights ? a.weights[k] : 1.0; };
  // The batch denominator of Scale::Batch over the values x (flags bad when they do not sum to a finite value).
  auto batch_denom = [&](const auto& x) {
    double mean = 0.0, var = 0.0;
    if (a.norm.scale != Scale::Batch) return 1.0;
    if (!batch_stats(x, B, a.norm.ddof, pool, mean, var)) bad.store(true, std::memory_order_relaxed);
    return denominator(var, a.norm);
  };
  // The parameters of the vector copies for 1-D rewards (false when the batch statistics are not finite).
  auto fixed_params = [&](fixed::Params& fp, double& bd) {
    bd = batch_denom(Contig<T>{a.rewards});
    if (bad.load()) return false;
    fp.mode = a.norm.scale == Scale::Group ? fixed::Mode::Group : fixed::Mode::Shift;
    fp.ddof = static_cast<double>(a.norm.ddof), fp.eps = a.norm.eps, fp.eps_on_std = a.norm.eps_on == EpsOn::Std;
    fp.inv = a.norm.scale == Scale::Batch ? 1.0 / bd : 1.0;  // as normalize_groups' batch_inv
    return true;
  };
  auto uniform = [&](int64_t lo, std::size_t count, std::size_t size) {
    if (a.combine != Combine::Sum || a.two_d) return false;
    return uniform_fast_path(
        a.group_ids, B, lo, count, size, a.rewards, out,
        [&](fixed::Params& fp) {
          double bd = 1.0;
          return fixed_params(fp, bd);
        },
        bad, pool);
  };
  auto grouped = [&](const auto& gr) {
    if (a.combine == Combine::Sum && !a.two_d) {
      if constexpr (std::is_same_v<std::decay_t<decltype(gr)>, FixedGroups>) {
        if (a.norm.scale == Scale::Batch && B >= kSplitMin && fixed::fixed_size_supported(gr.size) &&
            fixed::batch_sums_supported()) {
          batch_groups_fused(gr.size, B, a.rewards, out, a.norm, bad, pool);
          return;
        }
      }
      const Contig<T> x{a.rewards};
      fixed::Params fp;
      double bd = 1.0;
      if (!fixed_params(fp, bd)) return;
      if (fixed_fast_path(gr, B, a.rewards, out, fp, bad, pool)) return;
      normalize_groups(gr, B, x, a.norm, bd, [out](std::size_t i, double v) { out[i] = static_cast<T>(v); }, bad, pool);
      return;
    }
    std::vector<double> acc(B);  // zeros: the weighted sums below start from 0, as the reference's
    double* s = acc.data();
    if (a.combine == Combine::Sum) {
      // s_i = sum_k w_k r_ik (k ascending), then the normalisation of s.
      for_elements(B, pool, [&](std::size_t i0, std::size_t i1) {
        for (std::size_t i = i0; i < i1; ++i) {
          const T* row = a.rewards + i * R;
          double v = 0.0;
          for (std::size_t k = 0; k < R; ++k) v += weight(k) * static_cast<double>(row[k]);
          s[i] = v;
        }
      });
      const Contig<double> x{s};
      const double bd = batch_denom(x);
      if (bad.load()) return;
      normalize_groups(gr, B, x, a.norm, bd, [out](std::size_t i, double v) { out[i] = static_cast<T>(v); }, bad, pool);
      return;
    }
    // GDPO: a_i = sum_k w_k * normalise(column k)_i, then (a - mean(a)) / (std(a) + eps) over the batch.
    for (std::size_t k = 0; k < R; ++k) {
      const Strided<T> x{a.rewards + k, R};
      const double bd = batch_denom(x);
      if (bad.load()) return;
      const double w = weight(k);
      normalize_groups(gr, B, x, a.norm, bd, [s, w](std::size_t i, double v) { s[i] += w * v; }, bad, pool);
      if (bad.load()) return;
    }
    double mean = 0.0, var = 0.0;
    if (!batch_stats(Contig<double>{s}, B, a.norm.ddof, pool, mean, var)) {
      bad.store(true);
      return;
    }
    const double inv = 1.0 / denominator(var, a.norm);
    for_elements(B, pool, [&](std::size_t i0, std::size_t i1) {
      for (std::size_t i = i0; i < i1; ++i) out[i] = static_cast<T>((s[i] - mean) * inv);
    });
  };
  with_groups(B, a.group_ids, a.group_size, grouped, uniform);
  if (bad.load()) non_finite_rewards(a.rewards, B, a.two_d ? R : 1, a.two_d);
}

// rloo_advantages (SPEC §6) over rewards [B]; throws std::invalid_argument on non-finite rewards.
template <typename T>
void rloo_advantages(std::size_t B, const T* rewards, const int64_t* group_ids, std::size_t group_size, T* out,
                     ThreadPool& pool) {
  using namespace llm;
  if (B == 0) return;
  std::atomic<bool> bad{false};
  auto rloo = [](fixed::Params& fp) {
    fp.mode = fixed::Mode::Rloo;
    return true;
  };
  with_groups(
      B, group_ids, group_size,
      [&](const auto& gr) {
        fixed::Params fp;
        rloo(fp);
        if (!fixed_fast_path(gr, B, rewards, out, fp, bad, pool))
          rloo_groups(gr, B, Contig<T>{rewards}, out, bad, pool);
      },
      [&](int64_t lo, std::size_t count, std::size_t size) {
        return uniform_fast_path(group_ids, B, lo, count, size, rewards, out, rloo, bad, pool);
      });
  if (bad.load()) non_finite_rewards(rewards, B, 1, false);
}

}  // namespace rltrain
