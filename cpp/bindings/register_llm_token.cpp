// pybind11 registration of the per-token LLM kernels (llm_token.hpp): check dtype/shape/contiguity, release
// the GIL, call the C++. rltrain.kernels.llm_token does the friendly conversions (torch, non-contiguous, out=).
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "checks.hpp"
#include "rltrain/kernel_pool.hpp"
#include "rltrain/llm_token.hpp"

namespace rltrain::bind {

namespace {

std::vector<py::ssize_t> shape_of(const py::array& a) { return {a.shape(), a.shape() + a.ndim()}; }

// Calls fn(T{}, M{}) for the float type `fk` of the data and the element type `mk` of the mask.
template <typename Fn>
void with_types(Kind fk, Kind mk, Fn&& fn) {
  auto with_mask = [&](auto t) {
    if (mk == Kind::U8)
      fn(t, std::uint8_t{});
    else if (mk == Kind::I64)
      fn(t, std::int64_t{});
    else if (mk == Kind::F32)
      fn(t, float{});
    else
      fn(t, double{});
  };
  if (fk == Kind::F32)
    with_mask(float{});
  else
    with_mask(double{});
}

// A float array of any shape, C-contiguous: its kind.
Kind require_float_any(const py::array& a, const char* name) {
  const Kind k = kind_of(a);
  if (k != Kind::F32 && k != Kind::F64)
    throw py::type_error(std::string(name) + ": expected dtype float32 or float64, got " + dtype_str(a));
  require_shape(a, name, shape_of(a));
  return k;
}

// mask: bool, uint8, int64 (torch's attention masks) or float32/float64 of `shape`; its kind.
Kind require_mask(const py::array& mask, const std::vector<py::ssize_t>& shape) {
  const Kind mk = kind_of(mask);
  if (mk == Kind::Other)
    throw py::type_error("mask: expected dtype bool, uint8, int64, float32 or float64, got " + dtype_str(mask));
  require_shape(mask, "mask", shape);
  return mk;
}

py::array token_returns(py::object rewards_o, py::object mask_o, double gamma, bool carry, py::object out_o) {
  py::array r = as_array(rewards_o, "token_rewards");
  const Kind fk = require_float_array(r, "token_rewards", 2, "[B, L]");
  const py::ssize_t B = r.shape(0), L = r.shape(1);
  py::array mask = as_array(mask_o, "mask");
  const Kind mk = require_mask(mask, {B, L});
  check_unit(gamma, "gamma");
  py::array out = out_or_new(out_o, "out", fk, {B, L});
  with_types(fk, mk, [&](auto t, auto m) {
    using T = decltype(t);
    using M = decltype(m);
    TokenScan1<T, M> b;
    b.B = static_cast<std::size_t>(B), b.L = static_cast<std::size_t>(L);
    b.in[0] = cptr<T>(r), b.mask = cptr<M>(mask), b.out[0] = mptr<T>(out);
    py::gil_scoped_release nogil;
    rltrain::token_returns(b, gamma, carry, *kernel_pool());
  });
  return out;
}

py::tuple token_gae(py::object rewards_o, py::object values_o, py::object mask_o, double gamma, double lam,
                    py::object adv_o, py::object ret_o) {
  py::array r = as_array(rewards_o, "token_rewards");
  const Kind fk = require_float_array(r, "token_rewards", 2, "[B, L]");
  const py::ssize_t B = r.shape(0), L = r.shape(1);
  py::array v = as_array(values_o, "values");
  require_float(v, "values", fk);
  require_shape(v, "values", {B, L});
  py::array mask = as_array(mask_o, "mask");
  const Kind mk = require_mask(mask, {B, L});
  check_unit(gamma, "gamma");
  check_unit(lam, "lam");
  py::array adv = out_or_new(adv_o, "out[0] (advantages)", fk, {B, L});
  py::array ret = out_or_new(ret_o, "out[1] (returns)", fk, {B, L});
  with_types(fk, mk, [&](auto t, auto m) {
    using T = decltype(t);
    using M = decltype(m);
    TokenScan2<T, M> b;
    b.B = static_cast<std::size_t>(B), b.L = static_cast<std::size_t>(L);
    b.in[0] = cptr<T>(r), b.in[1] = cptr<T>(v), b.mask = cptr<M>(mask);
    b.out[0] = mptr<T>(adv), b.out[1] = mptr<T>(ret);
    py::gil_scoped_release nogil;
    rltrain::token_gae(b, gamma, lam, *kernel_pool());
  });
  return py::make_tuple(adv, ret);
}

py::array masked_whiten(py::object x_o, py::object mask_o, bool shift_mean, double eps, py::object out_o,
                        bool times_mask) {
  py::array x = as_array(x_o, "x");
  const Kind fk = require_float_any(x, "x");
  const std::vector<py::ssize_t> shape = shape_of(x);
  py::array mask = as_array(mask_o, "mask");
  const Kind mk = require_mask(mask, shape);
  if (!std::isfinite(eps) || eps < 0.0)
    throw py::value_error("eps: expected a finite number >= 0, got " + std::to_string(eps));
  py::array out = out_or_new(out_o, "out", fk, shape);
  const std::size_t n = static_cast<std::size_t>(x.size());
  with_types(fk, mk, [&](auto t, auto m) {
    using T = decltype(t);
    using M = decltype(m);
    const T* xp = cptr<T>(x);
    const M* mp = cptr<M>(mask);
    T* op = mptr<T>(out);
    WhitenStats st;
    {
      py::gil_scoped_release nogil;
      st = masked_stats(n, xp, mp, *kernel_pool());
    }
    if (!(st.n >= 2.0))  // NaN too; the unbiased variance divides by n - 1
      throw py::value_error("mask: expected at least 2 masked entries (sum of mask >= 2), got " +
                            std::string(py::repr(py::float_(st.n))));
    py::gil_scoped_release nogil;
    whiten_apply(n, xp, st, eps, shift_mean, op, *kernel_pool(), times_mask ? mp : nullptr);
  });
  return out;
}

py::array kl_estimate(py::object logp_o, py::object ref_o, py::object mask_o, int kind, bool clamp, py::object out_o) {
  py::array lp = as_array(logp_o, "logp");
  const Kind fk = require_float_any(lp, "logp");
  const std::vector<py::ssize_t> shape = shape_of(lp);
  py::array ref = as_array(ref_o, "ref_logp");
  require_float(ref, "ref_logp", fk);
  require_shape(ref, "ref_logp", shape);
  py::array mask;
  Kind mk = Kind::U8;
  if (!mask_o.is_none()) {
    mask = as_array(mask_o, "mask");
    mk = require_mask(mask, shape);
  }
  if (kind < 0 || kind > 3) throw py::value_error("kind: expected 0 (k1), 1 (k2), 2 (k3) or 3 (abs)");
  py::array out = out_or_new(out_o, "out", fk, shape);
  const std::size_t n = static_cast<std::size_t>(lp.size());
  with_types(fk, mk, [&](auto t, auto m) {
    using T = decltype(t);
    using M = decltype(m);
    const T* a = cptr<T>(lp);
    const T* b = cptr<T>(ref);
    const M* mp = mask_o.is_none() ? nullptr : cptr<M>(mask);
    T* op = mptr<T>(out);
    py::gil_scoped_release nogil;
    rltrain::kl_estimate(n, a, b, mp, static_cast<KlKind>(kind), clamp, op, *kernel_pool());
  });
  return out;
}

}  // namespace

void register_llm_token(py::module_& m) {
  m.def("token_returns", &token_returns, py::arg("token_rewards"), py::arg("mask"), py::arg("gamma"), py::arg("carry"),
        py::arg("out"));
  m.def("token_gae", &token_gae, py::arg("token_rewards"), py::arg("values"), py::arg("mask"), py::arg("gamma"),
        py::arg("lam"), py::arg("adv_out"), py::arg("ret_out"));
  m.def("masked_whiten", &masked_whiten, py::arg("x"), py::arg("mask"), py::arg("shift_mean"), py::arg("eps"),
        py::arg("out"), py::arg("times_mask") = false);
  m.def("kl_estimate", &kl_estimate, py::arg("logp"), py::arg("ref_logp"), py::arg("mask"), py::arg("kind"),
        py::arg("clamp"), py::arg("out"));
}

}  // namespace rltrain::bind
