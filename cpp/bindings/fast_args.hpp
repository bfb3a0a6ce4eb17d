// The first path of the LLM kernel wrappers: plain array arguments (an exact numpy.ndarray or an exact CPU
// torch.Tensor: aligned, C-contiguous, of a kernel dtype) read straight from the object, with no NumPy view of a
// tensor, no pybind11 argument conversion and no Python-level checks. Anything else is "not plain": the entry
// returns NotImplemented and the wrapper takes its converting path, which words every error as before.
// Why: on a tiny input the wrapper's checks, tensor.numpy() views and the pybind11 dispatch cost ~6.5 us per call
// (~90% of a copy of 65,536 floats); reading a tensor's dtype, device, layout, shape and pointer here costs well
// under a microsecond.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <new>
#include <stdexcept>
#include <vector>

#include "checks.hpp"

namespace rltrain::bind::fast {

namespace py = pybind11;

constexpr int kMaxDims = 8;

// One plain array argument.
struct View {
  PyObject* obj = nullptr;  // borrowed
  char* ptr = nullptr;
  Kind kind = Kind::Other;
  bool is_bool = false;  // numpy/torch bool (Kind::U8, read as 0/1)
  bool torch = false;
  int ndim = 0;
  py::ssize_t shape[kMaxDims] = {};
  std::size_t size = 1, nbytes = 0;

  bool same_shape(const View& o) const {
    if (ndim != o.ndim) return false;
    for (int d = 0; d < ndim; ++d)
      if (shape[d] != o.shape[d]) return false;
    return true;
  }
  // Whether the byte ranges of two C-contiguous views meet.
  bool overlaps(const View& o) const { return ptr < o.ptr + o.nbytes && o.ptr < ptr + nbytes; }
};

inline std::size_t item_size(Kind k) { return k == Kind::F32 ? 4 : k == Kind::U8 ? 1 : 8; }

// Interned attribute names and the dtype singletons, looked up once.
struct Names {
  PyObject *dtype, *is_cpu, *layout, *requires_grad, *is_contiguous, *is_neg, *shape, *data_ptr;
};

inline const Names& names() {
  static const Names n = [] {
    auto s = [](const char* x) { return PyUnicode_InternFromString(x); };  // leaked: lives as long as the module
    return Names{s("dtype"),         s("is_cpu"), s("layout"), s("requires_grad"),
                 s("is_contiguous"), s("is_neg"), s("shape"),  s("data_ptr")};
  }();
  return n;
}

struct NumpyDtypes {
  PyObject *f32, *f64, *i64, *b8, *u8;
};

inline const NumpyDtypes& numpy_dtypes() {
  static const NumpyDtypes d = [] {
    py::object dt = py::module_::import("numpy").attr("dtype");
    NumpyDtypes r;  // singletons, kept
    r.f32 = dt("float32").release().ptr(), r.f64 = dt("float64").release().ptr(), r.i64 = dt("int64").release().ptr();
    r.b8 = dt("bool").release().ptr(), r.u8 = dt("uint8").release().ptr();
    return r;
  }();
  return d;
}

// torch's Tensor type, dtypes and torch.strided once torch is imported (it is never imported from here: a tensor
// exists only once it is); null before.
struct Torch {
  PyTypeObject* tensor = nullptr;
  PyObject *f32 = nullptr, *f64 = nullptr, *i64 = nullptr, *b8 = nullptr, *u8 = nullptr, *strided = nullptr;
  PyObject* empty = nullptr;
};

inline const Torch* torch_api() {
  static Torch t;
  static bool ready = false;
  if (ready) return &t;
  PyObject* mod = PyImport_GetModule(py::str("torch").ptr());  // new reference or null, no import
  if (mod == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  py::object torch = py::reinterpret_steal<py::object>(mod);
  if (!py::hasattr(torch, "Tensor") || !py::hasattr(torch, "empty")) return nullptr;  // torch still importing
  const char* const keys[] = {"Tensor", "float32", "float64", "int64", "bool", "uint8", "strided", "empty"};
  PyObject* got[8];
  for (int k = 0; k < 8; ++k) got[k] = py::object(torch.attr(keys[k])).release().ptr();  // kept
  t.tensor = reinterpret_cast<PyTypeObject*>(got[0]);
  t.f32 = got[1], t.f64 = got[2], t.i64 = got[3], t.b8 = got[4], t.u8 = got[5], t.strided = got[6], t.empty = got[7];
  ready = true;
  return &t;
}

// attr == expected (a borrowed singleton); false, with no error set, when the look-up fails.
inline bool attr_is(PyObject* o, PyObject* name, PyObject* expected) {
  PyObject* v = PyObject_GetAttr(o, name);
  if (v == nullptr) {
    PyErr_Clear();
    return false;
  }
  const bool same = v == expected;
  Py_DECREF(v);
  return same;
}

inline bool call_is(PyObject* o, PyObject* name, PyObject* expected) {
  PyObject* v = PyObject_CallMethodNoArgs(o, name);
  if (v == nullptr) {
    PyErr_Clear();
    return false;
  }
  const bool same = v == expected;
  Py_DECREF(v);
  return same;
}

inline bool finish(View& v) {
  v.size = 1;
  for (int d = 0; d < v.ndim; ++d) v.size *= static_cast<std::size_t>(v.shape[d]);
  v.nbytes = v.size * item_size(v.kind);
  // empty arrays take the converting path (the kernels' checks word those calls)
  return v.size > 0 && v.ptr != nullptr && reinterpret_cast<std::uintptr_t>(v.ptr) % item_size(v.kind) == 0;
}

// An exact torch.Tensor on the CPU, strided and contiguous, of a kernel dtype, without the negative bit (numpy()
// refuses those views too). `out`: also without requires_grad (the converting path writes those under no_grad).
inline bool torch_view(PyObject* o, const Torch& t, View& v, bool out) {
  const Names& n = names();
  PyObject* dt = PyObject_GetAttr(o, n.dtype);
  if (dt == nullptr) {
    PyErr_Clear();
    return false;
  }
  Py_DECREF(dt);  // the dtype objects are module-level singletons: the identity test below needs no reference
  if (dt == t.f32)
    v.kind = Kind::F32;
  else if (dt == t.f64)
    v.kind = Kind::F64;
  else if (dt == t.i64)
    v.kind = Kind::I64;
  else if (dt == t.u8 || dt == t.b8)
    v.kind = Kind::U8, v.is_bool = dt == t.b8;
  else
    return false;
  if (!attr_is(o, n.is_cpu, Py_True) || !attr_is(o, n.layout, t.strided)) return false;
  if (out && !attr_is(o, n.requires_grad, Py_False)) return false;
  if (!call_is(o, n.is_contiguous, Py_True) || !call_is(o, n.is_neg, Py_False)) return false;
  PyObject* shape = PyObject_GetAttr(o, n.shape);
  if (shape == nullptr || !PyTuple_Check(shape)) {
    Py_XDECREF(shape);
    PyErr_Clear();
    return false;
  }
  const Py_ssize_t nd = PyTuple_GET_SIZE(shape);
  bool ok = nd <= kMaxDims;
  v.ndim = static_cast<int>(nd);
  for (Py_ssize_t d = 0; ok && d < nd; ++d) {
    v.shape[d] = PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, d));
    ok = v.shape[d] >= 0;
  }
  Py_DECREF(shape);
  if (!ok) {
    PyErr_Clear();
    return false;
  }
  PyObject* p = PyObject_CallMethodNoArgs(o, n.data_ptr);
  if (p == nullptr) {
    PyErr_Clear();
    return false;
  }
  v.ptr = static_cast<char*>(PyLong_AsVoidPtr(p));
  Py_DECREF(p);
  if (PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  v.torch = true;
  return finish(v);
}

// An exact numpy.ndarray, aligned and C-contiguous (and writeable for `out`), of a kernel dtype (the native
// singletons: a byte-swapped float64 is not plain).
inline bool numpy_view(PyObject* o, View& v, bool out) {
  const auto* a = py::detail::array_proxy(o);
  constexpr int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  constexpr int writeable = py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  if ((a->flags & need) != need || (out && !(a->flags & writeable))) return false;
  const NumpyDtypes& d = numpy_dtypes();
  PyObject* dt = a->descr;
  if (dt == d.f32)
    v.kind = Kind::F32;
  else if (dt == d.f64)
    v.kind = Kind::F64;
  else if (dt == d.i64)
    v.kind = Kind::I64;
  else if (dt == d.u8 || dt == d.b8)
    v.kind = Kind::U8, v.is_bool = dt == d.b8;
  else
    return false;
  if (a->nd > kMaxDims) return false;
  v.ndim = a->nd;
  for (int k = 0; k < v.ndim; ++k) v.shape[k] = a->dimensions[k];
  v.ptr = a->data;
  return finish(v);
}

// Reads a plain array argument into v (v.obj = o); false when it is not one. `torch_family`: -1 when no array was
// read yet, else whether the earlier ones were tensors (a call mixing NumPy and torch is not plain).
inline bool view(PyObject* o, View& v, int& torch_family, bool out = false) {
  v = View{};
  v.obj = o;
  bool ok = false;
  if (Py_TYPE(o) == py::detail::npy_api::get().PyArray_Type_) {
    ok = torch_family != 1 && numpy_view(o, v, out);
  } else if (torch_family != 0) {
    const Torch* t = torch_api();
    ok = t != nullptr && Py_TYPE(o) == t->tensor && torch_view(o, *t, v, out);
  }
  if (ok) torch_family = v.torch ? 1 : 0;
  return ok;
}

// A new output of kind fk and shape [shape[0], ..., shape[ndim - 1]]: a tensor when the inputs are tensors
// (`torch`), else an array; its view in v.
inline py::object new_output(bool torch, const py::ssize_t* shape, int ndim, Kind fk, View& v) {
  py::object res;
  if (torch) {
    const Torch& t = *torch_api();
    py::tuple dims(ndim);
    for (int d = 0; d < ndim; ++d) dims[d] = py::int_(shape[d]);
    py::dict kw;
    kw["dtype"] = py::handle(fk == Kind::F32 ? t.f32 : t.f64);
    res = py::reinterpret_borrow<py::object>(t.empty)(*dims, **kw);
  } else {
    std::vector<py::ssize_t> dims(shape, shape + ndim);
    res = fk == Kind::F32 ? py::object(py::array_t<float>(dims)) : py::object(py::array_t<double>(dims));
  }
  int fam = torch ? 1 : 0;
  if (!view(res.ptr(), v, fam, true)) throw std::runtime_error("internal: a new output is not a plain array");
  return res;
}

inline PyObject* not_plain() { Py_RETURN_NOTIMPLEMENTED; }

// Python float (exactly) -> x; false otherwise.
inline bool exact_float(PyObject* o, double& x) {
  if (!PyFloat_CheckExact(o)) return false;
  x = PyFloat_AS_DOUBLE(o);
  return true;
}

// Python bool -> b; false otherwise.
inline bool exact_bool(PyObject* o, bool& b) {
  if (o != Py_True && o != Py_False) return false;
  b = o == Py_True;
  return true;
}

// Python int (exactly, not bool) in [lo, hi) -> x; false otherwise.
inline bool exact_int(PyObject* o, int64_t lo, int64_t hi, int64_t& x) {
  if (!PyLong_CheckExact(o)) return false;
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    return false;
  }
  x = v;
  return v >= lo && v < hi;
}

// The index of str o among names[0..n) (exact str), or -1.
inline int str_code(PyObject* o, const char* const* options, int n) {
  if (!PyUnicode_CheckExact(o)) return -1;
  for (int k = 0; k < n; ++k)
    if (PyUnicode_CompareWithASCIIString(o, options[k]) == 0) return k;
  return -1;
}

// C++ exceptions of an entry as Python ones (as pybind11 translates them).
template <PyObject* (*Body)(PyObject* const*, Py_ssize_t)>
PyObject* entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  try {
    return Body(args, nargs);
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const std::invalid_argument& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

inline bool arity(const char* name, Py_ssize_t got, Py_ssize_t want) {
  if (got == want) return true;
  PyErr_Format(PyExc_TypeError, "%s: expected %zd positional arguments, got %zd", name, want, got);
  return false;
}

// An entry as PyMethodDef stores it (METH_FASTCALL functions are stored as PyCFunction).
template <PyObject* (*Body)(PyObject* const*, Py_ssize_t)>
PyCFunction entry_cfunction() noexcept {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&entry<Body>));
}

// Adds a METH_FASTCALL function (def: static storage) to m.
inline void def(py::module_& m, PyMethodDef* def) {
  py::object f = py::reinterpret_steal<py::object>(PyCFunction_NewEx(def, nullptr, m.attr("__name__").ptr()));
  if (!f) throw py::error_already_set();
  m.add_object(def->ml_name, f);
}

}  // namespace rltrain::bind::fast
