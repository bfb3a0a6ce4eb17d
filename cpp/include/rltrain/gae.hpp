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

namespace detail {

// One row of the recursion over columns [j0, j1). Separate functions with restrict parameters so the
// compiler can prove the rows do not alias and vectorise the selects.
template <typename T, typename FD>
inline void gae_row(std::size_t j0, std::size_t j1, const T* __restrict r, const T* __restrict v,
                    const FD* __restrict d, const T* __restrict nv, const T* __restrict an, T gamma, T gl,
                    T* __restrict adv, T* __restrict ret) {
  for (std::size_t j = j0; j < j1; ++j) {
    const T nvj = nv[j], anj = an[j], vj = v[j];
    const bool dn = flag_set(d[j]);
    const T boot = dn ? T(0) : nvj;
    const T carry = dn ? T(0) : anj;
    const T x = (r[j] + gamma * boot - vj) + gl * carry;
    adv[j] = x;
    ret[j] = x + vj;
  }
}

template <typename T, typename FD>
inline void gae_row_last(std::size_t j0, std::size_t j1, const T* __restrict r, const T* __restrict v,
                         const FD* __restrict d, const T* __restrict nv, T gamma, T* __restrict adv,
                         T* __restrict ret) {
  for (std::size_t j = j0; j < j1; ++j) {
    const T nvj = nv[j], vj = v[j];
    const T boot = flag_set(d[j]) ? T(0) : nvj;
    const T x = r[j] + gamma * boot - vj;
    adv[j] = x;
    ret[j] = x + vj;
  }
}

// With terminated/final_values: a truncated step bootstraps from the true final observation's value.
template <typename T, typename FD, typename FT>
inline void gae_row_trunc(std::size_t j0, std::size_t j1, const T* __restrict r, const T* __restrict v,
                          const FD* __restrict d, const FT* __restrict term, const T* __restrict fv,
                          const T* __restrict nv, const T* __restrict an, T gamma, T gl, T* __restrict adv,
                          T* __restrict ret) {
  for (std::size_t j = j0; j < j1; ++j) {
    const T nvj = nv[j], fvj = fv[j], vj = v[j];
    const T anj = an != nullptr ? an[j] : T(0);
    const bool dn = flag_set(d[j]);
    const T boot = flag_set(term[j]) ? T(0) : (dn ? fvj : nvj);
    const T carry = dn ? T(0) : anj;
    const T x = (r[j] + gamma * boot - vj) + gl * carry;
    adv[j] = x;
    ret[j] = x + vj;
  }
}

template <typename T, typename FD>
inline void returns_row(std::size_t j0, std::size_t j1, const T* __restrict r, const FD* __restrict d,
                        const T* __restrict nx, T gamma, T* __restrict o) {
  for (std::size_t j = j0; j < j1; ++j) {
    const T nxj = nx[j];
    const T next = flag_set(d[j]) ? T(0) : nxj;
    o[j] = r[j] + gamma * next;
  }
}

}  // namespace detail

// Computes columns [j0, j1).
template <typename T, typename FD, typename FT>
void gae_columns(const GaeArgs<T, FD, FT>& a, std::size_t j0, std::size_t j1) {
  const std::size_t N = a.N;
  const T gamma = static_cast<T>(a.gamma);
  const T gl = static_cast<T>(a.gamma * a.lam);
  for (std::size_t tt = a.T_len; tt-- > 0;) {
    const std::size_t row = tt * N;
    const bool last = tt + 1 == a.T_len;
    const T* nv = last ? a.last_values : a.values + row + N;
    const T* an = last ? nullptr : a.advantages + row + N;
    if (a.terminated != nullptr) {
      detail::gae_row_trunc(j0, j1, a.rewards + row, a.values + row, a.dones + row, a.terminated + row,
                            a.final_values + row, nv, an, gamma, gl, a.advantages + row, a.returns + row);
    } else if (last) {
      detail::gae_row_last(j0, j1, a.rewards + row, a.values + row, a.dones + row, nv, gamma, a.advantages + row,
                           a.returns + row);
    } else {
      detail::gae_row(j0, j1, a.rewards + row, a.values + row, a.dones + row, nv, an, gamma, gl, a.advantages + row,
                      a.returns + row);
    }
  }
}

// R[t] = r[t] + gamma * (1 - d[t]) * R[t+1], R[T] = last_values (zeros when null). Columns [j0, j1).
template <typename T, typename FD>
void discounted_returns_columns(std::size_t T_len, std::size_t N, const T* rewards, const FD* dones,
                                const T* last_values, double gamma_d, T* out, std::size_t j0, std::size_t j1) {
  const T gamma = static_cast<T>(gamma_d);
  for (std::size_t tt = T_len; tt-- > 0;) {
    const std::size_t row = tt * N;
    const T* nx = (tt + 1 < T_len) ? out + row + N : last_values;
    if (nx == nullptr) {
      for (std::size_t j = j0; j < j1; ++j) out[row + j] = rewards[row + j];
    } else {
      detail::returns_row(j0, j1, rewards + row, dones + row, nx, gamma, out + row);
    }
  }
}

}  // namespace rltrain
