// pybind11 registration of the native LunarLander: the single env (discrete or continuous, chosen at
// construction like gymnasium's `continuous=` flag) and the batchers LunarLanderVec / LunarLanderContinuousVec
// (the generic VecEnv<E> through bind_vec_env). Argument checks and numpy conversion only; the physics is
// envs/lunar_lander.hpp. LunarLander draws from numpy's default_rng stream; ReplayLunarLander (rltrain._box2d._testing)
// replays caller-supplied uniforms so tests can give it and gymnasium the same draws.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "rltrain/envs/lunar_lander.hpp"
#include "rltrain/envs/replay_rng.hpp"
#include "rltrain/numpy_rng.hpp"
#include "vec_binding.hpp"

namespace py = pybind11;

namespace rltrain::bind {
namespace {

using envs::LunarLanderConfig;

py::array_t<float> to_array(const float* v, int n) {
  py::array_t<float> a(n);
  std::copy(v, v + n, a.mutable_data());
  return a;
}

// numpy.random.default_rng accepts any non-negative integer (Python or numpy); the environments take 64 bits.
uint64_t to_seed(const py::object& seed) {
  const std::string shown = py::repr(seed).cast<std::string>();
  if (PyBool_Check(seed.ptr()) || !py::hasattr(seed, "__index__"))
    throw py::type_error("seed: expected a non-negative integer, got " + shown);
  const py::int_ v = seed.attr("__index__")();
  if (v < py::int_(0) || v > py::int_(UINT64_MAX))
    throw py::value_error("seed: expected an integer in [0, 2**64), got " + shown);
  return v.cast<uint64_t>();
}

// One Python-facing object for both action types. The GIL stays held: a step is a few tens of microseconds and
// holding it keeps one env object safe from concurrent Python threads; batching is where the GIL is released.
template <class Rng>
class PyLunarLander {
 public:
  using Discrete = envs::LunarLanderT<false, Rng>;
  using Continuous = envs::LunarLanderT<true, Rng>;

  PyLunarLander(bool continuous, const LunarLanderConfig& cfg) {
    if (continuous)
      env_.template emplace<Continuous>(cfg);
    else
      env_.template emplace<Discrete>(cfg);
  }

  bool continuous() const { return std::holds_alternative<Continuous>(env_); }

  void seed(const py::object& s) {
    const uint64_t v = to_seed(s);
    std::visit([&](auto& e) { e.seed(v); }, env_);
  }

  py::array_t<float> reset(const py::object& seed) {
    if (!seed.is_none()) this->seed(seed);
    float obs[8];
    started_ = false;  // a reset that throws leaves no episode to step
    std::visit([&](auto& e) { e.reset(obs); }, env_);
    started_ = true;
    return to_array(obs, 8);
  }

  py::tuple step(const py::object& action) {
    if (!started_) throw py::value_error("LunarLander.step() called before reset()");
    float obs[8];
    envs::StepResult r;
    if (auto* e = std::get_if<Continuous>(&env_)) {
      const auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(action);
      if (!a || a.ndim() != 1 || a.shape(0) != 2)
        throw py::value_error("action: expected 2 floats (main, lateral), got " + py::repr(action).cast<std::string>());
      const float act[2] = {a.at(0), a.at(1)};
      if (!std::isfinite(act[0]) || !std::isfinite(act[1]))
        throw py::value_error("action: expected finite values, got " + py::repr(action).cast<std::string>());
      r = e->step(act, obs);
    } else {
      if (PyBool_Check(action.ptr()) || !py::hasattr(action, "__index__"))
        throw py::type_error("action: expected an integer in [0, 4), got " + py::repr(action).cast<std::string>());
      const int64_t a = action.attr("__index__")().template cast<int64_t>();
      if (a < 0 || a >= Discrete::kNumActions)
        throw py::value_error("action: expected an integer in [0, 4), got " + std::to_string(a));
      r = std::get<Discrete>(env_).step(&a, obs);
    }
    return py::make_tuple(to_array(obs, 8), r.reward, r.terminated, r.truncated);
  }

  py::array_t<float> place_lander(double x, double y, double angle, double vx, double vy, double omega) {
    if (!started_) throw py::value_error("LunarLander.place_lander() called before reset()");
    for (double v : {x, y, angle, vx, vy, omega})
      if (!std::isfinite(v)) throw py::value_error("place_lander: every argument must be finite");
    float obs[8];
    std::visit([&](auto& e) { e.place_lander(x, y, angle, vx, vy, omega, obs); }, env_);
    return to_array(obs, 8);
  }

  template <class F>
  auto visit(F&& f) {
    return std::visit(std::forward<F>(f), env_);
  }

 private:
  std::variant<Discrete, Continuous> env_;
  bool started_ = false;
};

template <class Rng>
py::class_<PyLunarLander<Rng>> bind_lunar(py::module_& m, const char* name, const char* doc) {
  using P = PyLunarLander<Rng>;
  py::class_<P> cls(m, name, doc);
  cls.def(py::init([](bool continuous, double gravity, bool enable_wind, double wind_power, double turbulence_power,
                      bool randomize_angle, bool randomize_pos, bool sparse, int max_episode_steps) {
            LunarLanderConfig cfg;
            cfg.gravity = gravity;
            cfg.enable_wind = enable_wind;
            cfg.wind_power = wind_power;
            cfg.turbulence_power = turbulence_power;
            cfg.randomize_angle = randomize_angle;
            cfg.randomize_pos = randomize_pos;
            cfg.sparse = sparse;
            cfg.max_episode_steps = max_episode_steps;
            return new P(continuous, cfg);
          }),
          py::kw_only(), py::arg("continuous") = false, py::arg("gravity") = -10.0, py::arg("enable_wind") = false,
          py::arg("wind_power") = 15.0, py::arg("turbulence_power") = 1.5, py::arg("randomize_angle") = false,
          py::arg("randomize_pos") = false, py::arg("sparse") = false,
          py::arg("max_episode_steps") = envs::lunar::kMaxEpisodeSteps)
      .def("seed", &P::seed, py::arg("seed"),
           "Reseed the environment RNG (applies from the next reset), like reset(seed=...).")
      .def("reset", &P::reset, py::arg("seed") = py::none(), "Start an episode; returns the observation.")
      .def("step", &P::step, py::arg("action"), "Advance one step; returns (obs, reward, terminated, truncated).")
      .def("place_lander", &P::place_lander, py::arg("x"), py::arg("y"), py::arg("angle") = 0.0, py::arg("vx") = 0.0,
           py::arg("vy") = 0.0, py::arg("angular_velocity") = 0.0,
           "Move the lander rigidly (legs included) to a world pose and velocity; returns the observation and "
           "restarts the reward shaping from it. For crafted test states.")
      .def_property_readonly("continuous", &P::continuous)
      .def_property_readonly("id", [](P& p) { return p.visit([](auto& e) { return std::string(e.kId); }); })
      .def_property_readonly("num_actions", [](P& p) { return p.visit([](auto& e) { return int(e.kNumActions); }); })
      .def_property_readonly("max_episode_steps",
                             [](P& p) { return p.visit([](auto& e) { return e.config().max_episode_steps; }); })
      .def_property_readonly("observation_bounds",
                             [](P& p) {
                               float lo[8], hi[8];
                               p.visit([&](auto& e) { e.obs_bounds(lo, hi); });
                               return py::make_tuple(to_array(lo, 8), to_array(hi, 8));
                             })
      .def_property_readonly("helipad_y", [](P& p) { return p.visit([](auto& e) { return e.helipad_y(); }); })
      .def_property_readonly("terrain_y",
                             [](P& p) {
                               return p.visit([](auto& e) {
                                 const auto& t = e.terrain_y();
                                 return std::vector<double>(t.begin(), t.end());
                               });
                             })
      .def_property_readonly("elapsed_steps", [](P& p) { return p.visit([](auto& e) { return e.elapsed_steps(); }); })
      .def_property_readonly("config", [](P& p) {
        const bool continuous = p.continuous();
        return p.visit([&](auto& e) {
          const LunarLanderConfig& c = e.config();
          py::dict d;
          d["continuous"] = continuous;
          d["gravity"] = c.gravity;
          d["enable_wind"] = c.enable_wind;
          d["wind_power"] = c.wind_power;
          d["turbulence_power"] = c.turbulence_power;
          d["randomize_angle"] = c.randomize_angle;
          d["randomize_pos"] = c.randomize_pos;
          d["sparse"] = c.sparse;
          d["max_episode_steps"] = c.max_episode_steps;
          return d;
        });
      });
  return cls;
}

}  // namespace

void register_lunar(py::module_& m) {
  m.attr("SPAWN_MAX_ANGLE") = envs::lunar::kSpawnMaxAngle;
  m.attr("SPAWN_MAX_DX") = envs::lunar::kSpawnMaxDx;
  m.attr("BOX2D_VERSION") = std::to_string(b2_version.major) + "." + std::to_string(b2_version.minor) + "." +
                            std::to_string(b2_version.revision);

  bind_lunar<NumpyRng>(m, "LunarLander", R"doc(
Native LunarLander-v3 (gymnasium 1.4.0 semantics, Box2D 2.3), one environment, TimeLimit of 1000 steps included.

reset(seed=None) -> obs; step(action) -> (obs, reward, terminated, truncated). Keyword arguments are
gymnasium.make("LunarLander-v3", ...)'s plus rltrain's randomize_angle, randomize_pos and sparse. The random
stream is numpy.random.default_rng's: reset(seed=s) draws gymnasium's terrain and initial push for seed s.)doc");

  // Batchers: keyword arguments are LunarLanderConfig's fields (gravity, enable_wind, wind_power,
  // turbulence_power, randomize_angle, randomize_pos, sparse, max_episode_steps); the class is the action type.
  bind_vec_env<envs::LunarLander>(m, "LunarLanderVec");
  bind_vec_env<envs::LunarLanderContinuous>(m, "LunarLanderContinuousVec");
}

void register_lunar_testing(py::module_& m) {
  bind_lunar<envs::ReplayRng>(m, "ReplayLunarLander", R"doc(
LunarLander whose random draws are replayed from set_uniforms(u) (floats in [0, 1)) instead of an RNG:
uniform(lo, hi) = lo + (hi - lo) * u[k], integers(lo, hi) = lo + floor(u[k] * (hi - lo)). Seeds are ignored.
For parity tests against gymnasium fed the same draws (tests/_replay.py, ReplayGenerator).)doc")
      .def(
          "set_uniforms",
          [](PyLunarLander<envs::ReplayRng>& p,
             const py::array_t<double, py::array::c_style | py::array::forcecast>& u) {
            if (u.ndim() != 1) throw py::value_error("set_uniforms: expected a 1-D array of floats in [0, 1)");
            std::vector<double> v(u.data(), u.data() + u.shape(0));
            for (double x : v)
              if (!(x >= 0.0 && x < 1.0)) throw py::value_error("set_uniforms: every value must lie in [0, 1)");
            p.visit([&](auto& e) { e.rng().set_uniforms(std::move(v)); });
          },
          py::arg("u"), "Replace the draws still to come (the next reset starts from u[0]).")
      .def_property_readonly("draws_consumed", [](PyLunarLander<envs::ReplayRng>& p) {
        return p.visit([](auto& e) { return e.rng().consumed(); });
      });
}

}  // namespace rltrain::bind
