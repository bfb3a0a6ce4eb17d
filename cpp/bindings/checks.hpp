// Argument checks shared by the bindings: dtype, ndim, shape and contiguity, raising ValueError/TypeError
// that name the argument, so a direct call into _core can never read or write out of bounds.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace rltrain::bind {

namespace py = pybind11;

enum class Kind { F32, F64, U8, I64, Other };

inline Kind kind_of(const py::array& a) {
  const char k = a.dtype().kind();
  const auto sz = a.dtype().itemsize();
  if (k == 'f' && sz == 4) return Kind::F32;
  if (k == 'f' && sz == 8) return Kind::F64;
  if ((k == 'b' || k == 'u') && sz == 1) return Kind::U8;
  if (k == 'i' && sz == 8) return Kind::I64;
  return Kind::Other;
}

// "(3,)", "(2, 4)": a shape as NumPy prints it.
template <class Seq>
std::string shape_str(const Seq& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + (dims.size() == 1 ? ",)" : ")");
}

inline std::string shape_str(const py::array& a) {
  return shape_str(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

inline py::array as_array(py::handle obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + ": expected a numpy.ndarray, got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  return py::reinterpret_borrow<py::array>(obj);
}

inline void require_shape(const py::array& a, const char* name, const std::vector<py::ssize_t>& shape) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (std::size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok) throw py::value_error(std::string(name) + ": expected shape " + shape_str(shape) + ", got " + shape_str(a));
  constexpr int kAligned = 0x0100;  // NPY_ARRAY_ALIGNED: the kernels dereference typed pointers
  if (!(a.flags() & py::array::c_style) || !(a.flags() & kAligned))
    throw py::value_error(std::string(name) + ": expected an aligned C-contiguous array");
}

inline void require_float(const py::array& a, const char* name, Kind want) {
  const Kind k = kind_of(a);
  if (k != want)
    throw py::type_error(std::string(name) + ": expected dtype " + (want == Kind::F32 ? "float32" : "float64") +
                         ", got " + dtype_str(a));
}

inline void require_writable(const py::array& a, const char* name) {
  if (!a.writeable()) throw py::value_error(std::string(name) + ": output array is read-only");
}

inline Kind require_flag(const py::array& a, const char* name) {
  const Kind k = kind_of(a);
  if (k != Kind::U8 && k != Kind::F32 && k != Kind::F64)
    throw py::type_error(std::string(name) + ": expected dtype bool, uint8, float32 or float64, got " + dtype_str(a));
  return k;
}

// The leading array of a kernel: `ndim` axes named by `axes` ("[T, N]"), float32 or float64, C-contiguous;
// returns its kind, which the kernel's other float arguments must share.
inline Kind require_float_array(const py::array& a, const char* name, py::ssize_t ndim, const char* axes) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array " + axes +
                          ", got shape " + shape_str(a));
  const Kind k = kind_of(a);
  if (k != Kind::F32 && k != Kind::F64)
    throw py::type_error(std::string(name) + ": expected dtype float32 or float64, got " + dtype_str(a));
  require_shape(a, name, std::vector<py::ssize_t>(a.shape(), a.shape() + ndim));
  return k;
}

// An output argument: the caller's array, or a new one of the given dtype and shape when None.
inline py::array out_or_new(py::object o, const char* name, Kind fk, const std::vector<py::ssize_t>& shape) {
  if (o.is_none()) {
    if (fk == Kind::F32) return py::array_t<float>(shape);
    return py::array_t<double>(shape);
  }
  py::array a = as_array(o, name);
  require_float(a, name, fk);
  require_shape(a, name, shape);
  require_writable(a, name);
  return a;
}

// gamma, lam: a finite number in [0, 1].
inline void check_unit(double x, const char* name) {
  if (!std::isfinite(x) || x < 0.0 || x > 1.0)
    throw py::value_error(std::string(name) + ": expected a finite number in [0, 1], got " + std::to_string(x));
}

template <typename T>
const T* cptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <typename T>
T* mptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

}  // namespace rltrain::bind
