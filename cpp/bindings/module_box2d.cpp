// Entry point of rltrain._box2d, the optional extension holding Box2D 2.3 (compiled in statically): kept out of
// rltrain._core so that a build without the Box2D sources still gives a working package. Wires the
// registrations, nothing else.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace rltrain::bind {
void register_lunar(py::module_& m);
}  // namespace rltrain::bind

PYBIND11_MODULE(_box2d, m) {
  m.doc() = "rltrain native Box2D environments (LunarLander-v3 on Box2D 2.3, bit-identical to gymnasium)";
  rltrain::bind::register_lunar(m);
}
