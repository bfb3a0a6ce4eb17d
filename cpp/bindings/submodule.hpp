// Submodules of an extension module, importable both ways: `from rltrain._core import kernels` (an attribute)
// and `import rltrain._core.kernels` (registered in sys.modules under its full name).
#pragma once

#include <pybind11/pybind11.h>

namespace rltrain::bind {

namespace py = pybind11;

inline py::module_ submodule(py::module_& parent, const char* name, const char* doc) {
  py::module_ sub = parent.def_submodule(name, doc);
  py::module_::import("sys").attr("modules")[sub.attr("__name__")] = sub;
  return sub;
}

}  // namespace rltrain::bind
