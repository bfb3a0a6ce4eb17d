// Group-relative advantages (GRPO family) over padded [B, G, T] episodes with lengths [B, G].
// Shao et al. 2024, "DeepSeekMath" sec. 4.1.2/4.1.3: outcome supervision normalises each episode's total reward
// within its group; process supervision normalises step rewards and sums the normalised future rewards.
// All statistics are accumulated in double in a fixed order (episode by episode, step by step), so results are
// identical for any thread count: threads only ever own disjoint rows, columns or groups.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "rltrain/thread_pool.hpp"

namespace rltrain {

struct GroupShape {
  std::size_t B = 1, G = 0, T = 0;
  std::size_t rows() const { return B * G; }
};

// std with `ddof`; 0 where fewer than ddof + 1 values exist.
inline double group_std(double sum_sq_dev, double n, int64_t ddof) {
  if (n < static_cast<double>(ddof) + 1.0) return 0.0;
  return std::sqrt(sum_sq_dev / (n - static_cast<double>(ddof)));
}

// Sum of x[0..n) in double with eight interleaved accumulators combined in a fixed order: the same result
// on every call and thread count, without a serial chain of dependent additions.
template <typename T>
double sum_f64(const T* x, std::size_t n) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) a[k] += static_cast<double>(x[i + k]);
  for (int k = 0; i < n; ++i, ++k) a[k] += static_cast<double>(x[i]);
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// Sum of (x - m)^2 over x[0..n), same accumulation pattern as sum_f64.
template <typename T>
double ssd_f64(const T* x, std::size_t n, double m) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) {
      const double d = static_cast<double>(x[i + k]) - m;
      a[k] += d * d;
    }
  for (int k = 0; i < n; ++i, ++k) {
    const double d = static_cast<double>(x[i]) - m;
    a[k] += d * d;
  }
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// Rows per task: enough elements per task (~16k) that dispatch costs little next to the work.
inline std::size_t row_grain(const GroupShape& s) {
  return std::max<std::size_t>(1, 16384 / std::max<std::size_t>(s.T, 1));
}

// Per-episode sums R[b, i] (double).
template <typename T>
void episode_returns(const GroupShape& s, const T* rewards, const int64_t* lengths, double* R, ThreadPool& pool) {
  pool.parallel_range(s.rows(), row_grain(s), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t row = r0; row < r1; ++row) {
      R[row] = sum_f64(rewards + row * s.T, static_cast<std::size_t>(lengths[row]));
    }
  });
}

// A[b, i] = (R[b, i] - mean_b) / (std_b + eps), in place over R.
inline void normalize_within_groups(const GroupShape& s, double* R, double eps, int64_t ddof) {
  for (std::size_t b = 0; b < s.B; ++b) {
    double* x = R + b * s.G;
    if (s.G == 0) continue;
    double sum = 0.0;
    for (std::size_t i = 0; i < s.G; ++i) sum += x[i];
    const double mean = sum / static_cast<double>(s.G);
    double ss = 0.0;
    for (std::size_t i = 0; i < s.G; ++i) ss += (x[i] - mean) * (x[i] - mean);
    const double denom = group_std(ss, static_cast<double>(s.G), ddof) + eps;
    for (std::size_t i = 0; i < s.G; ++i) x[i] = (x[i] - mean) / denom;
  }
}

// Broadcasts per-episode values A[row] onto the valid steps of each row; zeros after the episode's length.
template <typename T>
void broadcast_rows(const GroupShape& s, const double* A, const int64_t* lengths, T* out, ThreadPool& pool) {
  pool.parallel_range(s.rows(), row_grain(s), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t row = r0; row < r1; ++row) {
      T* o = out + row * s.T;
      const std::size_t len = static_cast<std::size_t>(lengths[row]);
      const T v = static_cast<T>(A[row]);
      // Plain stores: non-temporal ones were measured 2x slower here (the output would otherwise stay in cache).
      std::fill(o, o + len, v);
      std::fill(o + len, o + s.T, T(0));
    }
  });
}

// Outcome supervision: every valid step of episode i gets (R_i - mean(R)) / (std(R) + eps).
template <typename T>
void episodic_advantages(const GroupShape& s, const T* rewards, const int64_t* lengths, double eps, int64_t ddof,
                         T* out, ThreadPool& pool) {
  std::vector<double> R(s.rows());
  episode_returns(s, rewards, lengths, R.data(), pool);
  normalize_within_groups(s, R.data(), eps, ddof);
  broadcast_rows(s, R.data(), lengths, out, pool);
}

enum class StepNorm { Timestep, Pooled };

// Process supervision, written as doubles into `work` [B, G, T] (zeros at invalid steps):
// n[i,t] = (r[i,t] - mean) / (std + eps) with per-timestep (episodes alive at t) or pooled statistics, then
// A[i,t] = sum_{k=t}^{len_i-1} gamma^(k-t) n[i,k].
template <typename T, typename O>
void per_step_into(const GroupShape& s, const T* rewards, const int64_t* lengths, double gamma, StepNorm norm,
                   double eps, int64_t ddof, O* out, ThreadPool& pool, bool zero_tail = true) {
  const std::size_t G = s.G, TT = s.T;
  if (s.rows() == 0 || TT == 0) return;
  // Per (b, t) mean and denominator. Pooled statistics are stored once per group and broadcast.
  std::vector<double> mean(s.B * TT), denom(s.B * TT);
  if (norm == StepNorm::Timestep) {
    constexpr std::size_t kChunk = 256;
    const std::size_t chunks_per_group = (TT + kChunk - 1) / kChunk;
    pool.parallel_for(s.B * chunks_per_group, [&](std::size_t task) {
      const std::size_t b = task / chunks_per_group;
      const std::size_t t0 = (task % chunks_per_group) * kChunk;
      const std::size_t t1 = std::min(TT, t0 + kChunk);
      const std::size_t w = t1 - t0;
      double sum[kChunk], cnt[kChunk], ss[kChunk];
      std::fill(sum, sum + w, 0.0);
      std::fill(cnt, cnt + w, 0.0);
      std::fill(ss, ss + w, 0.0);
      // f(t, x[t]) for every step t in [t0, t1) of every episode of group b still alive at t.
      auto for_each_alive = [&](auto&& f) {
        for (std::size_t i = 0; i < G; ++i) {
          const std::size_t row = b * G + i;
          const std::size_t len = static_cast<std::size_t>(lengths[row]);
          const T* x = rewards + row * TT;
          const std::size_t e = std::min(t1, std::max(t0, len));
          for (std::size_t t = t0; t < e; ++t) f(t, static_cast<double>(x[t]));
        }
      };
      for_each_alive([&](std::size_t t, double v) {
        sum[t - t0] += v;
        cnt[t - t0] += 1.0;
      });
      double* m = mean.data() + b * TT;
      for (std::size_t k = 0; k < w; ++k) m[t0 + k] = cnt[k] > 0 ? sum[k] / cnt[k] : 0.0;
      for_each_alive([&](std::size_t t, double v) {
        const double dv = v - m[t];
        ss[t - t0] += dv * dv;
      });
      double* dn = denom.data() + b * TT;
      for (std::size_t k = 0; k < w; ++k) dn[t0 + k] = group_std(ss[k], cnt[k], ddof) + eps;
    });
  } else {
    for (std::size_t b = 0; b < s.B; ++b) {
      double sum = 0.0, cnt = 0.0;
      for (std::size_t i = 0; i < G; ++i) {
        const std::size_t row = b * G + i;
        const std::size_t len = static_cast<std::size_t>(lengths[row]);
        sum += sum_f64(rewards + row * TT, len);
        cnt += static_cast<double>(len);
      }
      const double m = cnt > 0 ? sum / cnt : 0.0;
      double ss = 0.0;
      for (std::size_t i = 0; i < G; ++i) {
        const std::size_t row = b * G + i;
        ss += ssd_f64(rewards + row * TT, static_cast<std::size_t>(lengths[row]), m);
      }
      const double d = group_std(ss, cnt, ddof) + eps;
      std::fill(mean.begin() + b * TT, mean.begin() + (b + 1) * TT, m);
      std::fill(denom.begin() + b * TT, denom.begin() + (b + 1) * TT, d);
    }
  }
  // One backward pass per block of eight rows: normalise, accumulate the discounted sum and store, with eight
  // independent recurrences interleaved instead of one serial chain. Normalisation multiplies by the reciprocal of
  // std + eps (one division per timestep instead of per element; results differ from dividing by <= 1 ulp).
  for (double& d : denom) d = 1.0 / d;
  constexpr std::size_t kRows = 8;
  const std::size_t blocks = (s.rows() + kRows - 1) / kRows;
  pool.parallel_range(blocks, 2, [&](std::size_t k0, std::size_t k1) {
    for (std::size_t blk = k0; blk < k1; ++blk) {
      const std::size_t r0 = blk * kRows, nr = std::min(s.rows(), r0 + kRows) - r0;
      double acc[kRows] = {0, 0, 0, 0, 0, 0, 0, 0};
      std::size_t len[kRows] = {0, 0, 0, 0, 0, 0, 0, 0};
      const T* x[kRows] = {};
      O* o[kRows] = {};
      const double* m[kRows] = {};
      const double* inv[kRows] = {};
      std::size_t maxlen = 0;
      for (std::size_t k = 0; k < nr; ++k) {
        const std::size_t row = r0 + k, b = row / G;
        len[k] = static_cast<std::size_t>(lengths[row]);
        x[k] = rewards + row * TT;
        o[k] = out + row * TT;
        m[k] = mean.data() + b * TT;
        inv[k] = denom.data() + b * TT;
        if (zero_tail) std::fill(o[k] + len[k], o[k] + TT, O(0));
        maxlen = std::max(maxlen, len[k]);
      }
      for (std::size_t t = maxlen; t-- > 0;)
        for (std::size_t k = 0; k < nr; ++k)
          if (t < len[k]) {
            acc[k] = (static_cast<double>(x[k][t]) - m[k][t]) * inv[k][t] + gamma * acc[k];
            o[k][t] = static_cast<O>(acc[k]);
          }
    }
  });
}

template <typename T>
void per_step_advantages(const GroupShape& s, const T* rewards, const int64_t* lengths, double gamma, StepNorm norm,
                         double eps, int64_t ddof, T* out, ThreadPool& pool) {
  per_step_into<T, T>(s, rewards, lengths, gamma, norm, eps, ddof, out, pool);
}

// Hybrid: sign +1 only where the episodic and the per-step advantage are both positive;
// magnitude |E|^alpha * |S|^beta, clipped (clip < 0 means no clip), then normalised over each group's valid steps.
template <typename T>
void hybrid_advantages(const GroupShape& s, const T* rewards, const int64_t* lengths, double gamma, double alpha,
                       double beta, double clip, double eps, int64_t ddof, T* out, ThreadPool& pool) {
  const std::size_t G = s.G, TT = s.T;
  std::vector<double> E(s.rows());
  episode_returns(s, rewards, lengths, E.data(), pool);
  normalize_within_groups(s, E.data(), eps, ddof);
  // Scratch for the per-step advantages: left uninitialised and without zeroed tails, since only the first
  // lengths[row] entries of each row are ever read (a zeroing pass would add a full sweep of memory).
  std::unique_ptr<double[]> H(new double[s.rows() * TT]);
  per_step_into<T, double>(s, rewards, lengths, gamma, StepNorm::Timestep, eps, ddof, H.get(), pool, false);
  // Signed magnitude of step t of a row: +mag only where E > 0 and S > 0, mag = min(|E|^alpha * |S|^beta, clip),
  // written back into H.
  const double clip_v = clip >= 0.0 ? clip : HUGE_VAL;
  const bool beta_one = beta == 1.0;
  auto signed_mag = [clip_v, beta, beta_one](double ea, bool e_pos, double st) {
    const double sb = beta_one ? std::fabs(st) : std::pow(std::fabs(st), beta);
    const double mag = std::min(ea * sb, clip_v);
    return (e_pos && st > 0.0) ? mag : -mag;
  };
  // Per row, while the row is in L1: its sum and its sum of squared deviations about its own mean; rows then
  // combine into the group's statistics with Chan et al.'s pairwise formula (no second sweep over H for them).
  std::vector<double> rsum(s.rows()), rm2(s.rows());
  pool.parallel_range(s.rows(), row_grain(s), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t row = r0; row < r1; ++row) {
      const std::size_t len = static_cast<std::size_t>(lengths[row]);
      const double e = E[row];
      const double ea = alpha == 1.0 ? std::fabs(e) : std::pow(std::fabs(e), alpha);
      const bool e_pos = e > 0.0;
      double* h = H.get() + row * TT;
      for (std::size_t t = 0; t < len; ++t) h[t] = signed_mag(ea, e_pos, h[t]);
      const double sum = sum_f64(h, len);
      const double m = len ? sum / static_cast<double>(len) : 0.0;
      const double m2 = ssd_f64(h, len, m);
      rsum[row] = sum;
      rm2[row] = m2;
    }
  });
  std::vector<double> gmean(s.B), ginv(s.B);
  for (std::size_t b = 0; b < s.B; ++b) {
    double sum = 0.0, cnt = 0.0;
    for (std::size_t i = 0; i < G; ++i) {
      sum += rsum[b * G + i];
      cnt += static_cast<double>(lengths[b * G + i]);
    }
    const double m = cnt > 0 ? sum / cnt : 0.0;
    double ss = 0.0;
    for (std::size_t i = 0; i < G; ++i) {
      const std::size_t row = b * G + i;
      const double n = static_cast<double>(lengths[row]);
      if (n == 0) continue;
      const double d = rsum[row] / n - m;
      ss += rm2[row] + n * d * d;
    }
    gmean[b] = m;
    ginv[b] = 1.0 / (group_std(ss, cnt, ddof) + eps);  // reciprocal: a multiply per element below
  }
  pool.parallel_range(s.rows(), row_grain(s), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t row = r0; row < r1; ++row) {
      const std::size_t len = static_cast<std::size_t>(lengths[row]);
      const double m = gmean[row / G], inv = ginv[row / G];
      const double* __restrict h = H.get() + row * TT;
      T* __restrict o = out + row * TT;
      for (std::size_t t = 0; t < len; ++t) o[t] = static_cast<T>((h[t] - m) * inv);
      std::fill(o + len, o + TT, T(0));
    }
  });
}

// group_normalize: scores [n] in contiguous groups of group_size.
// A = s - mean_group(s), divided by std_group + eps (scale 0), std over the whole batch + eps (scale 1) or
// nothing (scale 2, Dr. GRPO, Liu et al. 2025).
enum class GroupScale { Group = 0, Batch = 1, None = 2 };

template <typename T>
void group_normalize(std::size_t n, std::size_t group_size, const T* scores, GroupScale scale, double eps, int64_t ddof,
                     T* out) {
  if (n == 0) return;
  double batch_denom = 1.0;
  if (scale == GroupScale::Batch) {
    double sum = 0.0;
    for (std::size_t k = 0; k < n; ++k) sum += static_cast<double>(scores[k]);
    const double m = sum / static_cast<double>(n);
    double ss = 0.0;
    for (std::size_t k = 0; k < n; ++k) {
      const double dv = static_cast<double>(scores[k]) - m;
      ss += dv * dv;
    }
    batch_denom = group_std(ss, static_cast<double>(n), ddof) + eps;
  }
  for (std::size_t g0 = 0; g0 < n; g0 += group_size) {
    const T* x = scores + g0;
    T* o = out + g0;
    double sum = 0.0;
    for (std::size_t k = 0; k < group_size; ++k) sum += static_cast<double>(x[k]);
    const double m = sum / static_cast<double>(group_size);
    double denom = 1.0;
    if (scale == GroupScale::Group) {
      double ss = 0.0;
      for (std::size_t k = 0; k < group_size; ++k) {
        const double dv = static_cast<double>(x[k]) - m;
        ss += dv * dv;
      }
      denom = group_std(ss, static_cast<double>(group_size), ddof) + eps;
    } else if (scale == GroupScale::Batch) {
      denom = batch_denom;
    }
    for (std::size_t k = 0; k < group_size; ++k) o[k] = static_cast<T>((static_cast<double>(x[k]) - m) / denom);
  }
}

}  // namespace rltrain
