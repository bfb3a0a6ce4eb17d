// Entry point of rltrain._core: wires the topic registrations, nothing else.
#include <pybind11/pybind11.h>

#include <string>

namespace py = pybind11;

namespace rltrain::bind {
void register_kernels(py::module_& m);
void register_envs(py::module_& m);
void register_ppo(py::module_& m);
void register_fork(py::module_& m);
}  // namespace rltrain::bind

PYBIND11_MODULE(_core, m) {
  m.doc() = "rltrain compiled core: kernels, thread pool, native environments";
  py::dict info;
#if defined(RLTRAIN_SANITIZED)
  info["sanitizers"] = "address,undefined";
#elif defined(RLTRAIN_TSAN)
  info["sanitizers"] = "thread";
#else
  info["sanitizers"] = "";
#endif
#ifdef NDEBUG
  info["optimized"] = true;
#else
  info["optimized"] = false;
#endif
#if defined(__VERSION__)
  info["compiler"] = __VERSION__;
#elif defined(_MSC_FULL_VER)
  info["compiler"] = "MSVC " + std::to_string(_MSC_FULL_VER);
#endif
  m.attr("build_info") = info;
  rltrain::bind::register_kernels(m);
  rltrain::bind::register_envs(m);
  rltrain::bind::register_ppo(m);
  rltrain::bind::register_fork(m);
}
