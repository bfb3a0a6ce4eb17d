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
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "rltrain/ppo_loss.hpp"
#include "rltrain/thread_pool.hpp"

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

// The epoch's products. gemm_e: C[M, N] = init + A[M, K] B[K, N] with A read as scalars at A[m * ars + k * acs]
// (any strides: A may be a transposed view, so no product needs a transposed copy of the activations or of their
// gradients) and B, C row-major. init: zero, the bias row bias[N], or C itself. Every output adds its K products to
// its initial value in order k = 0, 1, ..., whatever block computes it, so the result does not depend on VW or on
// how M is split; blocks of R rows x NV vectors of W floats keep their accumulators in registers (4 x 64 columns
// for AVX-512, 4 x 2W otherwise), the last columns and rows in narrower blocks and scalar chains.
enum class Init { Zero, Bias, Keep };

#if defined(__GNUC__) || defined(__clang__)
template <std::size_t W, std::size_t R, std::size_t NV>
inline std::size_t gemm_cols(std::size_t m, std::size_t n, std::size_t N, std::size_t K, const float* A,
                             std::size_t ars, std::size_t acs, const float* B, std::size_t ldb, float* C,
                             std::size_t ldc, Init init, const float* bias) {
  using V = typename VecOf<W>::type;
  for (; n + NV * W <= N; n += NV * W) {
    V acc[R][NV];
    for (std::size_t r = 0; r < R; ++r)
      for (std::size_t v = 0; v < NV; ++v) {
        if (init == Init::Keep)
          std::memcpy(&acc[r][v], C + (m + r) * ldc + n + v * W, sizeof(V));
        else if (init == Init::Bias)
          std::memcpy(&acc[r][v], bias + n + v * W, sizeof(V));
        else
          acc[r][v] = V{};
      }
    const float* a = A + m * ars;
    const float* b = B + n;
    for (std::size_t k = 0; k < K; ++k, a += acs, b += ldb) {
      V bv[NV];
      for (std::size_t v = 0; v < NV; ++v) std::memcpy(&bv[v], b + v * W, sizeof(V));
      for (std::size_t r = 0; r < R; ++r) {
        const float ar = a[r * ars];
        for (std::size_t v = 0; v < NV; ++v) acc[r][v] += ar * bv[v];
      }
    }
    for (std::size_t r = 0; r < R; ++r)
      for (std::size_t v = 0; v < NV; ++v) std::memcpy(C + (m + r) * ldc + n + v * W, &acc[r][v], sizeof(V));
  }
  return n;
}
#else
template <std::size_t W, std::size_t R, std::size_t NV>
inline std::size_t gemm_cols(std::size_t m, std::size_t n, std::size_t N, std::size_t K, const float* A,
                             std::size_t ars, std::size_t acs, const float* B, std::size_t ldb, float* C,
                             std::size_t ldc, Init init, const float* bias) {
  constexpr std::size_t NB = NV * W;
  for (; n + NB <= N; n += NB) {
    float acc[R][NB];
    for (std::size_t r = 0; r < R; ++r)
      for (std::size_t j = 0; j < NB; ++j)
        acc[r][j] = init == Init::Keep ? C[(m + r) * ldc + n + j] : init == Init::Bias ? bias[n + j] : 0.0f;
    for (std::size_t k = 0; k < K; ++k) {
      const float* b = B + k * ldb + n;
      for (std::size_t r = 0; r < R; ++r) {
        const float ar = A[(m + r) * ars + k * acs];
        for (std::size_t j = 0; j < NB; ++j) acc[r][j] += ar * b[j];
      }
    }
    for (std::size_t r = 0; r < R; ++r)
      for (std::size_t j = 0; j < NB; ++j) C[(m + r) * ldc + n + j] = acc[r][j];
  }
  return n;
}
#endif

// Rows m .. m + R - 1 of gemm_e, every column.
template <std::size_t VW, std::size_t R>
inline void gemm_rows(std::size_t m, std::size_t N, std::size_t K, const float* A, std::size_t ars, std::size_t acs,
                      const float* B, std::size_t ldb, float* C, std::size_t ldc, Init init, const float* bias) {
  std::size_t n = 0;
  if (VW >= 16 && R <= 4) n = gemm_cols<16, R, 4>(m, n, N, K, A, ars, acs, B, ldb, C, ldc, init, bias);
  n = gemm_cols<VW, R, 2>(m, n, N, K, A, ars, acs, B, ldb, C, ldc, init, bias);
  n = gemm_cols<VW, R, 1>(m, n, N, K, A, ars, acs, B, ldb, C, ldc, init, bias);
  if (VW > 4) n = gemm_cols<4, R, 1>(m, n, N, K, A, ars, acs, B, ldb, C, ldc, init, bias);
  for (; n < N; ++n) {  // R independent scalar chains
    float s[R];
    for (std::size_t r = 0; r < R; ++r)
      s[r] = init == Init::Keep ? C[(m + r) * ldc + n] : init == Init::Bias ? bias[n] : 0.0f;
    for (std::size_t k = 0; k < K; ++k) {
      const float bk = B[k * ldb + n];
      for (std::size_t r = 0; r < R; ++r) s[r] += A[(m + r) * ars + k * acs] * bk;
    }
    for (std::size_t r = 0; r < R; ++r) C[(m + r) * ldc + n] = s[r];
  }
}

template <std::size_t VW>
inline void gemm_e(std::size_t M, std::size_t N, std::size_t K, const float* A, std::size_t ars, std::size_t acs,
                   const float* B, std::size_t ldb, float* C, std::size_t ldc, Init init, const float* bias = nullptr) {
  std::size_t m = 0;
  // Narrow outputs (a head, a small input layer) get too few accumulators from 4 rows to hide the adds' latency.
  if (N <= 8)
    for (; m + 8 <= M; m += 8) gemm_rows<VW, 8>(m, N, K, A, ars, acs, B, ldb, C, ldc, init, bias);
  for (; m + 4 <= M; m += 4) gemm_rows<VW, 4>(m, N, K, A, ars, acs, B, ldb, C, ldc, init, bias);
  for (; m < M; ++m) gemm_rows<VW, 1>(m, N, K, A, ars, acs, B, ldb, C, ldc, init, bias);
}

// out[C, R] = in[R, C]^T in 8 x 8 tiles.
inline void transpose_tiled(const float* in, std::size_t R, std::size_t C, float* out) {
  for (std::size_t r0 = 0; r0 < R; r0 += 8)
    for (std::size_t c0 = 0; c0 < C; c0 += 8) {
      const std::size_t r1 = std::min(R, r0 + 8), c1 = std::min(C, c0 + 8);
      for (std::size_t c = c0; c < c1; ++c)
        for (std::size_t r = r0; r < r1; ++r) out[c * R + r] = in[r * C + c];
    }
}

// g[O] = sum over the R rows of dz[R, O], in row order.
inline void column_sums(const float* dz, std::size_t R, std::size_t O, float* g) {
  std::fill(g, g + O, 0.0f);
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t o = 0; o < O; ++o) g[o] += dz[r * O + o];
}

// sum_j x_j^2 in double over 16 interleaved partial sums (lane j % 16), added up in lane order: a fixed order that
// vectorises (one running sum is a chain of ~10^4 dependent additions).
inline double sum_squares(const float* x, std::size_t n) {
  constexpr std::size_t L = 16;
  double part[L] = {};
  std::size_t j = 0;
  for (; j + L <= n; j += L)
    for (std::size_t l = 0; l < L; ++l) part[l] += static_cast<double>(x[j + l]) * static_cast<double>(x[j + l]);
  for (std::size_t l = 0; j < n; ++j, ++l) part[l] += static_cast<double>(x[j]) * static_cast<double>(x[j]);
  double s = 0.0;
  for (double p : part) s += p;
  return s;
}
}  // namespace mlp_detail

// The first half of a minibatch of B rows: a fixed split (a multiple of 4 rows), never the thread count's.
inline std::size_t first_half(std::size_t B) { return std::min(B, ((B + 1) / 2 + 3) / 4 * 4); }

// One epoch (see ppo_mlp_epoch below). Each minibatch's rows are split into two fixed halves (first_half): the
// forward pass and the backward pass of each half are independent (two threads when the caller's pool has them,
// else one after the other), the loss gradient needs every row in between, and the second half's parameter gradient
// is added to the first half's in that order, so the result is the same for any thread count. Workspaces are
// allocated once per epoch; the forward products read transposed weight copies made once per optimiser step.
template <std::size_t VW>
class PpoMlpEpoch {
 public:
  // The entry the two threads run (0: the epoch's loop, 1: the helper that takes halves); the bindings pass a
  // function compiled for the caller's instruction set (a lambda would not inherit its target attribute).
  using EntryFn = void (*)(PpoMlpEpoch& e, int what);

  PpoMlpEpoch(const PpoMlpShape& sh, const PpoMlpEpochArgs& ea, float* params, float* grad, float* exp_avg,
              float* exp_avg_sq, const float* obs, const int64_t* actions_i, const float* actions_f,
              const float* old_logp, const float* adv, const float* returns, const float* old_values, double* stats)
      : sh_(sh),
        ea_(ea),
        params_(params),
        grad_(grad),
        exp_avg_(exp_avg),
        exp_avg_sq_(exp_avg_sq),
        obs_(obs),
        actions_i_(actions_i),
        actions_f_(actions_f),
        old_logp_(old_logp),
        adv_(adv),
        returns_(returns),
        old_values_(old_values),
        stats_(stats) {
    const std::size_t L = sh.depth(), H = sh.hidden(), A = sh.A, mb = ea.mb;
    offW_.resize(L), offb_.resize(L), offWt_.resize(L), hs_.resize(L);
    std::size_t off = 0, offt = 0, maxh = 0, maxw = 0;
    for (std::size_t k = 0; k < L; ++k) {
      const std::size_t i = sh.sizes[k], o = sh.sizes[k + 1];
      offW_[k] = off, off += 2 * o * i;
      offb_[k] = off, off += 2 * o;
      offWt_[k] = offt, offt += 2 * o * i;
      maxh = std::max(maxh, o);
      maxw = std::max(maxw, i * o);
      hs_[k].resize(2 * mb * o);
    }
    offPW_ = off, offPb_ = off + A * H, offVW_ = offPb_ + A, offVb_ = offVW_ + H, offLS_ = offVb_ + 1;
    offPWt_ = offt;
    wt_.resize(offt + A * H);
    head_.resize(mb * A), values_.resize(mb), dhead_.resize(mb * A), dvalues_.resize(mb);
    for (std::size_t s = 0; s < 2; ++s) dh_[s].resize(mb * maxh), dz_[s].resize(mb * maxh), gwt_[s].resize(maxw);
    g1_.assign(sh.num_params(), 0.0f);
  }

  // Runs the epoch: on the calling thread alone when pool has fewer than two threads (or is nullptr), else as the
  // loop on the calling thread and a helper on one of the pool's (through fn).
  PpoMlpEpochResult run(EntryFn fn, ThreadPool* pool) {
    if (pool == nullptr || pool->num_threads() < 2) return loop(false);
    pool->parallel_for(2, [&](std::size_t i) { fn(*this, static_cast<int>(i)); }, ThreadPool::Schedule::Static);
    return result_;
  }

  void entry(int what) {
    if (what == 1) {
      helper();
      return;
    }
    // Whatever happens, the helper is told to stop (it would otherwise wait for work forever).
    struct Stop {
      std::atomic<std::uint64_t>& state;
      ~Stop() { state.store(kStop, std::memory_order_release); }
    } stop{state_};
    result_ = loop(true);
  }

  // Phase 0: the forward pass of one half's rows; phase 1: its backward pass (half 0 into grad, half 1 into its
  // own buffer).
  void half(int phase, std::size_t s) {
    const std::size_t r0 = s == 0 ? 0 : split_, r1 = s == 0 ? split_ : B_;
    if (phase == 0)
      forward(r0, r1);
    else
      backward(r0, r1, s == 0 ? grad_ : g1_.data(), dh_[s].data(), dz_[s].data(), gwt_[s].data());
  }

 private:
  // The hand-off of halves between the loop and the helper: state_ = generation << 3 | phase << 2 | halves claimed
  // (0-2), kStop
  // at the end. Whoever claims a half (compare-and-swap) computes it, so the loop takes both when the helper is late
  // (a descheduled thread never holds the minibatch up unless it is inside a half), and waits only for a half the
  // helper has claimed. Which thread computes a half does not change its result.
  static constexpr std::uint64_t kStop = ~std::uint64_t(0);

  // The phase travels in state_ with its generation: a helper that saw generation g never reads the phase of a
  // later one (a separate phase_ field, rewritten by the loop for g + 1 while a late helper read it, was a data race
  // that ThreadSanitizer reported, harmless only because g's halves were all claimed by then).
  void claim_and_run(std::uint64_t gen) {
    std::uint64_t s = state_.load(std::memory_order_acquire);
    while ((s >> 3) == gen && (s & 3) < 2) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        half(static_cast<int>((s >> 2) & 1), static_cast<std::size_t>(s & 3));
        done_.fetch_add(1, std::memory_order_release);
        s = state_.load(std::memory_order_acquire);
      }
    }
  }

  void helper() {
    std::uint64_t seen = 0;
    for (int spins = 0;;) {
      const std::uint64_t s = state_.load(std::memory_order_acquire);
      if (s == kStop) return;
      if ((s >> 3) != seen) {
        seen = s >> 3;
        claim_and_run(seen);
        spins = 0;
      } else if (++spins < 4000) {
        RLTRAIN_PAUSE();
      } else {
        std::this_thread::yield();
      }
    }
  }

  // Both halves of one phase of the current minibatch, in turn or shared with the helper.
  void both(int phase, bool shared) {
    if (!shared) {
      half(phase, 0), half(phase, 1);
      return;
    }
    done_.store(0, std::memory_order_relaxed);
    ++gen_;
    state_.store(gen_ << 3 | static_cast<std::uint64_t>(phase) << 2, std::memory_order_release);
    claim_and_run(gen_);
    for (int spins = 0; done_.load(std::memory_order_acquire) < 2; ++spins) {
      if (spins < 4000)
        RLTRAIN_PAUSE();
      else
        std::this_thread::yield();
    }
  }

  PpoMlpEpochResult loop(bool shared) {
    const std::size_t A = sh_.A, P = sh_.num_params(), mb = ea_.mb;
    PpoMlpEpochResult res;
    double t = ea_.adam_step;
    const float b1 = static_cast<float>(ea_.beta1), b2 = static_cast<float>(ea_.beta2);
    const float c1 = 1.0f - b1, c2 = 1.0f - b2, eps = static_cast<float>(ea_.eps);
    transpose_weights();
    std::size_t row = 0;
    for (std::size_t start = 0; start < ea_.n; start += mb, ++row) {
      const std::size_t B = std::min(mb, ea_.n - start);
      start_ = start, B_ = B, split_ = first_half(B);
      both(0, shared);
      // The loss gradient w.r.t. the head outputs and the values, over the whole minibatch.
      PpoLossArgs la = ea_.loss;
      la.B = B, la.A = A;
      PpoLossStats st;
      if (sh_.gaussian)
        st = ppo_loss_grad_gaussian<float>(la, head_.data(), params_ + offLS_, actions_f_ + start * A,
                                           old_logp_ + start, adv_ + start, returns_ + start, values_.data(),
                                           old_values_ + start, dhead_.data(), grad_ + offLS_, dvalues_.data());
      else
        st = ppo_loss_grad_discrete<float>(la, head_.data(), actions_i_ + start, old_logp_ + start, adv_ + start,
                                           returns_ + start, values_.data(), old_values_ + start, dhead_.data(),
                                           dvalues_.data());
      double* srow = stats_ + row * 5;
      srow[0] = st.pg_loss, srow[1] = st.value_loss, srow[2] = -st.entropy, srow[3] = st.approx_kl;
      srow[4] = st.clip_fraction;
      if (ea_.target_kl >= 0.0 && st.approx_kl > 1.5 * ea_.target_kl) {
        res.stopped = true;
        return res;
      }
      both(1, shared);
      // The halves' gradients (the log-std's, from the loss, is whole already), then global gradient-norm clipping
      // (torch.nn.utils.clip_grad_norm_'s coefficient) and Adam (torch.optim.Adam).
      for (std::size_t j = 0; j < offLS_; ++j) grad_[j] += g1_[j];
      if (ea_.max_grad_norm > 0.0) {
        const float norm = static_cast<float>(std::sqrt(mlp_detail::sum_squares(grad_, P)));
        const float coef = std::min(static_cast<float>(ea_.max_grad_norm) / (norm + 1e-6f), 1.0f);
        for (std::size_t j = 0; j < P; ++j) grad_[j] *= coef;
      }
      t += 1.0;
      const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(ea_.beta2, t)));
      const float step = static_cast<float>(-ea_.lr / (1.0 - std::pow(ea_.beta1, t)));
      for (std::size_t j = 0; j < P; ++j) {
        const float g = grad_[j];
        const float m = exp_avg_[j] + c1 * (g - exp_avg_[j]);
        const float v = exp_avg_sq_[j] * b2 + c2 * g * g;
        exp_avg_[j] = m, exp_avg_sq_[j] = v;
        params_[j] += step * (m / (std::sqrt(v) / bc2_sqrt + eps));
      }
      ++res.steps;
      transpose_weights();
    }
    return res;
  }

  void transpose_weights() {
    for (std::size_t k = 0; k < sh_.depth(); ++k) {
      const std::size_t i = sh_.sizes[k], o = sh_.sizes[k + 1];
      for (std::size_t tr = 0; tr < 2; ++tr)
        mlp_detail::transpose_tiled(params_ + offW_[k] + tr * o * i, o, i, wt_.data() + offWt_[k] + tr * o * i);
    }
    mlp_detail::transpose_tiled(params_ + offPW_, sh_.A, sh_.hidden(), wt_.data() + offPWt_);
  }

  // Rows [r0, r1) of the current minibatch: both trunks, the policy head's outputs and the values.
  void forward(std::size_t r0, std::size_t r1) {
    using mlp_detail::Init;
    const std::size_t L = sh_.depth(), H = sh_.hidden(), A = sh_.A, D = sh_.sizes[0], mb = ea_.mb, R = r1 - r0;
    for (std::size_t tr = 0; tr < 2; ++tr) {
      const float* in = obs_ + (start_ + r0) * D;
      for (std::size_t k = 0; k < L; ++k) {
        const std::size_t i = sh_.sizes[k], o = sh_.sizes[k + 1];
        float* out = hs_[k].data() + tr * mb * o + r0 * o;
        mlp_detail::gemm_e<VW>(R, o, i, in, i, 1, wt_.data() + offWt_[k] + tr * o * i, o, out, o, Init::Bias,
                               params_ + offb_[k] + tr * o);
        mlp_detail::activate(out, R * o, sh_.relu);
        in = out;
      }
    }
    const float* ha = hs_[L - 1].data() + r0 * H;
    const float* hv = hs_[L - 1].data() + mb * H + r0 * H;
    mlp_detail::gemm_e<VW>(R, A, H, ha, H, 1, wt_.data() + offPWt_, A, head_.data() + r0 * A, A, Init::Bias,
                           params_ + offPb_);
    // The value head's weight [1, H] read as a column [H, 1].
    mlp_detail::gemm_e<VW>(R, 1, H, hv, H, 1, params_ + offVW_, 1, values_.data() + r0, 1, Init::Bias,
                           params_ + offVb_);
  }

  // Rows [r0, r1): the parameter gradient of their part of the loss into g (every parameter but the log-std),
  // dh, dz and gwt: this half's workspaces.
  void backward(std::size_t r0, std::size_t r1, float* g, float* dh, float* dz, float* gwt) {
    using mlp_detail::Init;
    const std::size_t L = sh_.depth(), H = sh_.hidden(), A = sh_.A, D = sh_.sizes[0], mb = ea_.mb, R = r1 - r0;
    const float* ha = hs_[L - 1].data() + r0 * H;
    const float* hv = hs_[L - 1].data() + mb * H + r0 * H;
    const float* dhead = dhead_.data() + r0 * A;
    const float* dv = dvalues_.data() + r0;
    // Heads: gW[A, H] = dhead^T h (dhead read transposed), gb = column sums.
    mlp_detail::gemm_e<VW>(A, H, R, dhead, 1, A, ha, H, g + offPW_, H, Init::Zero);
    mlp_detail::column_sums(dhead, R, A, g + offPb_);
    mlp_detail::gemm_e<VW>(1, H, R, dv, 1, 1, hv, H, g + offVW_, H, Init::Zero);
    mlp_detail::column_sums(dv, R, 1, g + offVb_);
    for (std::size_t tr = 0; tr < 2; ++tr) {
      if (tr == 0)
        mlp_detail::gemm_e<VW>(R, H, A, dhead, A, 1, params_ + offPW_, H, dh, H, Init::Zero);
      else
        mlp_detail::gemm_e<VW>(R, H, 1, dv, 1, 1, params_ + offVW_, H, dh, H, Init::Zero);
      for (std::size_t k = L; k-- > 0;) {
        const std::size_t i = sh_.sizes[k], o = sh_.sizes[k + 1];
        const float* h_out = hs_[k].data() + tr * mb * o + r0 * o;
        const float* h_in = k == 0 ? obs_ + (start_ + r0) * D : hs_[k - 1].data() + tr * mb * i + r0 * i;
        mlp_detail::activate_grad(dh, h_out, R * o, sh_.relu, dz);
        if (i < o) {  // gW^T [i, o] = h_in^T dz (wider blocks), then transposed: the same sums in the same order
          mlp_detail::gemm_e<VW>(i, o, R, h_in, 1, i, dz, o, gwt, o, Init::Zero);
          mlp_detail::transpose_tiled(gwt, i, o, g + offW_[k] + tr * o * i);
        } else {
          mlp_detail::gemm_e<VW>(o, i, R, dz, 1, o, h_in, i, g + offW_[k] + tr * o * i, i, Init::Zero);
        }
        mlp_detail::column_sums(dz, R, o, g + offb_[k] + tr * o);
        if (k > 0) mlp_detail::gemm_e<VW>(R, i, o, dz, o, 1, params_ + offW_[k] + tr * o * i, i, dh, i, Init::Zero);
      }
    }
  }

  const PpoMlpShape& sh_;
  const PpoMlpEpochArgs& ea_;
  float *params_, *grad_, *exp_avg_, *exp_avg_sq_;
  const float* obs_;
  const int64_t* actions_i_;
  const float *actions_f_, *old_logp_, *adv_, *returns_, *old_values_;
  double* stats_;
  std::vector<std::size_t> offW_, offb_, offWt_;
  std::size_t offPW_ = 0, offPb_ = 0, offVW_ = 0, offVb_ = 0, offLS_ = 0, offPWt_ = 0;
  std::vector<std::vector<float>> hs_;  // hs_[k]: output of hidden layer k, [2, mb, sizes[k + 1]]
  std::vector<float> wt_;               // transposed weights: per layer [2, in, out], then the policy head [H, A]
  std::vector<float> head_, values_, dhead_, dvalues_, g1_;
  std::vector<float> dh_[2], dz_[2], gwt_[2];  // per half
  std::size_t start_ = 0, B_ = 0, split_ = 0;
  std::uint64_t gen_ = 0;
  std::atomic<std::uint64_t> state_{0};
  std::atomic<int> done_{0};
  PpoMlpEpochResult result_;
};

template <std::size_t VW>
inline void ppo_mlp_entry(PpoMlpEpoch<VW>& e, int what) {
  e.entry(what);
}

// Runs the epoch. obs [n, obs_dim], actions [n] (int64, categorical) or [n, A] (float, Gaussian; pass it as
// actions_f), old_logp/adv/returns/old_values [n]; params, grad, exp_avg, exp_avg_sq [num_params]; stats
// [ceil(n / mb), 5] receives per minibatch (pg_loss, value_loss, -entropy, approx_kl, clip_fraction). VW: see gemm_e;
// pool: the two halves run on two of its threads when it has them, else in turn (nullptr: in turn). The result
// depends on neither.
template <std::size_t VW = 4>
inline PpoMlpEpochResult ppo_mlp_epoch(const PpoMlpShape& sh, const PpoMlpEpochArgs& ea, float* params, float* grad,
                                       float* exp_avg, float* exp_avg_sq, const float* obs, const int64_t* actions_i,
                                       const float* actions_f, const float* old_logp, const float* adv,
                                       const float* returns, const float* old_values, double* stats,
                                       ThreadPool* pool = nullptr) {
  PpoMlpEpoch<VW> e(sh, ea, params, grad, exp_avg, exp_avg_sq, obs, actions_i, actions_f, old_logp, adv, returns,
                    old_values, stats);
  return e.run(&ppo_mlp_entry<VW>, pool);
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
