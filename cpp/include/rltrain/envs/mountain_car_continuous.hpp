// MountainCarContinuous-v0, an operation-for-operation port of gymnasium 1.4's
// classic_control/continuous_mountain_car.py with its TimeLimit of 999 steps.
// Its arithmetic mixes NumPy float32, NumPy float64 and Python floats (the state is float64 after reset and
// float32 after every step; the force is float32 unless clipped to a Python float), so each line is written
// with npmath::Scalar, which promotes exactly as NumPy 2 does (NEP 50).
#pragma once

#include <cmath>
#include <cstdint>

#include "rltrain/envs/env.hpp"
#include "rltrain/envs/mountain_car.hpp"
#include "rltrain/numpy_math.hpp"
#include "rltrain/numpy_rng.hpp"

namespace rltrain::envs {

class MountainCarContinuous : MountainCarTrack {
 public:
  static constexpr const char* kId = "MountainCarContinuous-v0";
  static constexpr int kObsDim = 2;
  static constexpr int kActDim = 1;
  static constexpr bool kDiscrete = false;
  static constexpr int kNumActions = 0;
  static constexpr int kMaxEpisodeSteps = 999;
  using Action = float;

  using Config = MountainCarTrack::Config<kMaxEpisodeSteps>;

  MountainCarContinuous() = default;
  explicit MountainCarContinuous(const Config& cfg) : cfg_(cfg) {}

  const Config& config() const { return cfg_; }

  void obs_bounds(float* low, float* high) const { MountainCarTrack::obs_bounds(low, high); }
  void act_bounds(float* low, float* high) const {
    low[0] = static_cast<float>(kMinAction);
    high[0] = static_cast<float>(kMaxAction);
  }

  void seed(uint64_t s) { rng_.seed(s); }

  void reset(float* obs) {
    // np.array([uniform(-0.6, -0.4), 0]): a float64 state.
    state_[0] = Scalar::f64(rng_.uniform(-0.6, -0.4));
    state_[1] = Scalar::f64(0.0);
    elapsed_ = 0;
    obs[0] = state_[0].as_f32();
    obs[1] = state_[1].as_f32();
  }

  StepResult step(const Action* a, float* obs) {
    const Scalar action = Scalar::f32(a[0]);
    Scalar position = state_[0];
    Scalar velocity = state_[1];
    // force = min(max(action[0], min_action), max_action): Python's builtins keep the float32 unless clipped.
    Scalar force = action;
    if (Scalar::py(kMinAction) > force) force = Scalar::py(kMinAction);
    if (Scalar::py(kMaxAction) < force) force = Scalar::py(kMaxAction);

    // math.cos takes a Python float of 3 * position (computed in the position's precision).
    const Scalar three_pos = Scalar::py(3) * position;
    const Scalar slope = Scalar::py(0.0025) * Scalar::py(std::cos(three_pos.v));
    velocity = velocity + (force * Scalar::py(kPower) - slope);
    if (velocity > Scalar::py(kMaxSpeed)) velocity = Scalar::py(kMaxSpeed);
    if (velocity < Scalar::py(-kMaxSpeed)) velocity = Scalar::py(-kMaxSpeed);
    position = position + velocity;
    if (position > Scalar::py(kMaxPosition)) position = Scalar::py(kMaxPosition);
    if (position < Scalar::py(kMinPosition)) position = Scalar::py(kMinPosition);
    if (position == Scalar::py(kMinPosition) && velocity < Scalar::py(0)) velocity = Scalar::py(0);

    StepResult r;
    r.terminated = position >= Scalar::py(kGoalPosition) && velocity >= Scalar::py(cfg_.goal_velocity);
    // reward uses the unclipped action: math.pow(action[0], 2) * 0.1 in Python floats.
    const double base = r.terminated ? 100.0 : 0.0;
    r.reward = base - npmath::pow(static_cast<double>(a[0]), 2) * 0.1;

    // self.state = np.array([position, velocity], dtype=np.float32)
    state_[0] = Scalar::f32(position.as_f32());
    state_[1] = Scalar::f32(velocity.as_f32());
    r.truncated = ++elapsed_ >= cfg_.max_episode_steps;
    obs[0] = state_[0].as_f32();
    obs[1] = state_[1].as_f32();
    return r;
  }

 private:
  using Scalar = npmath::Scalar;
  static constexpr double kMinAction = -1.0;
  static constexpr double kMaxAction = 1.0;
  static constexpr double kGoalPosition = 0.45;
  static constexpr double kPower = 0.0015;

  Config cfg_;
  NumpyRng rng_;
  Scalar state_[2];
  int elapsed_ = 0;
};

}  // namespace rltrain::envs
