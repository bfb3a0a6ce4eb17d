// pybind11 registration of the numeric kernels: check dtype/shape/contiguity, release the GIL, call the C++.
// Python wrappers in rltrain.kernels do the friendly conversions (torch, non-contiguous, out=) first.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "checks.hpp"
#include "rltrain/gae.hpp"
#include "rltrain/group_advantage.hpp"
#include "rltrain/kernel_pool.hpp"
#include "rltrain/running_stats.hpp"

namespace rltrain::bind {

namespace {

template <typename T, typename FD, typename FT>
void run_gae(GaeArgs<T, FD, FT> a) {
  split_columns(a.T_len, a.N, [&](std::size_t b, std::size_t e) { gae_columns(a, b, e); });
}

template <typename T, typename FD>
void dispatch_gae_term(GaeArgs<T, FD, uint8_t> base, const py::array* term, Kind tk) {
  if (term == nullptr || tk == Kind::U8) {
    if (term) base.terminated = cptr<uint8_t>(*term);
    run_gae(base);
    return;
  }
  auto with = [&](auto tag) {
    using FT = decltype(tag);
    GaeArgs<T, FD, FT> a;
    a.T_len = base.T_len, a.N = base.N, a.rewards = base.rewards, a.values = base.values, a.dones = base.dones;
    a.last_values = base.last_values, a.final_values = base.final_values, a.gamma = base.gamma, a.lam = base.lam;
    a.advantages = base.advantages, a.returns = base.returns, a.terminated = cptr<FT>(*term);
    run_gae(a);
  };
  if (tk == Kind::F32)
    with(float{});
  else
    with(double{});
}

template <typename T>
void gae_typed(py::array& rewards, py::array& values, py::array& dones, Kind dk, py::array& last_values,
               const py::array* term, Kind tk, const py::array* final_values, double gamma, double lam, py::array& adv,
               py::array& ret) {
  auto fill = [&](auto tag) {
    using FD = decltype(tag);
    GaeArgs<T, FD, uint8_t> a;
    a.T_len = rewards.shape(0), a.N = rewards.shape(1);
    a.rewards = cptr<T>(rewards), a.values = cptr<T>(values), a.dones = cptr<FD>(dones);
    a.last_values = cptr<T>(last_values);
    a.final_values = final_values ? cptr<T>(*final_values) : nullptr;
    a.gamma = gamma, a.lam = lam, a.advantages = mptr<T>(adv), a.returns = mptr<T>(ret);
    py::gil_scoped_release nogil;
    dispatch_gae_term<T, FD>(a, term, tk);
  };
  if (dk == Kind::U8)
    fill(uint8_t{});
  else if (dk == Kind::F32)
    fill(float{});
  else
    fill(double{});
}

py::tuple gae(py::object rewards_o, py::object values_o, py::object dones_o, py::object last_values_o,
              py::object terminated_o, py::object final_values_o, double gamma, double lam, py::object adv_o,
              py::object ret_o) {
  py::array rewards = as_array(rewards_o, "rewards");
  const Kind fk = require_float_array(rewards, "rewards", 2, "[T, N]");
  const py::ssize_t T = rewards.shape(0), N = rewards.shape(1);
  py::array values = as_array(values_o, "values");
  require_float(values, "values", fk);
  require_shape(values, "values", {T, N});
  py::array dones = as_array(dones_o, "dones");
  const Kind dk = require_flag(dones, "dones");
  require_shape(dones, "dones", {T, N});
  py::array last_values = as_array(last_values_o, "last_values");
  require_float(last_values, "last_values", fk);
  require_shape(last_values, "last_values", {N});
  py::array term, fin;
  Kind tk = Kind::U8;
  if (!terminated_o.is_none()) {
    term = as_array(terminated_o, "terminated");
    tk = require_flag(term, "terminated");
    require_shape(term, "terminated", {T, N});
    if (final_values_o.is_none()) throw py::value_error("final_values: required when terminated is given");
    fin = as_array(final_values_o, "final_values");
    require_float(fin, "final_values", fk);
    require_shape(fin, "final_values", {T, N});
  }
  check_unit(gamma, "gamma");
  check_unit(lam, "lam");
  py::array adv = out_or_new(adv_o, "out[0] (advantages)", fk, {T, N});
  py::array ret = out_or_new(ret_o, "out[1] (returns)", fk, {T, N});
  const py::array* tp = terminated_o.is_none() ? nullptr : &term;
  const py::array* fp = terminated_o.is_none() ? nullptr : &fin;
  if (fk == Kind::F32)
    gae_typed<float>(rewards, values, dones, dk, last_values, tp, tk, fp, gamma, lam, adv, ret);
  else
    gae_typed<double>(rewards, values, dones, dk, last_values, tp, tk, fp, gamma, lam, adv, ret);
  return py::make_tuple(adv, ret);
}

py::array discounted_returns(py::object rewards_o, py::object dones_o, py::object last_values_o, double gamma,
                             py::object out_o) {
  py::array rewards = as_array(rewards_o, "rewards");
  const Kind fk = require_float_array(rewards, "rewards", 2, "[T, N]");
  const py::ssize_t T = rewards.shape(0), N = rewards.shape(1);
  py::array dones = as_array(dones_o, "dones");
  const Kind dk = require_flag(dones, "dones");
  require_shape(dones, "dones", {T, N});
  py::array last;
  if (!last_values_o.is_none()) {
    last = as_array(last_values_o, "last_values");
    require_float(last, "last_values", fk);
    require_shape(last, "last_values", {N});
  }
  check_unit(gamma, "gamma");
  py::array out = out_or_new(out_o, "out", fk, {T, N});
  auto run = [&](auto ttag, auto dtag) {
    using Tt = decltype(ttag);
    using FD = decltype(dtag);
    const Tt* lv = last_values_o.is_none() ? nullptr : cptr<Tt>(last);
    const Tt* r = cptr<Tt>(rewards);
    const FD* d = cptr<FD>(dones);
    Tt* o = mptr<Tt>(out);
    py::gil_scoped_release nogil;
    split_columns(T, N, [&](std::size_t b, std::size_t e) {
      discounted_returns_columns<Tt, FD>(T, N, r, d, lv, gamma, o, b, e);
    });
  };
  auto with_t = [&](auto ttag) {
    if (dk == Kind::U8)
      run(ttag, uint8_t{});
    else if (dk == Kind::F32)
      run(ttag, float{});
    else
      run(ttag, double{});
  };
  if (fk == Kind::F32)
    with_t(float{});
  else
    with_t(double{});
  return out;
}

// Group kernels take rewards [B, G, T] (float), lengths [B, G] (int64), out [B, G, T].
struct GroupArrays {
  py::array rewards, lengths, out;
  GroupShape shape;
  Kind fk;
};

GroupArrays check_group(py::object rewards_o, py::object lengths_o, py::object out_o) {
  GroupArrays g;
  g.rewards = as_array(rewards_o, "rewards");
  const py::ssize_t nd = g.rewards.ndim();
  if (nd != 2 && nd != 3)
    throw py::value_error("rewards: expected a 2-D [G, T] or 3-D [B, G, T] array, got shape " + shape_str(g.rewards));
  g.fk = kind_of(g.rewards);
  if (g.fk != Kind::F32 && g.fk != Kind::F64)
    throw py::type_error("rewards: expected dtype float32 or float64, got " + dtype_str(g.rewards));
  const py::ssize_t B = nd == 3 ? g.rewards.shape(0) : 1;
  const py::ssize_t G = g.rewards.shape(nd - 2), T = g.rewards.shape(nd - 1);
  std::vector<py::ssize_t> full = nd == 3 ? std::vector<py::ssize_t>{B, G, T} : std::vector<py::ssize_t>{G, T};
  std::vector<py::ssize_t> lshape = nd == 3 ? std::vector<py::ssize_t>{B, G} : std::vector<py::ssize_t>{G};
  require_shape(g.rewards, "rewards", full);
  g.lengths = as_array(lengths_o, "lengths");
  if (kind_of(g.lengths) != Kind::I64)
    throw py::type_error("lengths: expected dtype int64, got " + dtype_str(g.lengths));
  require_shape(g.lengths, "lengths", lshape);
  // A private copy, checked and then read without the GIL: another Python thread refilling the caller's array
  // meanwhile cannot turn a checked length into an out-of-bounds index.
  g.lengths = py::array(g.lengths.attr("copy")());
  const int64_t* L = cptr<int64_t>(g.lengths);
  for (py::ssize_t i = 0; i < B * G; ++i)
    if (L[i] < 0 || L[i] > T)
      throw py::value_error("lengths: expected integers in [0, T] = [0, " + std::to_string(T) + "], got " +
                            std::to_string(L[i]) + " at flat index " + std::to_string(i));
  g.out = out_or_new(out_o, "out", g.fk, full);
  g.shape.B = B, g.shape.G = G, g.shape.T = T;
  return g;
}

void check_eps_ddof(double eps, int64_t ddof) {
  if (!std::isfinite(eps) || eps < 0.0)
    throw py::value_error("eps: expected a finite number >= 0, got " + std::to_string(eps));
  if (ddof < 0) throw py::value_error("ddof: expected an integer >= 0, got " + std::to_string(ddof));
}

// Calls fn(rewards, lengths, out) with pointers of the group's float type, the GIL released.
template <typename Fn>
void run_group(GroupArrays& g, Fn&& fn) {
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* rp = cptr<T>(g.rewards);
    const int64_t* lp = cptr<int64_t>(g.lengths);
    T* op = mptr<T>(g.out);
    py::gil_scoped_release nogil;
    fn(rp, lp, op);
  };
  if (g.fk == Kind::F32)
    run(float{});
  else
    run(double{});
}

py::array episodic_advantages(py::object r, py::object l, double eps, int64_t ddof, py::object o) {
  check_eps_ddof(eps, ddof);
  GroupArrays g = check_group(r, l, o);
  run_group(g, [&](const auto* rp, const int64_t* lp, auto* op) {
    rltrain::episodic_advantages(g.shape, rp, lp, eps, ddof, op, *kernel_pool());
  });
  return g.out;
}

py::array per_step_advantages(py::object r, py::object l, double gamma, int pooled, double eps, int64_t ddof,
                              py::object o) {
  check_unit(gamma, "gamma");
  check_eps_ddof(eps, ddof);
  GroupArrays g = check_group(r, l, o);
  run_group(g, [&](const auto* rp, const int64_t* lp, auto* op) {
    rltrain::per_step_advantages(g.shape, rp, lp, gamma, pooled ? StepNorm::Pooled : StepNorm::Timestep, eps, ddof, op,
                                 *kernel_pool());
  });
  return g.out;
}

py::array hybrid_advantages(py::object r, py::object l, double gamma, double alpha, double beta, double clip,
                            double eps, int64_t ddof, py::object o) {
  check_unit(gamma, "gamma");
  check_eps_ddof(eps, ddof);
  if (!std::isfinite(alpha) || alpha < 0.0)
    throw py::value_error("alpha: expected a finite number >= 0, got " + std::to_string(alpha));
  if (!std::isfinite(beta) || beta < 0.0)
    throw py::value_error("beta: expected a finite number >= 0, got " + std::to_string(beta));
  if (std::isnan(clip)) throw py::value_error("clip: expected a number >= 0 or None, got nan");
  GroupArrays g = check_group(r, l, o);
  run_group(g, [&](const auto* rp, const int64_t* lp, auto* op) {
    rltrain::hybrid_advantages(g.shape, rp, lp, gamma, alpha, beta, clip, eps, ddof, op, *kernel_pool());
  });
  return g.out;
}

py::array group_normalize(py::object scores_o, py::ssize_t group_size, int scale, double eps, int64_t ddof,
                          py::object out_o) {
  check_eps_ddof(eps, ddof);
  py::array s = as_array(scores_o, "scores");
  const Kind fk = require_float_array(s, "scores", 1, "[B*G]");
  const py::ssize_t n = s.shape(0);
  if (group_size < 1 || (n > 0 && n % group_size != 0))
    throw py::value_error("group_size: expected an integer >= 1 dividing len(scores) = " + std::to_string(n) +
                          ", got " + std::to_string(group_size));
  if (scale < 0 || scale > 2) throw py::value_error("scale: expected 0 (group), 1 (batch) or 2 (none)");
  py::array out = out_or_new(out_o, "out", fk, {n});
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* sp = cptr<T>(s);
    T* op = mptr<T>(out);
    py::gil_scoped_release nogil;
    rltrain::group_normalize<T>(n, group_size, sp, static_cast<GroupScale>(scale), eps, ddof, op);
  };
  if (fk == Kind::F32)
    run(float{});
  else
    run(double{});
  return out;
}

// Running statistics: mean/var are float64 [dim] arrays updated in place; batch is [n, dim].
double rms_update(py::object mean_o, py::object var_o, double count, py::object batch_o) {
  py::array mean = as_array(mean_o, "mean"), var = as_array(var_o, "var"), batch = as_array(batch_o, "batch");
  const Kind fk = require_float_array(batch, "batch", 2, "[n, dim]");
  const py::ssize_t n = batch.shape(0), dim = batch.shape(1);
  require_float(mean, "mean", Kind::F64);
  require_shape(mean, "mean", {dim});
  require_writable(mean, "mean");
  require_float(var, "var", Kind::F64);
  require_shape(var, "var", {dim});
  require_writable(var, "var");
  if (!std::isfinite(count) || count < 0.0)
    throw py::value_error("count: expected a finite number >= 0, got " + std::to_string(count));
  if (n == 0) return count;
  double* m = mptr<double>(mean);
  double* v = mptr<double>(var);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* x = cptr<T>(batch);
    py::gil_scoped_release nogil;
    return rltrain::rms_update<T>(n, dim, x, m, v, count, *kernel_pool());
  };
  return fk == Kind::F32 ? run(float{}) : run(double{});
}

void rms_normalize(py::object x_o, py::object mean_o, py::object var_o, double clip, double eps, py::object out_o) {
  py::array x = as_array(x_o, "x"), mean = as_array(mean_o, "mean"), var = as_array(var_o, "var");
  const Kind fk = require_float_array(x, "x", 2, "[n, dim]");
  const py::ssize_t n = x.shape(0), dim = x.shape(1);
  require_float(mean, "mean", Kind::F64);
  require_shape(mean, "mean", {dim});
  require_float(var, "var", Kind::F64);
  require_shape(var, "var", {dim});
  if (std::isnan(clip) || clip < 0.0)
    throw py::value_error("clip: expected a number >= 0, got " + std::to_string(clip));
  if (!std::isfinite(eps) || eps < 0.0) throw py::value_error("eps: expected a finite number >= 0");
  py::array out = as_array(out_o, "out");
  require_float(out, "out", fk);
  require_shape(out, "out", {n, dim});
  require_writable(out, "out");
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cptr<T>(x);
    const double* mp = cptr<double>(mean);
    const double* vp = cptr<double>(var);
    T* op = mptr<T>(out);
    py::gil_scoped_release nogil;
    rltrain::rms_normalize<T>(n, dim, xp, mp, vp, clip, eps, op, *kernel_pool());
  };
  if (fk == Kind::F32)
    run(float{});
  else
    run(double{});
}

}  // namespace

void register_kernels(py::module_& m) {
  m.def("set_num_threads", &rltrain::set_num_threads, py::arg("num_threads"),
        "Replaces the kernel pool by one of num_threads threads (the previous pool is kept if they cannot start).");
  m.def("get_num_threads", &rltrain::get_num_threads, "Threads of the kernel pool (made on first use).");
  m.def("gae", &gae, py::arg("rewards"), py::arg("values"), py::arg("dones"), py::arg("last_values"),
        py::arg("terminated"), py::arg("final_values"), py::arg("gamma"), py::arg("lam"), py::arg("adv_out"),
        py::arg("ret_out"));
  m.def("discounted_returns", &discounted_returns, py::arg("rewards"), py::arg("dones"), py::arg("last_values"),
        py::arg("gamma"), py::arg("out"));
  m.def("episodic_advantages", &episodic_advantages, py::arg("rewards"), py::arg("lengths"), py::arg("eps"),
        py::arg("ddof"), py::arg("out"));
  m.def("per_step_advantages", &per_step_advantages, py::arg("rewards"), py::arg("lengths"), py::arg("gamma"),
        py::arg("pooled"), py::arg("eps"), py::arg("ddof"), py::arg("out"));
  m.def("hybrid_advantages", &hybrid_advantages, py::arg("rewards"), py::arg("lengths"), py::arg("gamma"),
        py::arg("alpha"), py::arg("beta"), py::arg("clip"), py::arg("eps"), py::arg("ddof"), py::arg("out"));
  m.def("group_normalize", &group_normalize, py::arg("scores"), py::arg("group_size"), py::arg("scale"), py::arg("eps"),
        py::arg("ddof"), py::arg("out"));
  m.def("rms_update", &rms_update, py::arg("mean"), py::arg("var"), py::arg("count"), py::arg("batch"));
  m.def("rms_normalize", &rms_normalize, py::arg("x"), py::arg("mean"), py::arg("var"), py::arg("clip"), py::arg("eps"),
        py::arg("out"));
}

}  // namespace rltrain::bind
