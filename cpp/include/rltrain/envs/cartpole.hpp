// CartPole-v1, an operation-for-operation port of gymnasium 1.4's classic_control/cartpole.py (Euler
// integrator, float64 state, float32 observations) with its TimeLimit of 500 steps.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "rltrain/envs/env.hpp"
#include "rltrain/numpy_rng.hpp"

namespace rltrain::envs {

class CartPole {
 public:
  static constexpr const char* kId = "CartPole-v1";
  static constexpr int kObsDim = 4;
  static constexpr int kActDim = 1;
  static constexpr bool kDiscrete = true;
  static constexpr int kNumActions = 2;
  static constexpr int kMaxEpisodeSteps = 500;
  using Action = int64_t;

  struct Config {
    bool sutton_barto_reward = false;  // reward 0 per step and -1 on termination (gymnasium's option)
    int max_episode_steps = kMaxEpisodeSteps;
    template <class F>
    void for_each_field(F&& f) {
      f("sutton_barto_reward", sutton_barto_reward);
      f("max_episode_steps", max_episode_steps);
    }
  };

  CartPole() = default;
  explicit CartPole(const Config& cfg) : cfg_(cfg) {}

  const Config& config() const { return cfg_; }

  void obs_bounds(float* low, float* high) const {
    const float inf = std::numeric_limits<float>::infinity();
    const float h[kObsDim] = {static_cast<float>(kXThreshold * 2), inf, static_cast<float>(kThetaThreshold * 2), inf};
    for (int i = 0; i < kObsDim; ++i) high[i] = h[i], low[i] = -h[i];
  }
  void act_bounds(float*, float*) const {}

  void seed(uint64_t s) { rng_.seed(s); }

  void reset(float* obs) {
    for (double& v : state_) v = rng_.uniform(-0.05, 0.05);
    steps_beyond_terminated_ = -1;
    elapsed_ = 0;
    write_obs(obs);
  }

  StepResult step(const Action* a, float* obs) {
    double x = state_[0], x_dot = state_[1], theta = state_[2], theta_dot = state_[3];
    const double force = a[0] == 1 ? kForceMag : -kForceMag;
    const double costheta = std::cos(theta);
    const double sintheta = std::sin(theta);
    const double temp = (force + kPoleMassLength * (theta_dot * theta_dot) * sintheta) / kTotalMass;
    const double thetaacc = (kGravity * sintheta - costheta * temp) /
                            (kLength * (4.0 / 3.0 - kMassPole * (costheta * costheta) / kTotalMass));
    const double xacc = temp - kPoleMassLength * thetaacc * costheta / kTotalMass;
    x = x + kTau * x_dot;
    x_dot = x_dot + kTau * xacc;
    theta = theta + kTau * theta_dot;
    theta_dot = theta_dot + kTau * thetaacc;
    state_[0] = x, state_[1] = x_dot, state_[2] = theta, state_[3] = theta_dot;

    StepResult r;
    r.terminated = x < -kXThreshold || x > kXThreshold || theta < -kThetaThreshold || theta > kThetaThreshold;
    if (!r.terminated) {
      r.reward = cfg_.sutton_barto_reward ? 0.0 : 1.0;
    } else if (steps_beyond_terminated_ < 0) {
      steps_beyond_terminated_ = 0;
      r.reward = cfg_.sutton_barto_reward ? -1.0 : 1.0;
    } else {
      // Stepping past termination is undefined in gymnasium too; it pays 0 (or -1), as here.
      ++steps_beyond_terminated_;
      r.reward = cfg_.sutton_barto_reward ? -1.0 : 0.0;
    }
    r.truncated = ++elapsed_ >= cfg_.max_episode_steps;
    write_obs(obs);
    return r;
  }

 private:
  static constexpr double kGravity = 9.8;
  static constexpr double kMassCart = 1.0;
  static constexpr double kMassPole = 0.1;
  static constexpr double kTotalMass = kMassPole + kMassCart;
  static constexpr double kLength = 0.5;  // half the pole's length
  static constexpr double kPoleMassLength = kMassPole * kLength;
  static constexpr double kForceMag = 10.0;
  static constexpr double kTau = 0.02;
  static constexpr double kPi = 3.141592653589793;
  static constexpr double kThetaThreshold = 12 * 2 * kPi / 360;
  static constexpr double kXThreshold = 2.4;

  void write_obs(float* obs) const {
    for (int i = 0; i < kObsDim; ++i) obs[i] = static_cast<float>(state_[i]);
  }

  Config cfg_;
  NumpyRng rng_;
  double state_[kObsDim] = {0, 0, 0, 0};
  int steps_beyond_terminated_ = -1;  // -1: gymnasium's None
  int elapsed_ = 0;
};

}  // namespace rltrain::envs
