// One PPO epoch for rltrain's MLP actor-critic in one call: for every minibatch of an already shuffled sample set,
// the forward pass through both trunks and heads, the loss gradient (ppo_loss.hpp), the hand-written backward pass,
// global gradient-norm clipping and Adam, on the flat float32 parameter buffer of
// rltrain.algos.fused_mlp.FusedActorCritic. The Python fused step does the same in ~40 torch calls per minibatch;
// here the per-call overhead is gone and only the arithmetic is left.
//
// Flat layout (FusedActorCritic's): per hidden layer k the actor's and the critic's weights [2, out, in], then their
// biases [2, out]; the policy head weight [A, H] and bias [A], the value head weight [1, H] and bias [1]; the
// log-std [A] for a Gaussian head. Matrix products accumulate in float in a fixed order, so results match torch's
// (MKL) to rounding, not bitwise; tanh is evaluated by tanh_f below (a few float ulp from the correctly rounded value).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "rltrain/ppo_loss.hpp"

namespace rltrain {

struct PpoMlpShape {
  std::vector<std::size_t> sizes;  // [obs_dim, h_1, ..., h_L], L >= 1, the same for actor and critic
  std::size_t A = 0;               // number of actions (categorical) or action dimension (Gaussian)
  bool relu = false;               // activation: tanh (false) or ReLU
  bool gaussian = false;           // head: categorical logits (false) or Gaussian means with a flat log-std
  bool critic = true;              // a critic trunk and value head (false: an actor-only policy; rollouts only)

  std::size_t depth() const { return sizes.size() - 1; }
  std::size_t hidden() const { return sizes.back(); }
  std::size_t trunks() const { return critic ? 2 : 1; }
  std::size_t num_params() const {
    std::size_t n = 0;
    for (std::size_t k = 0; k + 1 < sizes.size(); ++k) n += trunks() * sizes[k + 1] * (sizes[k] + 1);
    n += A * hidden() + A + (critic ? hidden() + 1 : 0);
    return gaussian ? n + A : n;
  }
};

struct PpoMlpEpochArgs {
  PpoLossArgs loss;             // clip, clip_vf, coefficients, normalize_adv (B and A are set here)
  std::size_t n = 0, mb = 0;    // samples in the epoch, minibatch size (the last minibatch may be shorter)
  double max_grad_norm = -1.0;  // <= 0: no clipping
  double target_kl = -1.0;      // < 0: no early stop
  double lr = 3e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double adam_step = 0.0;  // Adam steps taken before this epoch (the bias corrections continue from it)
};

struct PpoMlpEpochResult {
  std::size_t steps = 0;  // optimiser steps taken
  bool stopped = false;   // the KL early stop fired (its minibatch's statistics are row `steps` of the output)
};

namespace mlp_detail {

// exp(y) for y in [-18, 0]: y = n ln2 + r, |r| <= ln2 / 2, exp(r) by its degree-7 Taylor polynomial (truncation
// below 6e-9 relative), 2^n from the exponent bits. Branch-free so that loops over it vectorise.
inline float exp_neg(float y) {
  const float n = std::nearbyint(y * 1.44269504088896341f);
  const float r = (y - n * 0.693145751953125f) - n * 1.428606765330187e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
  float s;
  std::memcpy(&s, &bits, sizeof s);
  return p * s;
}

// tanh: the odd Taylor series through x^9 for |x| < 0.125 (truncation below 1e-12 relative), else
// (1 - e) / (1 + e) with e = exp(-2|x|) and the sign of x; |x| >= 9 rounds to +-1 in float either way.
inline float tanh_f(float x) {
  const float ax = std::min(std::fabs(x), 9.0f);
  const float x2 = x * x;
  float s = 62.0f / 2835.0f;
  s = s * x2 - 17.0f / 315.0f;
  s = s * x2 + 2.0f / 15.0f;
  s = s * x2 - 1.0f / 3.0f;
  const float small = x + x * x2 * s;
  const float e = exp_neg(-2.0f * ax);
  const float big = std::copysign((1.0f - e) / (1.0f + e), x);
  return ax < 0.125f ? small : big;
}

// C[M, N] += A[M, K] B[K, N] (row-major, leading dimensions lda, ldb, ldc). Blocks of 4 rows x W columns keep
// their accumulators in registers; every output still sums its K products in order k = 0, 1, ..., so the result
// does not depend on the blocking or the vector width. GCC and Clang get the blocks as explicit vectors (their
// vector extensions: the loop vectoriser does not keep runtime-sized blocks in registers), others scalar loops.
#if defined(__GNUC__) || defined(__clang__)
template <std::size_t W>
struct VecOf {
  // A typedef: GCC's vector_size attribute (with a size that depends on W) is written on a typedef declaration.
  typedef float type __attribute__((vector_size(W * sizeof(float))));  // NOLINT(modernize-use-using)
};

template <std::size_t W>
inline std::size_t gemm_block(std::size_t m, std::size_t n, std::size_t N, std::size_t K, const float* A,
                              std::size_t lda, const float* B, std::size_t ldb, float* C, std::size_t ldc) {
  using V = typename VecOf<W>::type;
  for (; n + 2 * W <= N; n += 2 * W) {
    V acc[4][2];
    for (std::size_t r = 0; r < 4; ++r) {
      std::memcpy(&acc[r][0], C + (m + r) * ldc + n, sizeof(V));
      std::memcpy(&acc[r][1], C + (m + r) * ldc + n + W, sizeof(V));
    }
    for (std::size_t k = 0; k < K; ++k) {
      V b0, b1;
      std::memcpy(&b0, B + k * ldb + n, sizeof(V));
      std::memcpy(&b1, B + k * ldb + n + W, sizeof(V));
      for (std::size_t r = 0; r < 4; ++r) {
        const float a = A[(m + r) * lda + k];
        acc[r][0] += a * b0;
        acc[r][1] += a * b1;
      }
    }
    for (std::size_t r = 0; r < 4; ++r) {
      std::memcpy(C + (m + r) * ldc + n, &acc[r][0], sizeof(V));
      std::memcpy(C + (m + r) * ldc + n + W, &acc[r][1], sizeof(V));
    }
  }
  for (; n + W <= N; n += W) {
    V acc[4];
    for (std::size_t r = 0; r < 4; ++r) std::memcpy(&acc[r], C + (m + r) * ldc + n, sizeof(V));
    for (std::size_t k = 0; k < K; ++k) {
      V b0;
      std::memcpy(&b0, B + k * ldb + n, sizeof(V));
      for (std::size_t r = 0; r < 4; ++r) acc[r] += A[(m + r) * lda + k] * b0;
    }
    for (std::size_t r = 0; r < 4; ++r) std::memcpy(C + (m + r) * ldc + n, &acc[r], sizeof(V));
  }
  return n;
}
#else
template <std::size_t W>
inline std::size_t gemm_block(std::size_t m, std::size_t n, std::size_t N, std::size_t K, const float* A,
                              std::size_t lda, const float* B, std::size_t ldb, float* C, std::size_t ldc) {
  for (; n + W <= N; n += W) {
    float acc[4][W];
    for (std::size_t r = 0; r < 4; ++r)
      for (std::size_t j = 0; j < W; ++j) acc[r][j] = C[(m + r) * ldc + n + j];
    for (std::size_t k = 0; k < K; ++k) {
      const float* b = B + k * ldb + n;
      for (std::size_t r = 0; r < 4; ++r) {
        const float a = A[(m + r) * lda + k];
        for (std::size_t j = 0; j < W; ++j) acc[r][j] += a * b[j];
      }
    }
    for (std::size_t r = 0; r < 4; ++r)
      for (std::size_t j = 0; j < W; ++j) C[(m + r) * ldc + n + j] = acc[r][j];
  }
  return n;
}
#endif

// VW: the widest vector the caller's instruction set has, in floats (4: SSE2, 8: AVX2).
template <std::size_t VW>
inline void gemm(std::size_t M, std::size_t N, std::size_t K, const float* A, std::size_t lda, const float* B,
                 std::size_t ldb, float* C, std::size_t ldc) {
  std::size_t m = 0;
  for (; m + 4 <= M; m += 4) {
    std::size_t n = gemm_block<VW>(m, 0, N, K, A, lda, B, ldb, C, ldc);
    if (VW > 4) n = gemm_block<4>(m, n, N, K, A, lda, B, ldb, C, ldc);
    for (; n < N; ++n)
      for (std::size_t r = 0; r < 4; ++r) {
        float s = C[(m + r) * ldc + n];
        for (std::size_t k = 0; k < K; ++k) s += A[(m + r) * lda + k] * B[k * ldb + n];
        C[(m + r) * ldc + n] = s;
      }
  }
  for (; m < M; ++m)
    for (std::size_t n = 0; n < N; ++n) {
      float s = C[m * ldc + n];
      for (std::size_t k = 0; k < K; ++k) s += A[m * lda + k] * B[k * ldb + n];
      C[m * ldc + n] = s;
    }
}

// out[C, R] = in[R, C]^T.
inline void transpose(const float* in, std::size_t R, std::size_t C, float* out) {
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t c = 0; c < C; ++c) out[c * R + r] = in[r * C + c];
}

// y[B, O] = x[B, I] W[O, I]^T + b[O]; wt: workspace of I * O floats.
template <std::size_t VW>
inline void linear_fwd(const float* x, std::size_t B, std::size_t I, const float* W, const float* b, std::size_t O,
                       float* y, float* wt) {
  transpose(W, O, I, wt);
  for (std::size_t r = 0; r < B; ++r) std::copy(b, b + O, y + r * O);
  gemm<VW>(B, O, I, x, I, wt, O, y, O);
}

// gW[O, I] = dz[B, O]^T h[B, I]; gb[O] = sum over rows of dz; dzt: workspace of O * B floats.
template <std::size_t VW>
inline void linear_grad(const float* dz, const float* h, std::size_t B, std::size_t I, std::size_t O, float* gW,
                        float* gb, float* dzt) {
  transpose(dz, B, O, dzt);
  std::fill(gW, gW + O * I, 0.0f);
  gemm<VW>(O, I, B, dzt, B, h, I, gW, I);
  for (std::size_t o = 0; o < O; ++o) {
    float s = 0.0f;
    for (std::size_t r = 0; r < B; ++r) s += dzt[o * B + r];
    gb[o] = s;
  }
}

// dh[B, I] = dz[B, O] W[O, I].
template <std::size_t VW>
inline void linear_bwd(const float* dz, const float* W, std::size_t B, std::size_t I, std::size_t O, float* dh) {
  std::fill(dh, dh + B * I, 0.0f);
  gemm<VW>(B, I, O, dz, O, W, I, dh, I);
}

inline void activate(float* h, std::size_t n, bool relu) {
  if (relu) {
    for (std::size_t i = 0; i < n; ++i) h[i] = h[i] > 0.0f ? h[i] : 0.0f;
  } else {
    for (std::size_t i = 0; i < n; ++i) h[i] = tanh_f(h[i]);
  }
}

// dz = dh * act'(.) from the activation's output h: tanh' = 1 - h^2, relu' = [h > 0].
inline void activate_grad(const float* dh, const float* h, std::size_t n, bool relu, float* dz) {
  if (relu) {
    for (std::size_t i = 0; i < n; ++i) dz[i] = h[i] > 0.0f ? dh[i] : 0.0f;
  } else {
    for (std::size_t i = 0; i < n; ++i) dz[i] = dh[i] * (1.0f - h[i] * h[i]);
  }
}

}  // namespace mlp_detail

// Runs the epoch. obs [n, obs_dim], actions [n] (int64, categorical) or [n, A] (float, Gaussian; pass it as
// actions_f), old_logp/adv/returns/old_values [n]; params, grad, exp_avg, exp_avg_sq [num_params]; stats
// [ceil(n / mb), 5] receives per minibatch (pg_loss, value_loss, -entropy, approx_kl, clip_fraction). VW: see gemm
// (the result does not depend on it).
template <std::size_t VW = 4>
inline PpoMlpEpochResult ppo_mlp_epoch(const PpoMlpShape& sh, const PpoMlpEpochArgs& ea, float* params, float* grad,
                                       float* exp_avg, float* exp_avg_sq, const float* obs, const int64_t* actions_i,
                                       const float* actions_f, const float* old_logp, const float* adv,
                                       const float* returns, const float* old_values, double* stats) {
  using namespace mlp_detail;
  const std::size_t L = sh.depth(), H = sh.hidden(), A = sh.A, D = sh.sizes[0], mb = ea.mb;
  const std::size_t P = sh.num_params();
  // Offsets into the flat buffer.
  std::vector<std::size_t> offW(L), offb(L);
  std::size_t off = 0, maxw = 0, maxh = 0;
  for (std::size_t k = 0; k < L; ++k) {
    const std::size_t i = sh.sizes[k], o = sh.sizes[k + 1];
    offW[k] = off, off += 2 * o * i;
    offb[k] = off, off += 2 * o;
    maxw = std::max(maxw, i * o);
    maxh = std::max(maxh, o);
  }
  const std::size_t offPW = off, offPb = off + A * H, offVW = offPb + A, offVb = offVW + H, offLS = offVb + 1;
  maxw = std::max(maxw, A * H);
  std::vector<std::vector<float>> hs(L);  // hs[k]: output of hidden layer k, [2, mb, sizes[k + 1]]
  for (std::size_t k = 0; k < L; ++k) hs[k].resize(2 * mb * sh.sizes[k + 1]);
  std::vector<float> wt(maxw), head(mb * A), values(mb), dhead(mb * A), dvalues(mb);
  std::vector<float> dh(mb * maxh), dz(mb * maxh), dzt(mb * std::max(maxh, A));
  PpoMlpEpochResult res;
  double t = ea.adam_step;
  const float b1 = static_cast<float>(ea.beta1), b2 = static_cast<float>(ea.beta2);
  const float c1 = 1.0f - b1, c2 = 1.0f - b2, eps = static_cast<float>(ea.eps);
  std::size_t row = 0;
  for (std::size_t start = 0; start < ea.n; start += mb, ++row) {
    const std::size_t B = std::min(mb, ea.n - start);
    const float* x = obs + start * D;
    // Forward: both trunks, then the heads.
    for (std::size_t tr = 0; tr < 2; ++tr) {
      const float* in = x;
      for (std::size_t k = 0; k < L; ++k) {
        const std::size_t i = sh.sizes[k], o = sh.sizes[k + 1];
        float* out = hs[k].data() + tr * mb * o;
        linear_fwd<VW>(in, B, i, params + offW[k] + tr * o * i, params + offb[k] + tr * o, o, out, wt.data());
        activate(out, B * o, sh.relu);
        in = out;
      }
    }
    const float* ha = hs[L - 1].data();
    const float* hv = hs[L - 1].data() + mb * H;
    linear_fwd<VW>(ha, B, H, params + offPW, params + offPb, A, head.data(), wt.data());
    linear_fwd<VW>(hv, B, H, params + offVW, params + offVb, 1, values.data(), wt.data());
    // The loss gradient w.r.t. the head outputs and the values.
    PpoLossArgs la = ea.loss;
    la.B = B, la.A = A;
    PpoLossStats st;
    if (sh.gaussian)
      st = ppo_loss_grad_gaussian<float>(la, head.data(), params + offLS, actions_f + start * A, old_logp + start,
                                         adv + start, returns + start, values.data(), old_values + start, dhead.data(),
                                         grad + offLS, dvalues.data());
    else
      st = ppo_loss_grad_discrete<float>(la, head.data(), actions_i + start, old_logp + start, adv + start,
                                         returns + start, values.data(), old_values + start, dhead.data(),
                                         dvalues.data());
    double* srow = stats + row * 5;
    srow[0] = st.pg_loss, srow[1] = st.value_loss, srow[2] = -st.entropy, srow[3] = st.approx_kl;
    srow[4] = st.clip_fraction;
    if (ea.target_kl >= 0.0 && st.approx_kl > 1.5 * ea.target_kl) {
      res.stopped = true;
      return res;
    }
    // Backward: heads, then each trunk from the top.
    linear_grad<VW>(dhead.data(), ha, B, H, A, grad + offPW, grad + offPb, dzt.data());
    linear_grad<VW>(dvalues.data(), hv, B, H, 1, grad + offVW, grad + offVb, dzt.data());
    for (std::size_t tr = 0; tr < 2; ++tr) {
      if (tr == 0)
        linear_bwd<VW>(dhead.data(), params + offPW, B, H, A, dh.data());
      else
        linear_bwd<VW>(dvalues.data(), params + offVW, B, H, 1, dh.data());
      for (std::size_t k = L; k-- > 0;) {
        const std::size_t i = sh.sizes[k], o = sh.sizes[k + 1];
        const float* h_out = hs[k].data() + tr * mb * o;
        const float* h_in = k == 0 ? x : hs[k - 1].data() + tr * mb * i;
        activate_grad(dh.data(), h_out, B * o, sh.relu, dz.data());
        linear_grad<VW>(dz.data(), h_in, B, i, o, grad + offW[k] + tr * o * i, grad + offb[k] + tr * o, dzt.data());
        if (k > 0) linear_bwd<VW>(dz.data(), params + offW[k] + tr * o * i, B, i, o, dh.data());
      }
    }
    // Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_'s coefficient), then Adam (torch.optim.Adam).
    if (ea.max_grad_norm > 0.0) {
      double ss = 0.0;
      for (std::size_t j = 0; j < P; ++j) ss += static_cast<double>(grad[j]) * static_cast<double>(grad[j]);
      const float norm = static_cast<float>(std::sqrt(ss));
      const float coef = std::min(static_cast<float>(ea.max_grad_norm) / (norm + 1e-6f), 1.0f);
      for (std::size_t j = 0; j < P; ++j) grad[j] *= coef;
    }
    t += 1.0;
    const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(ea.beta2, t)));
    const float step = static_cast<float>(-ea.lr / (1.0 - std::pow(ea.beta1, t)));
    for (std::size_t j = 0; j < P; ++j) {
      const float g = grad[j];
      const float m = exp_avg[j] + c1 * (g - exp_avg[j]);
      const float v = exp_avg_sq[j] * b2 + c2 * g * g;
      exp_avg[j] = m, exp_avg_sq[j] = v;
      params[j] += step * (m / (std::sqrt(v) / bc2_sqrt + eps));
    }
    ++res.steps;
  }
  return res;
}

}  // namespace rltrain

namespace rltrain {

// The rollout's forward pass for the same network (or its actor alone, sh.critic == false: per hidden layer the
// actor's weights [1, out, in] and biases [1, out], then the policy head, then the log-std): actions, values and
// log-probabilities for B observations. Every row is computed on its own in a fixed order (see gemm), so a row's
// result does not depend on B: a batch split among rollout workers gives the same bits.
// Categorical head: sampling by inverse CDF as ActorCriticPolicy._sample does it, from one uniform per row in noise
// [B] (torch.rand, the policy's own stream): the first index whose cumulative probability is >= u (clamped to
// A - 1); actions_i [B]. Gaussian head: actions_f [B, A] = mean + exp(log_std) * noise with one standard normal per
// action dimension in noise [B, A], log-probability sum_j (-z_j^2 / 2 - log_std_j - log(2 pi) / 2) with
// z = (a - mean) exp(-log_std). noise == nullptr: deterministic (argmax; the mean). values [B] only with a critic.
template <std::size_t VW = 4>
inline void mlp_act(const PpoMlpShape& sh, const float* params, const float* obs, std::size_t B, const float* noise,
                    int64_t* actions_i, float* actions_f, float* values, float* logp) {
  using namespace mlp_detail;
  const std::size_t L = sh.depth(), H = sh.hidden(), A = sh.A, T = sh.trunks();
  const bool deterministic = noise == nullptr;
  std::size_t off = 0, maxw = A * H;
  for (std::size_t k = 0; k < L; ++k) maxw = std::max(maxw, sh.sizes[k] * sh.sizes[k + 1]);
  std::vector<float> wt(maxw), head(B * A), h[2], out[2];
  const float* in[2] = {obs, obs};
  for (std::size_t k = 0; k < L; ++k) {
    const std::size_t i = sh.sizes[k], o = sh.sizes[k + 1];
    const std::size_t offW = off, offb = off + T * o * i;
    off += T * o * (i + 1);
    for (std::size_t tr = 0; tr < T; ++tr) {
      out[tr].resize(B * o);
      linear_fwd<VW>(in[tr], B, i, params + offW + tr * o * i, params + offb + tr * o, o, out[tr].data(), wt.data());
      activate(out[tr].data(), B * o, sh.relu);
    }
    for (std::size_t tr = 0; tr < T; ++tr) {
      h[tr].swap(out[tr]);
      in[tr] = h[tr].data();
    }
  }
  const std::size_t offPW = off, offPb = off + A * H, offVW = offPb + A, offVb = offVW + H;
  linear_fwd<VW>(in[0], B, H, params + offPW, params + offPb, A, head.data(), wt.data());
  if (sh.critic) linear_fwd<VW>(in[1], B, H, params + offVW, params + offVb, 1, values, wt.data());
  if (sh.gaussian) {
    const float* log_std = params + (sh.critic ? offVb + 1 : offPb + A);
    std::vector<float> scale(A), inv(A), cst(A);
    for (std::size_t j = 0; j < A; ++j) {
      scale[j] = std::exp(log_std[j]), inv[j] = std::exp(-log_std[j]);
      cst[j] = -log_std[j] - 0.91893853320467274f;  // -log_std - log(2 pi) / 2
    }
    for (std::size_t r = 0; r < B; ++r) {
      const float* mu = head.data() + r * A;
      float* a = actions_f + r * A;
      float lp = 0.0f;
      for (std::size_t j = 0; j < A; ++j) {
        a[j] = deterministic ? mu[j] : mu[j] + scale[j] * noise[r * A + j];
        const float z = (a[j] - mu[j]) * inv[j];
        lp += -0.5f * (z * z) + cst[j];
      }
      logp[r] = lp;
    }
    return;
  }
  for (std::size_t r = 0; r < B; ++r) {
    const float* z = head.data() + r * A;
    float m = z[0];
    std::size_t best = 0;
    for (std::size_t j = 1; j < A; ++j)
      if (z[j] > m) m = z[j], best = j;
    float se = 0.0f;
    for (std::size_t j = 0; j < A; ++j) se += std::exp(z[j] - m);
    const float lse = std::log(se);
    std::size_t a = best;
    if (!deterministic) {
      float cdf = 0.0f;
      a = A - 1;
      for (std::size_t j = 0; j < A; ++j) {
        cdf += std::exp(z[j] - m - lse);
        if (cdf >= noise[r]) {
          a = j;
          break;
        }
      }
    }
    actions_i[r] = static_cast<int64_t>(a);
    logp[r] = z[a] - m - lse;
  }
}

}  // namespace rltrain
