// rltrain._core._testing: test scaffolding, out of the public namespace. SleepEnvVec, a test-double env batched by
// the real VecEnv to reach its scheduling, timeout and error paths, and hooks into the NumPy-exact RNG and maths
// (numpy_rng.hpp, numpy_math.hpp) that the tests compare with NumPy itself.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

#include "rltrain/envs/env.hpp"
#include "rltrain/numpy_math.hpp"
#include "rltrain/numpy_rng.hpp"
#include "vec_binding.hpp"

namespace py = pybind11;

namespace rltrain::bind {

namespace {

// Test double for VecEnv's scheduling, timeout and error paths: action k < 999 sleeps k milliseconds and pays
// reward k; action 999 throws from step(). The observation is [seed, steps taken].
class SleepEnv {
 public:
  static constexpr const char* kId = "_Sleep-v0";
  static constexpr int kObsDim = 2;
  static constexpr int kActDim = 1;
  static constexpr bool kDiscrete = true;
  static constexpr int kNumActions = 1000;
  static constexpr int kMaxEpisodeSteps = 1000000;
  using Action = int64_t;
  using Config = envs::TimeLimitConfig<kMaxEpisodeSteps>;
  SleepEnv() = default;
  explicit SleepEnv(const Config& cfg) : cfg_(cfg) {}
  const Config& config() const { return cfg_; }
  void obs_bounds(float* low, float* high) const {
    for (int i = 0; i < kObsDim; ++i) low[i] = 0.0f, high[i] = std::numeric_limits<float>::infinity();
  }
  void act_bounds(float*, float*) const {}
  void seed(uint64_t s) { seed_ = s; }
  void reset(float* obs) {
    steps_ = 0;
    write_obs(obs);
  }
  envs::StepResult step(const Action* a, float* obs) {
    if (a[0] == 999) throw std::runtime_error("SleepEnv: step failed on purpose");
    std::this_thread::sleep_for(std::chrono::milliseconds(a[0]));
    ++steps_;
    write_obs(obs);
    envs::StepResult r;
    r.reward = static_cast<double>(a[0]);
    r.truncated = steps_ >= cfg_.max_episode_steps;
    return r;
  }

 private:
  void write_obs(float* obs) const {
    obs[0] = static_cast<float>(seed_);
    obs[1] = static_cast<float>(steps_);
  }
  Config cfg_;
  uint64_t seed_ = 0;
  int steps_ = 0;
};

}  // namespace

void register_testing(py::module_& m) {
  bind_vec_env<SleepEnv>(m, "SleepEnvVec");

  m.def(
      "numpy_rng_uniform",
      [](uint64_t seed, std::size_t n, double low, double high) {
        NumpyRng rng(seed);
        py::array_t<double> out(static_cast<py::ssize_t>(n));
        double* p = out.mutable_data();
        for (std::size_t i = 0; i < n; ++i) p[i] = rng.uniform(low, high);
        return out;
      },
      py::arg("seed"), py::arg("n"), py::arg("low") = 0.0, py::arg("high") = 1.0,
      "n draws of numpy.random.default_rng(seed).uniform(low, high).");
  m.def(
      "numpy_rng_draws",
      [](uint64_t seed, const py::list& ops) {
        // Interleaved uniform/integers calls on one generator: exercises PCG64's buffered 32-bit half-words.
        NumpyRng rng(seed);
        py::list out;
        for (py::handle op : ops) {
          const auto t = op.cast<py::tuple>();
          if (t.size() != 3) throw py::value_error("ops: expected (kind, low, high) tuples");
          const std::string kind = t[0].cast<std::string>();
          if (kind == "uniform") {
            out.append(rng.uniform(t[1].cast<double>(), t[2].cast<double>()));
          } else if (kind == "integers") {
            try {
              out.append(rng.integers(t[1].cast<int64_t>(), t[2].cast<int64_t>()));
            } catch (const std::invalid_argument& e) {
              throw py::value_error(e.what());
            }
          } else {
            throw py::value_error("ops: kind must be 'uniform' or 'integers', got '" + kind + "'");
          }
        }
        return out;
      },
      py::arg("seed"), py::arg("ops"),
      "default_rng(seed) called with each (kind, low, high) in ops, kind 'uniform' or 'integers'.");
  m.def(
      "numpy_f32_trig",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> x, bool cosine) {
        py::array_t<float> out(x.size());
        const float* src = x.data();
        float* dst = out.mutable_data();
        for (py::ssize_t i = 0; i < x.size(); ++i) dst[i] = cosine ? npmath::cos_f32(src[i]) : npmath::sin_f32(src[i]);
        return out;
      },
      py::arg("x"), py::arg("cosine"), "np.cos / np.sin of float32 scalars, as NumPy computes them.");
}

}  // namespace rltrain::bind
