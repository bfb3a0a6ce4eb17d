// Pendulum-v1, an operation-for-operation port of gymnasium 1.4's classic_control/pendulum.py with its
// TimeLimit of 200 steps. The torque arrives as float32 (the action space's dtype), so, as in gymnasium,
// the terms that involve it are computed in float32 (NEP 50) before joining the float64 state.
#pragma once

#include <cmath>
#include <cstdint>

#include "rltrain/envs/env.hpp"
#include "rltrain/numpy_math.hpp"
#include "rltrain/numpy_rng.hpp"

namespace rltrain::envs {

class Pendulum {
 public:
  static constexpr const char* kId = "Pendulum-v1";
  static constexpr int kObsDim = 3;
  static constexpr int kActDim = 1;
  static constexpr bool kDiscrete = false;
  static constexpr int kNumActions = 0;
  static constexpr int kMaxEpisodeSteps = 200;
  using Action = float;

  struct Config {
    double g = 10.0;  // gravity
    int max_episode_steps = kMaxEpisodeSteps;
    template <class F>
    void for_each_field(F&& f) {
      f("g", g);
      f("max_episode_steps", max_episode_steps);
    }
  };

  Pendulum() = default;
  explicit Pendulum(const Config& cfg) : cfg_(cfg) {}

  const Config& config() const { return cfg_; }

  void obs_bounds(float* low, float* high) const {
    const float h[kObsDim] = {1.0f, 1.0f, static_cast<float>(kMaxSpeed)};
    for (int i = 0; i < kObsDim; ++i) high[i] = h[i], low[i] = -h[i];
  }
  void act_bounds(float* low, float* high) const {
    low[0] = static_cast<float>(-kMaxTorque);
    high[0] = static_cast<float>(kMaxTorque);
  }

  void seed(uint64_t s) { rng_.seed(s); }

  void reset(float* obs) {
    // uniform(low=-high, high=high) with high = [pi, 1]: element-wise, in order.
    const double high[2] = {kPi, 1.0};
    for (int i = 0; i < 2; ++i) {
      const double low = -high[i];
      const double range = high[i] - low;
      s_[i] = low + range * rng_.random();
    }
    elapsed_ = 0;
    write_obs(obs);
  }

  StepResult step(const Action* a, float* obs) {
    const double th = s_[0], thdot = s_[1];
    const double g = cfg_.g;
    // u = np.clip(u, -max_torque, max_torque)[0]: float32
    const float u = npmath::clip(a[0], static_cast<float>(-kMaxTorque), static_cast<float>(kMaxTorque));
    // 0.001 * (u**2) is float32 * Python float -> float32.
    const float u_cost = static_cast<float>(0.001) * npmath::powf(u, 2.0f);
    const double costs = npmath::pow(angle_normalize(th), 2) + 0.1 * npmath::pow(thdot, 2) + u_cost;

    // 3.0 / (m * l**2) * u is a Python float times float32 -> float32.
    const float u_acc = static_cast<float>(3.0 / (kM * npmath::pow(kL, 2))) * u;
    double newthdot = thdot + (3 * g / (2 * kL) * std::sin(th) + u_acc) * kDt;
    newthdot = npmath::clip(newthdot, -kMaxSpeed, kMaxSpeed);
    const double newth = th + newthdot * kDt;
    s_[0] = newth;
    s_[1] = newthdot;

    StepResult r;
    r.reward = -costs;
    r.truncated = ++elapsed_ >= cfg_.max_episode_steps;
    write_obs(obs);
    return r;
  }

 private:
  static constexpr double kPi = 3.141592653589793;
  static constexpr double kMaxSpeed = 8;
  static constexpr double kMaxTorque = 2.0;
  static constexpr double kDt = 0.05;
  static constexpr double kM = 1.0;
  static constexpr double kL = 1.0;

  static double angle_normalize(double x) { return npmath::remainder(x + kPi, 2 * kPi) - kPi; }

  void write_obs(float* obs) const {
    obs[0] = static_cast<float>(std::cos(s_[0]));
    obs[1] = static_cast<float>(std::sin(s_[0]));
    obs[2] = static_cast<float>(s_[1]);
  }

  Config cfg_;
  NumpyRng rng_;
  double s_[2] = {0, 0};
  int elapsed_ = 0;
};

}  // namespace rltrain::envs
