// PPO minibatch loss and its gradient with respect to the policy head's outputs and the value, in one pass.
// Schulman et al. 2017, eq. 7 (clipped surrogate) with Stable-Baselines3's entropy bonus, optionally clipped
// value loss and the k3 approximate KL (ratio - 1 - log ratio). The sub-gradients follow autograd on the torch
// formulation: torch.min splits ties evenly (both branches have slope adv inside the clip range) and clamp passes
// the gradient on the closed interval. Per-sample work is independent; the means are summed in sample order.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace rltrain {

struct PpoLossArgs {
  std::size_t B = 0, A = 0;  // minibatch size, action dimension (discrete: number of actions)
  double clip = 0.2, clip_vf = -1.0, ent_coef = 0.0, vf_coef = 0.5;  // clip_vf < 0: no value clipping
  bool normalize_adv = false;  // (adv - mean) / (std + 1e-8) over the minibatch, std with ddof 1 (torch.std)
};

// Mean and the 1 / (std + 1e-8) scale of the minibatch advantages (SB3's per-minibatch normalisation).
template <typename T>
inline void adv_moments(const PpoLossArgs& a, const T* adv, double& mean, double& scale) {
  mean = 0.0, scale = 1.0;
  if (!a.normalize_adv || a.B < 2) return;
  for (std::size_t i = 0; i < a.B; ++i) mean += static_cast<double>(adv[i]);
  mean /= static_cast<double>(a.B);
  double ss = 0.0;
  for (std::size_t i = 0; i < a.B; ++i)
    ss += (static_cast<double>(adv[i]) - mean) * (static_cast<double>(adv[i]) - mean);
  scale = 1.0 / (std::sqrt(ss / static_cast<double>(a.B - 1)) + 1e-8);
}

struct PpoLossStats {
  double pg_loss = 0, value_loss = 0, entropy = 0, approx_kl = 0, clip_fraction = 0;
};

namespace detail {

// Shared by both heads: ratio, surrogate, KL and the weight d loss / d logp.
template <typename T>
inline double ppo_ratio_terms(double logp, T old_logp, double a, double clip, double inv_b, PpoLossStats& s) {
  const double log_ratio = logp - static_cast<double>(old_logp);
  const double ratio = std::exp(log_ratio);
  const double clipped = std::min(std::max(ratio, 1.0 - clip), 1.0 + clip);
  const double u = a * ratio, c = a * clipped;
  s.pg_loss -= std::min(u, c);
  s.approx_kl += (ratio - 1.0) - log_ratio;
  const bool eq = ratio == clipped;
  s.clip_fraction += eq ? 0.0 : 1.0;
  return (eq || u < c) ? -u * inv_b : 0.0;
}

template <typename T>
inline void ppo_value_terms(std::size_t i, const T* values, const T* old_values, const T* returns, const PpoLossArgs& a,
                            double inv_b, T* dvalues, PpoLossStats& s) {
  const double v = static_cast<double>(values[i]);
  double vpred = v, gate = 1.0;
  if (a.clip_vf >= 0.0) {
    const double ov = static_cast<double>(old_values[i]);
    const double d = v - ov;
    vpred = ov + std::min(std::max(d, -a.clip_vf), a.clip_vf);
    gate = (d >= -a.clip_vf && d <= a.clip_vf) ? 1.0 : 0.0;
  }
  const double err = static_cast<double>(returns[i]) - vpred;
  s.value_loss += err * err;
  dvalues[i] = static_cast<T>(-2.0 * a.vf_coef * inv_b * err * gate);
}

inline void ppo_finish(const PpoLossArgs& a, PpoLossStats& s) {
  const double inv = a.B ? 1.0 / static_cast<double>(a.B) : 0.0;
  s.pg_loss *= inv, s.value_loss *= inv, s.approx_kl *= inv, s.clip_fraction *= inv;
}

}  // namespace detail

// Categorical head: logits [B, A], integer actions [B]; writes dlogits [B, A] and dvalues [B].
template <typename T>
PpoLossStats ppo_loss_grad_discrete(const PpoLossArgs& a, const T* logits, const int64_t* actions, const T* old_logp,
                                    const T* adv, const T* returns, const T* values, const T* old_values, T* dlogits,
                                    T* dvalues) {
  PpoLossStats s;
  const double inv_b = a.B ? 1.0 / static_cast<double>(a.B) : 0.0;
  const double ent_w = a.ent_coef * inv_b;
  double adv_mean, adv_scale;
  adv_moments(a, adv, adv_mean, adv_scale);
  double ent_sum = 0.0;
  for (std::size_t i = 0; i < a.B; ++i) {
    const T* z = logits + i * a.A;
    T* dz = dlogits + i * a.A;
    double m = -INFINITY;
    for (std::size_t j = 0; j < a.A; ++j) m = std::max(m, static_cast<double>(z[j]));
    double se = 0.0;
    for (std::size_t j = 0; j < a.A; ++j) se += std::exp(static_cast<double>(z[j]) - m);
    const double lse = m + std::log(se);
    double ent = 0.0;
    for (std::size_t j = 0; j < a.A; ++j) {
      const double lp = static_cast<double>(z[j]) - lse;
      ent -= std::exp(lp) * lp;
    }
    ent_sum += ent;
    const std::size_t act = static_cast<std::size_t>(actions[i]);
    const double logp = static_cast<double>(z[act]) - lse;
    const double adv_i = (static_cast<double>(adv[i]) - adv_mean) * adv_scale;
    const double dlogp = detail::ppo_ratio_terms(logp, old_logp[i], adv_i, a.clip, inv_b, s);
    for (std::size_t j = 0; j < a.A; ++j) {
      const double lp = static_cast<double>(z[j]) - lse;
      const double p = std::exp(lp);
      const double onehot = j == act ? 1.0 : 0.0;
      dz[j] = static_cast<T>(dlogp * (onehot - p) + ent_w * p * (lp + ent));
    }
    detail::ppo_value_terms(i, values, old_values, returns, a, inv_b, dvalues, s);
  }
  s.entropy = ent_sum * inv_b;
  detail::ppo_finish(a, s);
  return s;
}

// Diagonal Gaussian head with a state-independent log-std: mean [B, A], log_std [A], actions [B, A];
// writes dmean [B, A], dlog_std [A] and dvalues [B].
template <typename T>
PpoLossStats ppo_loss_grad_gaussian(const PpoLossArgs& a, const T* mean, const T* log_std, const T* actions,
                                    const T* old_logp, const T* adv, const T* returns, const T* values,
                                    const T* old_values, T* dmean, T* dlog_std, T* dvalues) {
  PpoLossStats s;
  const double inv_b = a.B ? 1.0 / static_cast<double>(a.B) : 0.0;
  constexpr double kHalfLog2Pi = 0.91893853320467274178;
  double adv_mean, adv_scale;
  adv_moments(a, adv, adv_mean, adv_scale);
  double ent = 0.0;
  for (std::size_t j = 0; j < a.A; ++j) ent += 0.5 + kHalfLog2Pi + static_cast<double>(log_std[j]);
  s.entropy = ent;
  std::vector<double> acc(a.A, 0.0);
  for (std::size_t i = 0; i < a.B; ++i) {
    const T* mu = mean + i * a.A;
    const T* x = actions + i * a.A;
    double logp = -kHalfLog2Pi * static_cast<double>(a.A);
    for (std::size_t j = 0; j < a.A; ++j) {
      const double ls = static_cast<double>(log_std[j]);
      const double d = static_cast<double>(x[j]) - static_cast<double>(mu[j]);
      logp += -0.5 * d * d * std::exp(-2.0 * ls) - ls;
    }
    const double adv_i = (static_cast<double>(adv[i]) - adv_mean) * adv_scale;
    const double dlogp = detail::ppo_ratio_terms(logp, old_logp[i], adv_i, a.clip, inv_b, s);
    for (std::size_t j = 0; j < a.A; ++j) {
      const double iv = std::exp(-2.0 * static_cast<double>(log_std[j]));
      const double d = static_cast<double>(x[j]) - static_cast<double>(mu[j]);
      dmean[i * a.A + j] = static_cast<T>(dlogp * d * iv);
      acc[j] += dlogp * (d * d * iv - 1.0);
    }
    detail::ppo_value_terms(i, values, old_values, returns, a, inv_b, dvalues, s);
  }
  for (std::size_t j = 0; j < a.A; ++j) dlog_std[j] = static_cast<T>(acc[j] - a.ent_coef);
  detail::ppo_finish(a, s);
  return s;
}

}  // namespace rltrain
