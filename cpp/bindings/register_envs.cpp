// rltrain._core.envs: the classic-control native environments, a batcher class (<Name>Vec) and a single-env class
// (<Name>) per env, and NATIVE_ENVS (gymnasium id -> class name).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "rltrain/envs/acrobot.hpp"
#include "rltrain/envs/cartpole.hpp"
#include "rltrain/envs/mountain_car.hpp"
#include "rltrain/envs/mountain_car_continuous.hpp"
#include "rltrain/envs/pendulum.hpp"
#include "vec_binding.hpp"

namespace py = pybind11;

namespace rltrain::bind {

namespace {

template <class E>
void bind_env(py::module_& m, const std::string& name) {
  bind_vec_env<E>(m, (name + "Vec").c_str());
  bind_single_env<E>(m, name.c_str());
}

}  // namespace

void register_envs(py::module_& m) {
  bind_env<envs::CartPole>(m, "CartPole");
  bind_env<envs::Acrobot>(m, "Acrobot");
  bind_env<envs::MountainCar>(m, "MountainCar");
  bind_env<envs::MountainCarContinuous>(m, "MountainCarContinuous");
  bind_env<envs::Pendulum>(m, "Pendulum");

  py::dict ids;
  ids[envs::CartPole::kId] = "CartPole";
  ids[envs::Acrobot::kId] = "Acrobot";
  ids[envs::MountainCar::kId] = "MountainCar";
  ids[envs::MountainCarContinuous::kId] = "MountainCarContinuous";
  ids[envs::Pendulum::kId] = "Pendulum";
  m.attr("NATIVE_ENVS") = ids;
}

}  // namespace rltrain::bind
