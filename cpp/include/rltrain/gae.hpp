// Generalized Advantage Estimation and discounted returns over time-major [T, N] buffers.
// Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage Estimation", eq. 16:
// A_t = sum_l (gamma*lam)^l delta_{t+l}. lam = 0 gives the TD(0) error, lam = 1 the Monte-Carlo return minus V.
// Each env column is independent, so a caller may split [0, N) into column ranges across threads and get
// bit-identical results for any split. The loop runs row by row so that the inner loop over a contiguous
// column range vectorises.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rltrain {

// A flag buffer (dones / terminated) may be bool/uint8 (1 byte), float or double; non-zero means set.
template <typename F>
inline bool flag_set(F v) {
  return v != F(0);
}

template <typename T, typename FD, typename FT>
struct GaeArgs {
  std::size_t T_len = 0, N = 0;
  const T* rewards = nullptr;       // [T, N]
  const T* values = nullptr;        // [T, N]
  const FD* dones = nullptr;        // [T, N]
  const T* last_values = nullptr;   // [N]
  const FT* terminated = nullptr;   // [T, N] or null
  const T* final_values = nullptr;  // [T, N] or null (required when terminated is given)
  double gamma = 0.99, lam = 0.95;
  T* advantages = nullptr;  // [T, N] out
  T* returns = nullptr;     // [T, N] out
};

// Computes columns [j0, j1).
template <typename T, typename FD, typename FT>
void gae_columns(const GaeArgs<T, FD, FT>& a, std::size_t j0, std::size_t j1) {
  const std::size_t N = a.N;
  const T gamma = static_cast<T>(a.gamma);
  const T gl = static_cast<T>(a.gamma * a.lam);
  for (std::size_t tt = a.T_len; tt-- > 0;) {
    const std::size_t row = tt * N;
    const T* __restrict r = a.rewards + row;
    const T* __restrict v = a.values + row;
    const FD* __restrict d = a.dones + row;
    const T* __restrict nv = (tt + 1 < a.T_len) ? a.values + row + N : a.last_values;
    const T* __restrict an = (tt + 1 < a.T_len) ? a.advantages + row + N : nullptr;
    T* __restrict adv = a.advantages + row;
    T* __restrict ret = a.returns + row;
    if (a.terminated == nullptr) {
      if (an == nullptr) {
        for (std::size_t j = j0; j < j1; ++j) {
          const bool dn = flag_set(d[j]);
          const T boot = dn ? T(0) : nv[j];
          const T x = r[j] + gamma * boot - v[j];
          adv[j] = x;
          ret[j] = x + v[j];
        }
      } else {
        for (std::size_t j = j0; j < j1; ++j) {
          const bool dn = flag_set(d[j]);
          const T boot = dn ? T(0) : nv[j];
          const T carry = dn ? T(0) : an[j];
          const T x = (r[j] + gamma * boot - v[j]) + gl * carry;
          adv[j] = x;
          ret[j] = x + v[j];
        }
      }
    } else {
      const FT* __restrict term = a.terminated + row;
      const T* __restrict fv = a.final_values + row;
      for (std::size_t j = j0; j < j1; ++j) {
        const bool dn = flag_set(d[j]);
        const bool tm = flag_set(term[j]);
        const T boot = tm ? T(0) : (dn ? fv[j] : nv[j]);
        const T carry = (dn || an == nullptr) ? T(0) : an[j];
        const T x = (r[j] + gamma * boot - v[j]) + gl * carry;
        adv[j] = x;
        ret[j] = x + v[j];
      }
    }
  }
}

// R[t] = r[t] + gamma * (1 - d[t]) * R[t+1], R[T] = last_values (zeros when null). Columns [j0, j1).
template <typename T, typename FD>
void discounted_returns_columns(std::size_t T_len, std::size_t N, const T* rewards, const FD* dones,
                                const T* last_values, double gamma_d, T* out, std::size_t j0,
                                std::size_t j1) {
  const T gamma = static_cast<T>(gamma_d);
  for (std::size_t tt = T_len; tt-- > 0;) {
    const std::size_t row = tt * N;
    const T* __restrict r = rewards + row;
    const FD* __restrict d = dones + row;
    const T* __restrict nx = (tt + 1 < T_len) ? out + row + N : last_values;
    T* __restrict o = out + row;
    if (nx == nullptr) {
      for (std::size_t j = j0; j < j1; ++j) o[j] = r[j];
    } else {
      for (std::size_t j = j0; j < j1; ++j) {
        const T next = flag_set(d[j]) ? T(0) : nx[j];
        o[j] = r[j] + gamma * next;
      }
    }
  }
}

}  // namespace rltrain
