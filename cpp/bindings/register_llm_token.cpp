// pybind11 registration of the per-token LLM kernels (llm_token.hpp): check dtype/shape/contiguity, release
// the GIL, call the C++. rltrain.kernels.llm_token does the friendly conversions (torch, non-contiguous, out=).
// The *_fast entries (fast_args.hpp) take a plain call (NumPy or CPU torch, Python scalars, names) whole and answer
// NotImplemented to anything else.
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "checks.hpp"
#include "fast_args.hpp"
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

// ------------------------------------------------------------------------------------------ the plain path

bool float_kind(const fast::View& v) { return v.kind == Kind::F32 || v.kind == Kind::F64; }

// A plain float input like `like` (same kind and shape).
bool same_float(PyObject* o, fast::View& v, int& fam, const fast::View& like) {
  return fast::view(o, v, fam) && v.kind == like.kind && v.same_shape(like);
}

// A mask of like's shape (bool, uint8, int64, float32, float64).
bool plain_mask(PyObject* o, fast::View& v, int& fam, const fast::View& like) {
  return fast::view(o, v, fam) && v.same_shape(like);
}

// out: None (a new output like `like`, in res) or a writable plain array of like's kind and shape that shares no
// memory with the inputs `ins` (null entries skipped); false when it is neither.
bool plain_out(PyObject* o, fast::View& v, int& fam, const fast::View& like,
               std::initializer_list<const fast::View*> ins, py::object& res) {
  if (o == Py_None) {
    res = fast::new_output(like.torch, like.shape, like.ndim, like.kind, v);
    return true;
  }
  if (!fast::view(o, v, fam, true) || v.kind != like.kind || !v.same_shape(like)) return false;
  for (const fast::View* x : ins)
    if (x != nullptr && v.overlaps(*x)) return false;
  res = py::reinterpret_borrow<py::object>(o);
  return true;
}

// token_returns_fast(token_rewards, mask, gamma, masked, out)
PyObject* returns_fast_body(PyObject* const* args, Py_ssize_t nargs) {
  if (!fast::arity("token_returns_fast", nargs, 5)) return nullptr;
  static const char* const kMasked[] = {"restart", "carry"};
  double gamma = 0.0;
  const int carry = fast::str_code(args[3], kMasked, 2);
  if (carry < 0 || !fast::exact_float(args[2], gamma) || !(gamma >= 0.0 && gamma <= 1.0)) return fast::not_plain();
  int fam = -1;
  fast::View r, m, o;
  py::object res;
  if (!fast::view(args[0], r, fam) || !float_kind(r) || r.ndim != 2 || !plain_mask(args[1], m, fam, r) ||
      !plain_out(args[4], o, fam, r, {&r, &m}, res))
    return fast::not_plain();
  with_types(r.kind, m.kind, [&](auto t, auto mt) {
    using T = decltype(t);
    using M = decltype(mt);
    TokenScan1<T, M> b;
    b.B = static_cast<std::size_t>(r.shape[0]), b.L = static_cast<std::size_t>(r.shape[1]);
    b.in[0] = reinterpret_cast<const T*>(r.ptr), b.mask = reinterpret_cast<const M*>(m.ptr);
    b.out[0] = reinterpret_cast<T*>(o.ptr);
    py::gil_scoped_release nogil;
    rltrain::token_returns(b, gamma, carry == 1, *kernel_pool());
  });
  return res.release().ptr();
}

// token_gae_fast(token_rewards, values, mask, gamma, lam, out): out None or a tuple of two (each None or a buffer).
PyObject* gae_fast_body(PyObject* const* args, Py_ssize_t nargs) {
  if (!fast::arity("token_gae_fast", nargs, 6)) return nullptr;
  double gamma = 0.0, lam = 0.0;
  if (!fast::exact_float(args[3], gamma) || !(gamma >= 0.0 && gamma <= 1.0) || !fast::exact_float(args[4], lam) ||
      !(lam >= 0.0 && lam <= 1.0))
    return fast::not_plain();
  PyObject *adv_o = Py_None, *ret_o = Py_None;
  if (args[5] != Py_None) {
    if (!PyTuple_CheckExact(args[5]) || PyTuple_GET_SIZE(args[5]) != 2) return fast::not_plain();
    adv_o = PyTuple_GET_ITEM(args[5], 0), ret_o = PyTuple_GET_ITEM(args[5], 1);
  }
  int fam = -1;
  fast::View r, v, m, a, o;
  py::object res_a, res_r;
  if (!fast::view(args[0], r, fam) || !float_kind(r) || r.ndim != 2 || !same_float(args[1], v, fam, r) ||
      !plain_mask(args[2], m, fam, r) || !plain_out(adv_o, a, fam, r, {&r, &v, &m}, res_a) ||
      !plain_out(ret_o, o, fam, r, {&r, &v, &m, &a}, res_r))
    return fast::not_plain();
  with_types(r.kind, m.kind, [&](auto t, auto mt) {
    using T = decltype(t);
    using M = decltype(mt);
    TokenScan2<T, M> b;
    b.B = static_cast<std::size_t>(r.shape[0]), b.L = static_cast<std::size_t>(r.shape[1]);
    b.in[0] = reinterpret_cast<const T*>(r.ptr), b.in[1] = reinterpret_cast<const T*>(v.ptr);
    b.mask = reinterpret_cast<const M*>(m.ptr);
    b.out[0] = reinterpret_cast<T*>(a.ptr), b.out[1] = reinterpret_cast<T*>(o.ptr);
    py::gil_scoped_release nogil;
    rltrain::token_gae(b, gamma, lam, *kernel_pool());
  });
  return py::make_tuple(res_a, res_r).release().ptr();
}

// masked_whiten_fast(x, mask, shift_mean, eps, times_mask, out); NotImplemented also when fewer than 2 entries are
// masked (the converting path raises that error).
PyObject* whiten_fast_body(PyObject* const* args, Py_ssize_t nargs) {
  if (!fast::arity("masked_whiten_fast", nargs, 6)) return nullptr;
  bool shift_mean = false, times_mask = false;
  double eps = 0.0;
  if (!fast::exact_bool(args[2], shift_mean) || !fast::exact_bool(args[4], times_mask) ||
      !fast::exact_float(args[3], eps) || !std::isfinite(eps) || eps < 0.0)
    return fast::not_plain();
  int fam = -1;
  fast::View x, m, o;
  py::object res;
  if (!fast::view(args[0], x, fam) || !float_kind(x) || x.ndim < 1 || !plain_mask(args[1], m, fam, x) ||
      !plain_out(args[5], o, fam, x, {&x, &m}, res))
    return fast::not_plain();
  bool enough = true;
  with_types(x.kind, m.kind, [&](auto t, auto mt) {
    using T = decltype(t);
    using M = decltype(mt);
    const T* xp = reinterpret_cast<const T*>(x.ptr);
    const M* mp = reinterpret_cast<const M*>(m.ptr);
    T* op = reinterpret_cast<T*>(o.ptr);
    py::gil_scoped_release nogil;
    const WhitenStats st = masked_stats(x.size, xp, mp, *kernel_pool());
    enough = st.n >= 2.0;  // NaN too
    if (enough) whiten_apply(x.size, xp, st, eps, shift_mean, op, *kernel_pool(), times_mask ? mp : nullptr);
  });
  return enough ? res.release().ptr() : fast::not_plain();
}

// kl_estimate_fast(logp, ref_logp, mask, kind, clamp, out): kind a name ("k1", "kl", "k2", "mse", "k3",
// "low_var_kl", "abs").
PyObject* kl_fast_body(PyObject* const* args, Py_ssize_t nargs) {
  if (!fast::arity("kl_estimate_fast", nargs, 6)) return nullptr;
  static const char* const kKinds[] = {"k1", "kl", "k2", "mse", "k3", "low_var_kl", "abs"};  // code: index / 2
  bool clamp = false;
  const int k = fast::str_code(args[3], kKinds, 7);
  if (k < 0 || !fast::exact_bool(args[4], clamp)) return fast::not_plain();
  int fam = -1;
  fast::View a, b, m, o;
  py::object res;
  const bool has_mask = args[2] != Py_None;
  if (!fast::view(args[0], a, fam) || !float_kind(a) || a.ndim < 1 || !same_float(args[1], b, fam, a) ||
      (has_mask && !plain_mask(args[2], m, fam, a)) ||
      !plain_out(args[5], o, fam, a, {&a, &b, has_mask ? &m : nullptr}, res))
    return fast::not_plain();
  with_types(a.kind, has_mask ? m.kind : Kind::U8, [&](auto t, auto mt) {
    using T = decltype(t);
    using M = decltype(mt);
    const M* mp = has_mask ? reinterpret_cast<const M*>(m.ptr) : nullptr;
    py::gil_scoped_release nogil;
    rltrain::kl_estimate(a.size, reinterpret_cast<const T*>(a.ptr), reinterpret_cast<const T*>(b.ptr), mp,
                         static_cast<KlKind>(k / 2), clamp, reinterpret_cast<T*>(o.ptr), *kernel_pool());
  });
  return res.release().ptr();
}

PyMethodDef kReturnsFast = {"token_returns_fast", fast::entry_cfunction<returns_fast_body>(), METH_FASTCALL,
                            "token_returns_fast(token_rewards, mask, gamma, masked, out): a plain call whole, "
                            "else NotImplemented."};
PyMethodDef kGaeFast = {"token_gae_fast", fast::entry_cfunction<gae_fast_body>(), METH_FASTCALL,
                        "token_gae_fast(token_rewards, values, mask, gamma, lam, out): a plain call whole, else "
                        "NotImplemented."};
PyMethodDef kWhitenFast = {"masked_whiten_fast", fast::entry_cfunction<whiten_fast_body>(), METH_FASTCALL,
                           "masked_whiten_fast(x, mask, shift_mean, eps, times_mask, out): a plain call whole, "
                           "else NotImplemented."};
PyMethodDef kKlFast = {"kl_estimate_fast", fast::entry_cfunction<kl_fast_body>(), METH_FASTCALL,
                       "kl_estimate_fast(logp, ref_logp, mask, kind, clamp, out): a plain call whole, else "
                       "NotImplemented."};

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
  fast::def(m, &kReturnsFast);
  fast::def(m, &kGaeFast);
  fast::def(m, &kWhitenFast);
  fast::def(m, &kKlFast);
}

}  // namespace rltrain::bind
