// pybind11 registration of the native environments (filled in by the rollout-engine work).
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace rltrain::bind {
void register_envs(py::module_& m) { (void)m; }
}  // namespace rltrain::bind
