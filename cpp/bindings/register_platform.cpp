// rltrain._core itself: build_info, and the thread-count rules of the whole process (MAX_THREADS,
// default_num_threads, available_cpus) that the kernel pool, the native batcher and the fork backend share.
#include <pybind11/pybind11.h>

#include <string>

#include "rltrain/platform.hpp"
#include "rltrain/thread_pool.hpp"

namespace py = pybind11;

namespace rltrain::bind {

namespace {

py::dict build_info() {
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
  return info;
}

}  // namespace

void register_platform(py::module_& m) {
  m.attr("build_info") = build_info();
  m.attr("MAX_THREADS") = kMaxThreads;
  m.def("default_num_threads", &default_num_threads,
        "RLTRAIN_NUM_THREADS, else the CPUs this process may use (affinity mask and cgroup quota): the default of\n"
        "the kernel pool, the native batcher and the fork backend.");
  m.def("available_cpus", &available_cpus, "CPUs usable by this process (affinity mask, cgroup CPU quota).");
}

}  // namespace rltrain::bind
