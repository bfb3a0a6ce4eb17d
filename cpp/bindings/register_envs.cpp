// pybind11 registration of the classic-control native environments: a batcher class (<Name>Vec) and a
// single-env class (<Name>) per env, plus test-only hooks into the NumPy-exact RNG and maths.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "rltrain/envs/acrobot.hpp"
#include "rltrain/envs/cartpole.hpp"
#include "rltrain/envs/mountain_car.hpp"
#include "rltrain/envs/mountain_car_continuous.hpp"
#include "rltrain/envs/pendulum.hpp"
#include "rltrain/numpy_math.hpp"
#include "rltrain/numpy_rng.hpp"
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

  m.def(
      "_numpy_rng_uniform",
      [](uint64_t seed, std::size_t n, double low, double high) {
        NumpyRng rng(seed);
        py::array_t<double> out(static_cast<py::ssize_t>(n));
        double* p = out.mutable_data();
        for (std::size_t i = 0; i < n; ++i) p[i] = rng.uniform(low, high);
        return out;
      },
      py::arg("seed"), py::arg("n"), py::arg("low") = 0.0, py::arg("high") = 1.0,
      "Test hook: n draws of numpy.random.default_rng(seed).uniform(low, high).");
  m.def(
      "_numpy_f32_trig",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> x, bool cosine) {
        py::array_t<float> out(x.size());
        const float* src = x.data();
        float* dst = out.mutable_data();
        for (py::ssize_t i = 0; i < x.size(); ++i) dst[i] = cosine ? npmath::cos_f32(src[i]) : npmath::sin_f32(src[i]);
        return out;
      },
      py::arg("x"), py::arg("cosine"), "Test hook: np.cos / np.sin of float32 scalars, as NumPy computes them.");
}

}  // namespace rltrain::bind
