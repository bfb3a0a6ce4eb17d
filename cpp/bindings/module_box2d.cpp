// Entry point of rltrain._box2d, the optional extension holding Box2D 2.3 (compiled in statically): kept out of
// rltrain._core so that a build without the Box2D sources still gives a working package. Wires the
// registrations, nothing else:
//   rltrain._box2d            LunarLander, LunarLanderVec, LunarLanderContinuousVec, constants  (register_lunar.cpp)
//   rltrain._box2d._testing   ReplayLunarLander (caller-supplied draws, for parity tests)        (register_lunar.cpp)
#include <pybind11/pybind11.h>

#include "submodule.hpp"

namespace py = pybind11;

namespace rltrain::bind {
void register_lunar(py::module_& m);
void register_lunar_testing(py::module_& m);
}  // namespace rltrain::bind

PYBIND11_MODULE(_box2d, m) {
  using namespace rltrain::bind;
  m.doc() = "rltrain native Box2D environments (LunarLander-v3 on Box2D 2.3, bit-identical to gymnasium)";
  register_lunar(m);
  py::module_ testing = submodule(m, "_testing", "Test scaffolding: not part of the API.");
  register_lunar_testing(testing);
}
