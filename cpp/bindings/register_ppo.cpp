// pybind11 registration of the PPO loss-gradient kernel: check shapes and dtypes, release the GIL, call C++.
#include <pybind11/stl.h>

#include <cmath>

#include "checks.hpp"
#include "rltrain/kernel_pool.hpp"
#include "rltrain/ppo_loss.hpp"
#include "rltrain/ppo_mlp.hpp"

namespace rltrain::bind {

namespace {

py::tuple ppo_loss_grad(py::object head_o, py::object actions_o, py::object old_logp_o, py::object adv_o,
                        py::object returns_o, py::object values_o, py::object old_values_o, double clip, double clip_vf,
                        double ent_coef, double vf_coef, py::object dhead_o, py::object dvalues_o, py::object log_std_o,
                        py::object dlog_std_o, bool normalize_adv) {
  py::array head = as_array(head_o, "head");
  const Kind fk = require_float_array(head, "head", 2, "[B, A]");
  const py::ssize_t B = head.shape(0), A = head.shape(1);
  const bool gaussian = !log_std_o.is_none();
  py::array actions = as_array(actions_o, "actions");
  if (gaussian) {
    require_float(actions, "actions", fk);
    require_shape(actions, "actions", {B, A});
  } else {
    if (kind_of(actions) != Kind::I64) throw py::type_error("actions: expected dtype int64, got " + dtype_str(actions));
    require_shape(actions, "actions", {B});
    // A private copy: the range check below must hold for what the kernel reads after the GIL is released.
    actions = py::array(actions.attr("copy")());
    const int64_t* ap = cptr<int64_t>(actions);
    for (py::ssize_t i = 0; i < B; ++i)
      if (ap[i] < 0 || ap[i] >= A)
        throw py::value_error("actions: expected integers in [0, " + std::to_string(A) + "), got " +
                              std::to_string(ap[i]) + " at index " + std::to_string(i));
  }
  py::array vecs[5];
  const char* names[5] = {"old_logp", "adv", "returns", "values", "old_values"};
  py::object objs[5] = {old_logp_o, adv_o, returns_o, values_o, old_values_o};
  for (int k = 0; k < 5; ++k) {
    vecs[k] = as_array(objs[k], names[k]);
    require_float(vecs[k], names[k], fk);
    require_shape(vecs[k], names[k], {B});
  }
  py::array dhead = as_array(dhead_o, "dhead");
  require_float(dhead, "dhead", fk);
  require_shape(dhead, "dhead", {B, A});
  require_writable(dhead, "dhead");
  py::array dvalues = as_array(dvalues_o, "dvalues");
  require_float(dvalues, "dvalues", fk);
  require_shape(dvalues, "dvalues", {B});
  require_writable(dvalues, "dvalues");
  py::array log_std, dlog_std;
  if (gaussian) {
    log_std = as_array(log_std_o, "log_std");
    require_float(log_std, "log_std", fk);
    require_shape(log_std, "log_std", {A});
    dlog_std = as_array(dlog_std_o, "dlog_std");
    require_float(dlog_std, "dlog_std", fk);
    require_shape(dlog_std, "dlog_std", {A});
    require_writable(dlog_std, "dlog_std");
  }
  if (!std::isfinite(clip) || clip < 0) throw py::value_error("clip: expected a finite number >= 0");
  if (std::isnan(clip_vf)) throw py::value_error("clip_vf: expected a number (< 0 disables value clipping)");
  PpoLossArgs args;
  args.B = B, args.A = A, args.clip = clip, args.clip_vf = clip_vf, args.ent_coef = ent_coef, args.vf_coef = vf_coef;
  args.normalize_adv = normalize_adv;
  PpoLossStats st;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* v[5];
    for (int k = 0; k < 5; ++k) v[k] = cptr<T>(vecs[k]);
    py::gil_scoped_release nogil;
    if (gaussian)
      st = ppo_loss_grad_gaussian<T>(args, cptr<T>(head), cptr<T>(log_std), cptr<T>(actions), v[0], v[1], v[2], v[3],
                                     v[4], mptr<T>(dhead), mptr<T>(dlog_std), mptr<T>(dvalues));
    else
      st = ppo_loss_grad_discrete<T>(args, cptr<T>(head), cptr<int64_t>(actions), v[0], v[1], v[2], v[3], v[4],
                                     mptr<T>(dhead), mptr<T>(dvalues));
  };
  if (fk == Kind::F32)
    run(float{});
  else
    run(double{});
  return py::make_tuple(st.pg_loss, st.value_loss, st.entropy, st.approx_kl, st.clip_fraction);
}

// The epoch compiled for the build's baseline ISA and, on x86-64 with GCC or Clang, for AVX2 and AVX-512 (8 and 16
// floats per vector instead of 4), chosen at run time; flatten inlines the whole call tree into each copy, and the
// threads' entry (called from the kernel pool's threads through a pointer) is compiled for the same ISA. All
// copies compute the same operations in the same order (-ffp-contract=off: no fused multiply-adds), so they agree
// bitwise.
struct EpochCall {
  const PpoMlpShape& sh;
  const PpoMlpEpochArgs& ea;
  float *p, *g, *m, *v;
  const float* obs;
  const int64_t* ai;
  const float *af, *olp, *adv, *ret, *ov;
  double* stats;
};

template <std::size_t VW>
PpoMlpEpochResult epoch_run(const EpochCall& c, ThreadPool* pool, typename PpoMlpEpoch<VW>::EntryFn entry) {
  PpoMlpEpoch<VW> e(c.sh, c.ea, c.p, c.g, c.m, c.v, c.obs, c.ai, c.af, c.olp, c.adv, c.ret, c.ov, c.stats);
  return e.run(entry, pool);
}

void entry_baseline(PpoMlpEpoch<4>& e, int what) { e.entry(what); }

PpoMlpEpochResult epoch_baseline(const EpochCall& c, ThreadPool* pool) { return epoch_run<4>(c, pool, entry_baseline); }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RLTRAIN_MLP_X86 1
// Sanitizer builds leave flatten out: inlining the whole instrumented call tree into each copy made this file take
// over 5 CPU minutes to compile under ASan + UBSan (72 s without). Those builds look for memory errors and races;
// their copies call the same functions compiled for the baseline (the same operations, so the same bits).
#if defined(RLTRAIN_SANITIZED) || defined(RLTRAIN_TSAN)
#define RLTRAIN_MLP_CLONE(isa) __attribute__((target(isa)))
#else
#define RLTRAIN_MLP_CLONE(isa) __attribute__((target(isa), flatten))
#endif
RLTRAIN_MLP_CLONE("avx2") void entry_avx2(PpoMlpEpoch<8>& e, int what) { e.entry(what); }

RLTRAIN_MLP_CLONE("avx2") PpoMlpEpochResult epoch_avx2(const EpochCall& c, ThreadPool* pool) {
  return epoch_run<8>(c, pool, entry_avx2);
}

RLTRAIN_MLP_CLONE("avx512f") void entry_avx512(PpoMlpEpoch<16>& e, int what) { e.entry(what); }

RLTRAIN_MLP_CLONE("avx512f") PpoMlpEpochResult epoch_avx512(const EpochCall& c, ThreadPool* pool) {
  return epoch_run<16>(c, pool, entry_avx512);
}
#endif

void act_baseline(const PpoMlpShape& sh, const float* p, const float* obs, std::size_t B, const float* noise,
                  int64_t* ai, float* af, float* v, float* lp) {
  mlp_act<4>(sh, p, obs, B, noise, ai, af, v, lp);
}

#ifdef RLTRAIN_MLP_X86
RLTRAIN_MLP_CLONE("avx2")
void act_avx2(const PpoMlpShape& sh, const float* p, const float* obs, std::size_t B, const float* noise, int64_t* ai,
              float* af, float* v, float* lp) {
  mlp_act<8>(sh, p, obs, B, noise, ai, af, v, lp);
}

RLTRAIN_MLP_CLONE("avx512f")
void act_avx512(const PpoMlpShape& sh, const float* p, const float* obs, std::size_t B, const float* noise, int64_t* ai,
                float* af, float* v, float* lp) {
  mlp_act<16>(sh, p, obs, B, noise, ai, af, v, lp);
}
#endif

py::array checked_vec(py::object o, const char* name, py::ssize_t n, bool writable) {
  py::array a = as_array(o, name);
  require_float(a, name, Kind::F32);
  require_shape(a, name, {n});
  if (writable) require_writable(a, name);
  return a;
}

py::tuple ppo_mlp_epoch_py(py::object params_o, py::object grad_o, py::object exp_avg_o, py::object exp_avg_sq_o,
                           std::vector<py::ssize_t> sizes, py::ssize_t n_actions, const std::string& activation,
                           bool gaussian, py::object obs_o, py::object actions_o, py::object old_logp_o,
                           py::object adv_o, py::object returns_o, py::object old_values_o, py::ssize_t minibatch,
                           double clip, double clip_vf, double ent_coef, double vf_coef, bool normalize_adv,
                           double max_grad_norm, double target_kl, double lr, double beta1, double beta2, double eps,
                           double adam_step, py::object stats_o, bool vectorized, const std::string& isa, int threads,
                           py::ssize_t epochs) {
  if (sizes.size() < 2) throw py::value_error("sizes: expected [obs_dim, hidden_1, ..., hidden_L] with L >= 1");
  for (py::ssize_t s : sizes)
    if (s < 1) throw py::value_error("sizes: expected positive layer sizes");
  if (n_actions < 1) throw py::value_error("n_actions: expected a positive integer");
  if (activation != "tanh" && activation != "relu")
    throw py::value_error("activation: expected 'tanh' or 'relu', got '" + activation + "'");
  if (minibatch < 1) throw py::value_error("minibatch: expected a positive integer");
  if (epochs < 1) throw py::value_error("epochs: expected a positive integer");
  if (!std::isfinite(clip) || clip < 0) throw py::value_error("clip: expected a finite number >= 0");
  if (std::isnan(clip_vf)) throw py::value_error("clip_vf: expected a number (< 0 disables value clipping)");
  bool isa_ok = isa == "auto" || isa == "baseline";
#ifdef RLTRAIN_MLP_X86
  isa_ok = isa_ok || (isa == "avx2" && __builtin_cpu_supports("avx2")) ||
           (isa == "avx512" && __builtin_cpu_supports("avx512f"));
#endif
  if (threads != 1 && threads != 2) throw py::value_error("threads: expected 1 or 2, got " + std::to_string(threads));
  if (!isa_ok)
    throw py::value_error(
        "isa: expected 'auto', 'baseline' or an instruction set this CPU has ('avx2', 'avx512'), got '" + isa + "'");
  if (!(lr >= 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0) || !(adam_step >= 0))
    throw py::value_error("lr, beta1, beta2, eps, adam_step: expected lr >= 0, betas in [0, 1), eps > 0, step >= 0");
  PpoMlpShape sh;
  for (py::ssize_t s : sizes) sh.sizes.push_back(static_cast<std::size_t>(s));
  sh.A = static_cast<std::size_t>(n_actions), sh.relu = activation == "relu", sh.gaussian = gaussian;
  const auto P = static_cast<py::ssize_t>(sh.num_params());
  py::array params = checked_vec(params_o, "params", P, true), grad = checked_vec(grad_o, "grad", P, true);
  py::array m = checked_vec(exp_avg_o, "exp_avg", P, true), v = checked_vec(exp_avg_sq_o, "exp_avg_sq", P, true);
  py::array obs = as_array(obs_o, "obs");
  require_float_array(obs, "obs", 2, "[n, obs_dim]");
  require_float(obs, "obs", Kind::F32);
  const py::ssize_t n = obs.shape(0);
  require_shape(obs, "obs", {n, sizes[0]});
  py::array actions = as_array(actions_o, "actions");
  if (gaussian) {
    require_float(actions, "actions", Kind::F32);
    require_shape(actions, "actions", {n, n_actions});
  } else {
    if (kind_of(actions) != Kind::I64) throw py::type_error("actions: expected dtype int64, got " + dtype_str(actions));
    require_shape(actions, "actions", {n});
    const int64_t* ap = cptr<int64_t>(actions);
    for (py::ssize_t i = 0; i < n; ++i)
      if (ap[i] < 0 || ap[i] >= n_actions)
        throw py::value_error("actions: expected integers in [0, " + std::to_string(n_actions) + "), got " +
                              std::to_string(ap[i]) + " at index " + std::to_string(i));
  }
  py::array olp = checked_vec(old_logp_o, "old_logp", n, false), adv = checked_vec(adv_o, "adv", n, false);
  py::array ret = checked_vec(returns_o, "returns", n, false), ov = checked_vec(old_values_o, "old_values", n, false);
  py::array stats = as_array(stats_o, "stats");
  if (kind_of(stats) != Kind::F64) throw py::type_error("stats: expected dtype float64, got " + dtype_str(stats));
  const py::ssize_t rows = (n + minibatch - 1) / minibatch;
  require_shape(stats, "stats", {epochs * rows, 5});
  require_writable(stats, "stats");
  PpoMlpEpochArgs ea;
  ea.loss.clip = clip, ea.loss.clip_vf = clip_vf, ea.loss.ent_coef = ent_coef, ea.loss.vf_coef = vf_coef;
  ea.loss.normalize_adv = normalize_adv;
  ea.n = static_cast<std::size_t>(n), ea.mb = static_cast<std::size_t>(minibatch);
  ea.max_grad_norm = max_grad_norm, ea.target_kl = target_kl;
  ea.lr = lr, ea.beta1 = beta1, ea.beta2 = beta2, ea.eps = eps, ea.adam_step = adam_step;
  PpoMlpEpochResult r;
  {
    const int64_t* ai = gaussian ? nullptr : cptr<int64_t>(actions);
    const float* af = gaussian ? cptr<float>(actions) : nullptr;
    auto fn = epoch_baseline;
#ifdef RLTRAIN_MLP_X86
    if (isa == "avx512" || (isa == "auto" && vectorized && __builtin_cpu_supports("avx512f")))
      fn = epoch_avx512;
    else if (isa == "avx2" || (isa == "auto" && vectorized && __builtin_cpu_supports("avx2")))
      fn = epoch_avx2;
#else
    (void)vectorized;
#endif
    // threads=2: the halves on two of the kernel pool's threads when it has them (held for the call).
    const std::shared_ptr<ThreadPool> pool = threads == 2 ? kernel_pool() : nullptr;
    py::gil_scoped_release nogil;
    // epochs > 1: the same samples again (the caller's unshuffled single-minibatch case), Adam's step count
    // carried on, stats rows epoch after epoch; a KL early stop ends the call.
    for (py::ssize_t e = 0; e < epochs && !r.stopped; ++e) {
      PpoMlpEpochArgs ea_e = ea;
      ea_e.adam_step = adam_step + static_cast<double>(r.steps);
      const EpochCall c{sh,
                        ea_e,
                        mptr<float>(params),
                        mptr<float>(grad),
                        mptr<float>(m),
                        mptr<float>(v),
                        cptr<float>(obs),
                        ai,
                        af,
                        cptr<float>(olp),
                        cptr<float>(adv),
                        cptr<float>(ret),
                        cptr<float>(ov),
                        mptr<double>(stats) + static_cast<std::size_t>(e * rows * 5)};
      const PpoMlpEpochResult re = fn(c, pool.get());
      r.steps += re.steps;
      r.stopped = re.stopped;
    }
  }
  return py::make_tuple(static_cast<py::ssize_t>(r.steps), r.stopped);
}

py::tuple mlp_act_py(py::object params_o, std::vector<py::ssize_t> sizes, py::ssize_t n_actions,
                     const std::string& activation, py::object obs_o, py::object u_o, py::object actions_o,
                     py::object values_o, py::object logp_o, bool vectorized, bool gaussian, bool critic) {
  if (sizes.size() < 2) throw py::value_error("sizes: expected [obs_dim, hidden_1, ..., hidden_L] with L >= 1");
  for (py::ssize_t s : sizes)
    if (s < 1) throw py::value_error("sizes: expected positive layer sizes");
  if (n_actions < 1) throw py::value_error("n_actions: expected a positive integer");
  if (activation != "tanh" && activation != "relu")
    throw py::value_error("activation: expected 'tanh' or 'relu', got '" + activation + "'");
  PpoMlpShape sh;
  for (py::ssize_t s : sizes) sh.sizes.push_back(static_cast<std::size_t>(s));
  sh.A = static_cast<std::size_t>(n_actions), sh.relu = activation == "relu", sh.gaussian = gaussian;
  sh.critic = critic;
  py::array params = checked_vec(params_o, "params", static_cast<py::ssize_t>(sh.num_params()), false);
  py::array obs = as_array(obs_o, "obs");
  require_float_array(obs, "obs", 2, "[B, obs_dim]");
  require_float(obs, "obs", Kind::F32);
  const py::ssize_t B = obs.shape(0);
  require_shape(obs, "obs", {B, sizes[0]});
  // Noise: one uniform per row (categorical) or one standard normal per action dimension (Gaussian); None: the
  // deterministic action.
  const std::vector<py::ssize_t> a_shape = gaussian ? std::vector<py::ssize_t>{B, n_actions} : std::vector{B};
  py::array u;
  if (!u_o.is_none()) {
    u = as_array(u_o, "u");
    require_float(u, "u", Kind::F32);
    require_shape(u, "u", a_shape);
  }
  py::array actions = as_array(actions_o, "actions");
  if (gaussian) {
    require_float(actions, "actions", Kind::F32);
  } else if (kind_of(actions) != Kind::I64) {
    throw py::type_error("actions: expected dtype int64, got " + dtype_str(actions));
  }
  require_shape(actions, "actions", a_shape);
  require_writable(actions, "actions");
  py::array values;
  if (critic) {
    values = checked_vec(values_o, "values", B, true);
  } else if (!values_o.is_none()) {
    throw py::value_error("values: expected None for an actor-only network (critic=False)");
  }
  py::array logp = checked_vec(logp_o, "logp", B, true);
  auto fn = act_baseline;
#ifdef RLTRAIN_MLP_X86
  if (vectorized && __builtin_cpu_supports("avx512f"))
    fn = act_avx512;
  else if (vectorized && __builtin_cpu_supports("avx2"))
    fn = act_avx2;
#else
  (void)vectorized;
#endif
  {
    const float* noise = u_o.is_none() ? nullptr : cptr<float>(u);
    int64_t* ai = gaussian ? nullptr : mptr<int64_t>(actions);
    float* af = gaussian ? mptr<float>(actions) : nullptr;
    float* v = critic ? mptr<float>(values) : nullptr;
    py::gil_scoped_release nogil;
    fn(sh, cptr<float>(params), cptr<float>(obs), static_cast<std::size_t>(B), noise, ai, af, v, mptr<float>(logp));
  }
  return py::make_tuple(actions, critic ? py::object(values) : py::object(py::none()), logp);
}

}  // namespace

void register_ppo(py::module_& m) {
  m.def("ppo_loss_grad", &ppo_loss_grad, py::arg("head"), py::arg("actions"), py::arg("old_logp"), py::arg("adv"),
        py::arg("returns"), py::arg("values"), py::arg("old_values"), py::arg("clip"), py::arg("clip_vf"),
        py::arg("ent_coef"), py::arg("vf_coef"), py::arg("dhead"), py::arg("dvalues"), py::arg("log_std") = py::none(),
        py::arg("dlog_std") = py::none(), py::arg("normalize_adv") = false,
        "PPO loss statistics (pg, value, entropy, approx_kl, clip_fraction) and the gradient of SB3's loss with "
        "respect to the policy head outputs and the values, written into dhead/dvalues (and dlog_std).");
  m.def("mlp_act", &mlp_act_py, py::arg("params"), py::arg("sizes"), py::arg("n_actions"), py::arg("activation"),
        py::arg("obs"), py::arg("u"), py::arg("actions"), py::arg("values"), py::arg("logp"),
        py::arg("vectorized") = true, py::arg("gaussian") = false, py::arg("critic") = true,
        "Rollout forward pass of the fused MLP actor-critic (critic=False: an actor alone) on flat float32 "
        "parameters, each row computed on its own (no dependence on the batch size). Categorical head: actions "
        "[B] by inverse CDF from one uniform per row (u [B]; None: argmax). Gaussian head (gaussian=True): actions "
        "[B, A] = mean + exp(log_std) * u with u [B, A] standard normals (None: the mean). Values (None without a "
        "critic) and log-probabilities are written into values/logp; returns (actions, values, logp).");
  m.def("ppo_mlp_epoch", &ppo_mlp_epoch_py, py::arg("params"), py::arg("grad"), py::arg("exp_avg"),
        py::arg("exp_avg_sq"), py::arg("sizes"), py::arg("n_actions"), py::arg("activation"), py::arg("gaussian"),
        py::arg("obs"), py::arg("actions"), py::arg("old_logp"), py::arg("adv"), py::arg("returns"),
        py::arg("old_values"), py::arg("minibatch"), py::arg("clip"), py::arg("clip_vf"), py::arg("ent_coef"),
        py::arg("vf_coef"), py::arg("normalize_adv"), py::arg("max_grad_norm"), py::arg("target_kl"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("adam_step"), py::arg("stats"),
        py::arg("vectorized") = true, py::arg("isa") = "auto", py::arg("threads") = 1, py::arg("epochs") = 1,
        "One PPO epoch of rltrain's fused MLP actor-critic over already shuffled samples (forward, loss gradient, "
        "backward, gradient-norm clipping, Adam per minibatch) on the flat float32 buffers, in place. Returns "
        "(optimiser steps taken, whether the KL early stop fired); stats rows get (pg, vf, -entropy, kl, clipfrac). "
        "threads=2 runs each minibatch's two fixed row halves on two kernel-pool threads (when set_num_threads >= "
        "2); the result is the same for either and for any isa ('auto': the best this CPU has, or 'baseline' when "
        "vectorized=False; 'baseline', 'avx2', 'avx512': that copy). epochs > 1 repeats the epoch over the same "
        "samples (stats then has epochs * minibatches rows) and stops at a KL early stop.");
}

}  // namespace rltrain::bind
