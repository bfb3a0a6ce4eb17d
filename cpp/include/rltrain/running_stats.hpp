// Running mean/variance with float64 accumulators, Stable-Baselines3 semantics.
// Batch moments use two passes (mean, then squared deviations) so data with a large mean and a small spread
// (mean 1e8, std 1) keeps full precision; batches merge with Chan, Golub & LeVeque's parallel formula (1979).
// Work is split over feature columns only, so sums run in the same order for any thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "rltrain/thread_pool.hpp"

namespace rltrain {

// mean/var (population) of x [n, dim] per column, written into bmean/bvar [dim].
template <typename T>
void batch_moments(std::size_t n, std::size_t dim, const T* x, double* bmean, double* bvar, ThreadPool& pool) {
  const std::size_t grain = std::max<std::size_t>(64, (std::size_t(1) << 16) / std::max<std::size_t>(n, 1));
  pool.parallel_range(dim, grain, [&](std::size_t j0, std::size_t j1) {
    double* __restrict m = bmean + j0;
    double* __restrict v = bvar + j0;
    const std::size_t w = j1 - j0;
    std::fill(m, m + w, 0.0);
    std::fill(v, v + w, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      const T* __restrict row = x + i * dim + j0;
      for (std::size_t k = 0; k < w; ++k) m[k] += static_cast<double>(row[k]);
    }
    const double inv = n > 0 ? 1.0 / static_cast<double>(n) : 0.0;
    for (std::size_t k = 0; k < w; ++k) m[k] *= inv;
    for (std::size_t i = 0; i < n; ++i) {
      const T* __restrict row = x + i * dim + j0;
      for (std::size_t k = 0; k < w; ++k) {
        const double d = static_cast<double>(row[k]) - m[k];
        v[k] += d * d;
      }
    }
    for (std::size_t k = 0; k < w; ++k) v[k] *= inv;
  });
}

// Merges a batch (bmean, bvar, bcount) into (mean, var, count); returns the new count.
inline double merge_moments(std::size_t dim, double* mean, double* var, double count, const double* bmean,
                            const double* bvar, double bcount) {
  const double tot = count + bcount;
  if (bcount == 0.0) return count;
  for (std::size_t k = 0; k < dim; ++k) {
    const double delta = bmean[k] - mean[k];
    const double m2 = var[k] * count + bvar[k] * bcount + delta * delta * count * bcount / tot;
    mean[k] = mean[k] + delta * bcount / tot;
    var[k] = m2 / tot;
  }
  return tot;
}

// rms_update: merges the moments of x [n, dim] into (mean, var, count); returns the new count.
template <typename T>
double rms_update(std::size_t n, std::size_t dim, const T* x, double* mean, double* var, double count,
                  ThreadPool& pool) {
  if (n == 0) return count;
  std::vector<double> bmean(dim), bvar(dim);
  batch_moments<T>(n, dim, x, bmean.data(), bvar.data(), pool);
  return merge_moments(dim, mean, var, count, bmean.data(), bvar.data(), static_cast<double>(n));
}

// rms_normalize: out = clip((x - mean) / sqrt(var + eps), -clip, clip) over x [n, dim].
template <typename T>
void rms_normalize(std::size_t n, std::size_t dim, const T* x, const double* mean, const double* var, double clip,
                   double eps, T* out, ThreadPool& pool) {
  std::vector<double> sd(dim);
  for (std::size_t k = 0; k < dim; ++k) sd[k] = std::sqrt(var[k] + eps);
  pool.parallel_range(n, std::max<std::size_t>(1, (std::size_t(1) << 15) / std::max<std::size_t>(dim, 1)),
                      [&](std::size_t i0, std::size_t i1) {
                        for (std::size_t i = i0; i < i1; ++i) {
                          const T* __restrict row = x + i * dim;
                          T* __restrict o = out + i * dim;
                          for (std::size_t k = 0; k < dim; ++k) {
                            const double z = (static_cast<double>(row[k]) - mean[k]) / sd[k];
                            o[k] = static_cast<T>(std::min(std::max(z, -clip), clip));
                          }
                        }
                      });
}

}  // namespace rltrain
