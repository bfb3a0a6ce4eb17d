// pybind11 registration of the LLM group kernels (group_advantages, rloo_advantages): check dtype/shape/contiguity
// and option codes, release the GIL, call llm_group.hpp. The wrappers in rltrain.kernels.llm_group resolve presets
// and convert torch tensors, other integer id dtypes and non-contiguous arrays first. The *_fast entries
// (fast_args.hpp) take a plain call (NumPy or CPU torch, preset names, Python scalars) whole and answer
// NotImplemented to anything else.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "checks.hpp"
#include "fast_args.hpp"
#include "rltrain/kernel_pool.hpp"
#include "rltrain/llm_group.hpp"

namespace rltrain::bind {

namespace {

py::array out_or_new(py::object o, Kind fk, py::ssize_t n) {
  if (o.is_none()) {
    if (fk == Kind::F32) return py::array_t<float>(n);
    return py::array_t<double>(n);
  }
  py::array a = as_array(o, "out");
  require_float(a, "out", fk);
  require_shape(a, "out", {n});
  require_writable(a, "out");
  return a;
}

void check_code(int v, int hi, const char* name, const char* choices) {
  if (v < 0 || v > hi)
    throw py::value_error(std::string(name) + ": expected a code in [0, " + std::to_string(hi) + "] (" + choices +
                          "), got " + std::to_string(v));
}

// The groups of a call: group_ids [B] int64 or a group_size dividing B (None: one group). Returns the size to pass
// on (0: one group or ids) and the ids array (held by the caller for the call).
std::size_t check_grouping(py::ssize_t B, py::object ids_o, std::optional<int64_t> group_size, py::array& ids) {
  if (!ids_o.is_none()) {
    if (group_size.has_value())
      throw py::value_error("group_size: expected None when group_ids is given (pass one of them), got " +
                            std::to_string(*group_size));
    ids = as_array(ids_o, "group_ids");
    if (kind_of(ids) != Kind::I64) throw py::type_error("group_ids: expected dtype int64, got " + dtype_str(ids));
    require_shape(ids, "group_ids", {B});
    if (B > (py::ssize_t(1) << 30))  // grouping keys are 32-bit (llm::dense_keys)
      throw py::value_error("group_ids: expected at most 2**30 elements, got " + std::to_string(B));
    return 0;
  }
  if (!group_size.has_value()) return 0;
  const int64_t gs = *group_size;
  if (gs < 1 || B % gs != 0)
    throw py::value_error("group_size: expected an integer >= 1 dividing len(rewards) = " + std::to_string(B) +
                          ", got " + std::to_string(gs));
  return static_cast<std::size_t>(gs);
}

py::array group_advantages(py::object rewards_o, py::object ids_o, std::optional<int64_t> group_size, int scale,
                           int64_t ddof, double eps, int eps_on, int singleton, py::object weights_o, int combine,
                           py::object out_o) {
  py::array rewards = as_array(rewards_o, "rewards");
  const py::ssize_t nd = rewards.ndim();
  if (nd != 1 && nd != 2)
    throw py::value_error("rewards: expected a 1-D [B] or 2-D [B, R] array, got shape " + shape_str(rewards));
  const Kind fk = require_float_array(rewards, "rewards", nd, nd == 1 ? "[B]" : "[B, R]");
  const py::ssize_t B = rewards.shape(0), R = nd == 2 ? rewards.shape(1) : 1;
  py::array ids;
  const std::size_t gs = check_grouping(B, ids_o, group_size, ids);
  check_code(scale, 2, "scale", "0 group, 1 batch, 2 none");
  check_code(eps_on, 1, "eps_on", "0 std, 1 var");
  check_code(singleton, 1, "singleton", "0 center, 1 identity");
  check_code(combine, 1, "combine", "0 sum, 1 normalize_then_sum");
  if (ddof < 0) throw py::value_error("ddof: expected an integer >= 0, got " + std::to_string(ddof));
  if (!std::isfinite(eps) || eps < 0.0)
    throw py::value_error("eps: expected a finite number >= 0, got " + std::to_string(eps));
  py::array weights;
  if (!weights_o.is_none()) {
    if (nd == 1)
      throw py::value_error(
          "reward_weights: expected None with 1-D rewards [B] (weights combine the columns of "
          "[B, R] rewards), got an array");
    weights = as_array(weights_o, "reward_weights");
    require_float(weights, "reward_weights", Kind::F64);
    require_shape(weights, "reward_weights", {R});
    // A private copy, checked and then read without the GIL (another thread cannot slip in a non-finite weight).
    weights = py::array(weights.attr("copy")());
    const double* w = cptr<double>(weights);
    for (py::ssize_t k = 0; k < R; ++k)
      if (!std::isfinite(w[k]))
        throw py::value_error("reward_weights: expected finite values, got " + std::to_string(w[k]) + " at index " +
                              std::to_string(k));
  }
  py::array out = out_or_new(out_o, fk, B);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    LlmGroupArgs<T> a;
    a.B = static_cast<std::size_t>(B), a.R = static_cast<std::size_t>(R), a.two_d = nd == 2;
    a.rewards = cptr<T>(rewards);
    a.group_ids = ids_o.is_none() ? nullptr : cptr<int64_t>(ids);
    a.group_size = gs;
    a.norm.scale = static_cast<llm::Scale>(scale), a.norm.ddof = ddof, a.norm.eps = eps;
    a.norm.eps_on = static_cast<llm::EpsOn>(eps_on), a.norm.singleton = static_cast<llm::Singleton>(singleton);
    a.combine = static_cast<llm::Combine>(combine);
    a.weights = weights_o.is_none() ? nullptr : cptr<double>(weights);
    a.out = mptr<T>(out);
    py::gil_scoped_release nogil;
    rltrain::group_advantages(a, *kernel_pool());
  };
  if (fk == Kind::F32)
    run(float{});
  else
    run(double{});
  return out;
}

py::array rloo_advantages(py::object rewards_o, py::object ids_o, std::optional<int64_t> group_size, py::object out_o) {
  py::array rewards = as_array(rewards_o, "rewards");
  const Kind fk = require_float_array(rewards, "rewards", 1, "[B]");
  const py::ssize_t B = rewards.shape(0);
  py::array ids;
  const std::size_t gs = check_grouping(B, ids_o, group_size, ids);
  py::array out = out_or_new(out_o, fk, B);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* r = cptr<T>(rewards);
    const int64_t* g = ids_o.is_none() ? nullptr : cptr<int64_t>(ids);
    T* o = mptr<T>(out);
    py::gil_scoped_release nogil;
    rltrain::rloo_advantages(static_cast<std::size_t>(B), r, g, gs, o, *kernel_pool());
  };
  if (fk == Kind::F32)
    run(float{});
  else
    run(double{});
  return out;
}

// ------------------------------------------------------------------------------------------ the plain path

// group_advantages_fast(rewards, group_ids, group_size, preset, scale, ddof, eps, eps_on, reward_weights, combine,
// out, presets): the wrapper's arguments as given, plus its table presets {name: (scale, ddof, eps, eps_on,
// singleton) codes}. Plain: rewards [B] or [B, R] float, group_ids None or int64 [B] (B <= 2**30), group_size None
// or an int dividing B, a preset name, scale/eps_on None or a name, ddof None or an int in [0, 2**62), eps None or
// a finite float >= 0, no reward_weights, combine a name, out None or a writable [B] of the rewards' dtype sharing
// no memory with them; all arrays NumPy or all CPU tensors. Returns out (or a new array / tensor), else
// NotImplemented.
PyObject* group_fast_body(PyObject* const* args, Py_ssize_t nargs) {
  if (!fast::arity("group_advantages_fast", nargs, 12)) return nullptr;
  static const char* const kScales[] = {"group", "batch", "none"};
  static const char* const kEpsOn[] = {"std", "var"};
  static const char* const kCombine[] = {"sum", "normalize_then_sum"};
  if (args[8] != Py_None || !PyDict_CheckExact(args[11])) return fast::not_plain();
  PyObject* preset = PyUnicode_CheckExact(args[3]) ? PyDict_GetItemWithError(args[11], args[3]) : nullptr;
  if (preset == nullptr || !PyTuple_CheckExact(preset) || PyTuple_GET_SIZE(preset) != 5) {
    PyErr_Clear();
    return fast::not_plain();
  }
  int64_t scale = 0, ddof = 0, eps_on = 0, singleton = 0, v = 0;
  double eps = 0.0;
  if (!fast::exact_int(PyTuple_GET_ITEM(preset, 0), 0, 3, scale) ||
      !fast::exact_int(PyTuple_GET_ITEM(preset, 1), 0, int64_t(1) << 62, ddof) ||
      !fast::exact_float(PyTuple_GET_ITEM(preset, 2), eps) ||
      !fast::exact_int(PyTuple_GET_ITEM(preset, 3), 0, 2, eps_on) ||
      !fast::exact_int(PyTuple_GET_ITEM(preset, 4), 0, 2, singleton))
    return fast::not_plain();
  if (args[4] != Py_None) {
    scale = fast::str_code(args[4], kScales, 3);
    if (scale < 0) return fast::not_plain();
  }
  if (args[5] != Py_None && !fast::exact_int(args[5], 0, int64_t(1) << 62, ddof)) return fast::not_plain();
  if (args[6] != Py_None && !(fast::exact_float(args[6], eps) && std::isfinite(eps) && eps >= 0.0))
    return fast::not_plain();
  if (args[7] != Py_None) {
    eps_on = fast::str_code(args[7], kEpsOn, 2);
    if (eps_on < 0) return fast::not_plain();
  }
  const int combine = fast::str_code(args[9], kCombine, 2);
  if (combine < 0) return fast::not_plain();
  int fam = -1;
  fast::View r, ids, out;
  if (!fast::view(args[0], r, fam) || (r.kind != Kind::F32 && r.kind != Kind::F64) || r.ndim < 1 || r.ndim > 2)
    return fast::not_plain();
  const py::ssize_t B = r.shape[0];
  const bool has_ids = args[1] != Py_None;
  std::size_t gs = 0;
  if (has_ids) {
    if (args[2] != Py_None || !fast::view(args[1], ids, fam) || ids.kind != Kind::I64 || ids.ndim != 1 ||
        ids.shape[0] != B || B > (py::ssize_t(1) << 30))
      return fast::not_plain();
  } else if (args[2] != Py_None) {
    if (!fast::exact_int(args[2], 1, int64_t(1) << 62, v) || B % v != 0) return fast::not_plain();
    gs = static_cast<std::size_t>(v);
  }
  py::object res;
  if (args[10] != Py_None) {
    if (!fast::view(args[10], out, fam, true) || out.kind != r.kind || out.ndim != 1 || out.shape[0] != B ||
        out.overlaps(r) || (has_ids && out.overlaps(ids)))
      return fast::not_plain();
    res = py::reinterpret_borrow<py::object>(args[10]);
  } else {
    res = fast::new_output(r.torch, r.shape, 1, r.kind, out);
  }
  auto run = [&](auto tag) {
    using T = decltype(tag);
    LlmGroupArgs<T> a;
    a.B = static_cast<std::size_t>(B), a.R = r.ndim == 2 ? static_cast<std::size_t>(r.shape[1]) : 1;
    a.two_d = r.ndim == 2;
    a.rewards = reinterpret_cast<const T*>(r.ptr);
    a.group_ids = has_ids ? reinterpret_cast<const int64_t*>(ids.ptr) : nullptr;
    a.group_size = gs;
    a.norm.scale = static_cast<llm::Scale>(scale), a.norm.ddof = ddof, a.norm.eps = eps;
    a.norm.eps_on = static_cast<llm::EpsOn>(eps_on), a.norm.singleton = static_cast<llm::Singleton>(singleton);
    a.combine = static_cast<llm::Combine>(combine);
    a.out = reinterpret_cast<T*>(out.ptr);
    py::gil_scoped_release nogil;
    rltrain::group_advantages(a, *kernel_pool());
  };
  if (r.kind == Kind::F32)
    run(float{});
  else
    run(double{});
  return res.release().ptr();
}

// rloo_advantages_fast(rewards, group_ids, group_size, out): as group_advantages_fast, rewards [B] only.
PyObject* rloo_fast_body(PyObject* const* args, Py_ssize_t nargs) {
  if (!fast::arity("rloo_advantages_fast", nargs, 4)) return nullptr;
  int fam = -1;
  fast::View r, ids, out;
  if (!fast::view(args[0], r, fam) || (r.kind != Kind::F32 && r.kind != Kind::F64) || r.ndim != 1)
    return fast::not_plain();
  const py::ssize_t B = r.shape[0];
  const bool has_ids = args[1] != Py_None;
  std::size_t gs = 0;
  int64_t v = 0;
  if (has_ids) {
    if (args[2] != Py_None || !fast::view(args[1], ids, fam) || ids.kind != Kind::I64 || ids.ndim != 1 ||
        ids.shape[0] != B || B > (py::ssize_t(1) << 30))
      return fast::not_plain();
  } else if (args[2] != Py_None) {
    if (!fast::exact_int(args[2], 1, int64_t(1) << 62, v) || B % v != 0) return fast::not_plain();
    gs = static_cast<std::size_t>(v);
  }
  py::object res;
  if (args[3] != Py_None) {
    if (!fast::view(args[3], out, fam, true) || out.kind != r.kind || !out.same_shape(r) || out.overlaps(r) ||
        (has_ids && out.overlaps(ids)))
      return fast::not_plain();
    res = py::reinterpret_borrow<py::object>(args[3]);
  } else {
    res = fast::new_output(r.torch, r.shape, 1, r.kind, out);
  }
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* rp = reinterpret_cast<const T*>(r.ptr);
    const int64_t* g = has_ids ? reinterpret_cast<const int64_t*>(ids.ptr) : nullptr;
    T* o = reinterpret_cast<T*>(out.ptr);
    py::gil_scoped_release nogil;
    rltrain::rloo_advantages(static_cast<std::size_t>(B), rp, g, gs, o, *kernel_pool());
  };
  if (r.kind == Kind::F32)
    run(float{});
  else
    run(double{});
  return res.release().ptr();
}

PyMethodDef kGroupFast = {"group_advantages_fast", fast::entry_cfunction<group_fast_body>(), METH_FASTCALL,
                          "group_advantages_fast(rewards, group_ids, group_size, preset, scale, ddof, eps, eps_on, "
                          "reward_weights, combine, out, presets): a plain call whole, else NotImplemented."};
PyMethodDef kRlooFast = {"rloo_advantages_fast", fast::entry_cfunction<rloo_fast_body>(), METH_FASTCALL,
                         "rloo_advantages_fast(rewards, group_ids, group_size, out): a plain call whole, else "
                         "NotImplemented."};

}  // namespace

void register_llm_group(py::module_& m) {
  m.def("group_advantages", &group_advantages, py::arg("rewards"), py::arg("group_ids"), py::arg("group_size"),
        py::arg("scale"), py::arg("ddof"), py::arg("eps"), py::arg("eps_on"), py::arg("singleton"),
        py::arg("reward_weights"), py::arg("combine"), py::arg("out"),
        "Group-relative advantages of rewards [B] or [B, R] (codes as in rltrain.kernels.llm_group).");
  m.def("rloo_advantages", &rloo_advantages, py::arg("rewards"), py::arg("group_ids"), py::arg("group_size"),
        py::arg("out"), "Leave-one-out advantages of rewards [B].");
  fast::def(m, &kGroupFast);
  fast::def(m, &kRlooFast);
}

}  // namespace rltrain::bind
