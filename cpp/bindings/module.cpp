// Entry point of rltrain._core: wires the topic registrations into their submodules, nothing else.
//   rltrain._core           build_info, MAX_THREADS, default_num_threads, available_cpus  (register_platform.cpp)
//   rltrain._core.kernels   gae, discounted_returns, group advantages, running stats, ppo_loss_grad, kernel pool
//                           (register_kernels.cpp, register_ppo.cpp); LLM group advantages    (register_llm_group.cpp);
//                           per-token LLM kernels                                           (register_llm_token.cpp)
//   rltrain._core.envs      classic-control envs and their batchers, NATIVE_ENVS            (register_envs.cpp);
//                           board games, GAME_ENVS, search opponents                    (register_games.cpp)
//   rltrain._core.sync      the fork backend's shared-word handshake                        (register_sync.cpp)
//   rltrain._core._testing  test scaffolding                                                (register_testing.cpp);
//                           the LLM bench's bare-loop ceilings                             (register_llm_floor.cpp)
#include <pybind11/pybind11.h>

#include "submodule.hpp"

namespace py = pybind11;

namespace rltrain::bind {
void register_platform(py::module_& m);
void register_kernels(py::module_& m);
void register_llm_token(py::module_& m);
void register_ppo(py::module_& m);
void register_llm_group(py::module_& m);
void register_envs(py::module_& m);
void register_games(py::module_& m);
void register_sync(py::module_& m);
void register_testing(py::module_& m);
void register_llm_floor(py::module_& m);
}  // namespace rltrain::bind

PYBIND11_MODULE(_core, m) {
  using namespace rltrain::bind;
  m.doc() = "rltrain compiled core: kernels, thread pool, native environments";
  register_platform(m);
  py::module_ kernels = submodule(m, "kernels", "Numeric kernels on the kernel thread pool (GIL released).");
  register_kernels(kernels);
  register_llm_token(kernels);
  register_ppo(kernels);
  register_llm_group(kernels);
  py::module_ envs = submodule(m, "envs", "Native classic-control environments and their thread-pool batchers.");
  register_envs(envs);
  register_games(envs);
  py::module_ sync = submodule(m, "sync", "Shared-memory sequence words of the fork backend's handshake.");
  register_sync(sync);
  py::module_ testing = submodule(m, "_testing", "Test scaffolding: not part of the API.");
  register_testing(testing);
  register_llm_floor(testing);
}
