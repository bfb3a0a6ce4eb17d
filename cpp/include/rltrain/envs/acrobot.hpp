// Acrobot-v1, an operation-for-operation port of gymnasium 1.4's classic_control/acrobot.py ("book" dynamics,
// one classic RK4 step of dt = 0.2, no torque noise) with its TimeLimit of 500 steps.
// The reset state is float32 (gymnasium casts it), so the first observation uses NumPy's float32 cos/sin;
// after a step the state is float64.
#pragma once

#include <cstdint>

#include "rltrain/envs/env.hpp"
#include "rltrain/numpy_math.hpp"
#include "rltrain/numpy_rng.hpp"

namespace rltrain::envs {

class Acrobot {
 public:
  static constexpr const char* kId = "Acrobot-v1";
  static constexpr int kObsDim = 6;
  static constexpr int kActDim = 1;
  static constexpr bool kDiscrete = true;
  static constexpr int kNumActions = 3;
  static constexpr int kMaxEpisodeSteps = 500;
  using Action = int64_t;

  using Config = TimeLimitConfig<kMaxEpisodeSteps>;

  Acrobot() = default;
  explicit Acrobot(const Config& cfg) : cfg_(cfg) {}

  const Config& config() const { return cfg_; }

  void obs_bounds(float* low, float* high) const {
    const float h[kObsDim] = {1.0f, 1.0f, 1.0f, 1.0f, static_cast<float>(kMaxVel1), static_cast<float>(kMaxVel2)};
    for (int i = 0; i < kObsDim; ++i) high[i] = h[i], low[i] = -h[i];
  }
  void act_bounds(float*, float*) const {}

  void seed(uint64_t s) { rng_.seed(s); }

  void reset(float* obs) {
    float s32[4];
    for (int i = 0; i < 4; ++i) s32[i] = static_cast<float>(rng_.uniform(-0.1, 0.1));
    for (int i = 0; i < 4; ++i) s_[i] = s32[i];
    elapsed_ = 0;
    obs[0] = npmath::cos_f32(s32[0]);
    obs[1] = npmath::sin_f32(s32[0]);
    obs[2] = npmath::cos_f32(s32[1]);
    obs[3] = npmath::sin_f32(s32[1]);
    obs[4] = s32[2];
    obs[5] = s32[3];
  }

  StepResult step(const Action* a, float* obs) {
    static constexpr double kTorques[3] = {-1.0, 0.0, 1.0};
    const double torque = kTorques[a[0]];

    // rk4(self._dsdt, [s..., torque], [0, dt]): one step; the torque component has zero derivative.
    const double dt = kDt - 0;
    const double dt2 = dt / 2.0;
    double y0[5] = {s_[0], s_[1], s_[2], s_[3], torque};
    double k1[5], k2[5], k3[5], k4[5], y[5];
    dsdt(y0, k1);
    for (int i = 0; i < 5; ++i) y[i] = y0[i] + dt2 * k1[i];
    dsdt(y, k2);
    for (int i = 0; i < 5; ++i) y[i] = y0[i] + dt2 * k2[i];
    dsdt(y, k3);
    for (int i = 0; i < 5; ++i) y[i] = y0[i] + dt * k3[i];
    dsdt(y, k4);
    const double dt6 = dt / 6.0;
    double ns[4];
    for (int i = 0; i < 4; ++i) ns[i] = y0[i] + dt6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);

    ns[0] = wrap(ns[0], -kPi, kPi);
    ns[1] = wrap(ns[1], -kPi, kPi);
    ns[2] = bound(ns[2], -kMaxVel1, kMaxVel1);
    ns[3] = bound(ns[3], -kMaxVel2, kMaxVel2);
    for (int i = 0; i < 4; ++i) s_[i] = ns[i];

    StepResult r;
    r.terminated = -std::cos(s_[0]) - std::cos(s_[1] + s_[0]) > 1.0;
    r.reward = r.terminated ? 0.0 : -1.0;
    r.truncated = ++elapsed_ >= cfg_.max_episode_steps;
    obs[0] = static_cast<float>(std::cos(s_[0]));
    obs[1] = static_cast<float>(std::sin(s_[0]));
    obs[2] = static_cast<float>(std::cos(s_[1]));
    obs[3] = static_cast<float>(std::sin(s_[1]));
    obs[4] = static_cast<float>(s_[2]);
    obs[5] = static_cast<float>(s_[3]);
    return r;
  }

 private:
  static constexpr double kPi = 3.141592653589793;
  static constexpr double kDt = 0.2;
  static constexpr double kM1 = 1.0, kM2 = 1.0;    // link masses
  static constexpr double kL1 = 1.0;               // length of link 1
  static constexpr double kLc1 = 0.5, kLc2 = 0.5;  // centre-of-mass positions
  static constexpr double kI1 = 1.0, kI2 = 1.0;    // moments of inertia
  static constexpr double kG = 9.8;
  static constexpr double kMaxVel1 = 4 * kPi;
  static constexpr double kMaxVel2 = 9 * kPi;

  // Python `x**2` on a float64 goes through libm pow; the constants' squares are exact either way.
  static double sq(double x) { return npmath::pow(x, 2); }

  // AcrobotEnv._dsdt, book dynamics, in the source's evaluation order.
  static void dsdt(const double* sa, double* out) {
    const double a = sa[4];
    const double theta1 = sa[0], theta2 = sa[1], dtheta1 = sa[2], dtheta2 = sa[3];
    const double d1 = kM1 * sq(kLc1) + kM2 * (sq(kL1) + sq(kLc2) + 2 * kL1 * kLc2 * std::cos(theta2)) + kI1 + kI2;
    const double d2 = kM2 * (sq(kLc2) + kL1 * kLc2 * std::cos(theta2)) + kI2;
    const double phi2 = kM2 * kLc2 * kG * std::cos(theta1 + theta2 - kPi / 2.0);
    const double phi1 = -kM2 * kL1 * kLc2 * sq(dtheta2) * std::sin(theta2) -
                        2 * kM2 * kL1 * kLc2 * dtheta2 * dtheta1 * std::sin(theta2) +
                        (kM1 * kLc1 + kM2 * kL1) * kG * std::cos(theta1 - kPi / 2) + phi2;
    const double ddtheta2 = (a + d2 / d1 * phi1 - kM2 * kL1 * kLc2 * sq(dtheta1) * std::sin(theta2) - phi2) /
                            (kM2 * sq(kLc2) + kI2 - sq(d2) / d1);
    const double ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    out[0] = dtheta1;
    out[1] = dtheta2;
    out[2] = ddtheta1;
    out[3] = ddtheta2;
    out[4] = 0.0;
  }

  static double wrap(double x, double m, double M) {
    const double diff = M - m;
    while (x > M) x = x - diff;
    while (x < m) x = x + diff;
    return x;
  }
  static double bound(double x, double m, double M) { return npmath::py_min(npmath::py_max(x, m), M); }

  Config cfg_;
  NumpyRng rng_;
  double s_[4] = {0, 0, 0, 0};
  int elapsed_ = 0;
};

}  // namespace rltrain::envs
