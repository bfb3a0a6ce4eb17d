// MountainCar-v0, an operation-for-operation port of gymnasium 1.4's classic_control/mountain_car.py
// (float64 state, float32 observations) with its TimeLimit of 200 steps.
#pragma once

#include <cmath>
#include <cstdint>

#include "rltrain/envs/env.hpp"
#include "rltrain/numpy_math.hpp"
#include "rltrain/numpy_rng.hpp"

namespace rltrain::envs {

// What MountainCar-v0 and MountainCarContinuous-v0 share: the track, the speed limit, the observation space and
// the gymnasium.make options (goal_velocity, the time limit).
struct MountainCarTrack {
  static constexpr double kMinPosition = -1.2;
  static constexpr double kMaxPosition = 0.6;
  static constexpr double kMaxSpeed = 0.07;
  template <int kDefaultMaxEpisodeSteps>
  struct Config {
    double goal_velocity = 0;
    int max_episode_steps = kDefaultMaxEpisodeSteps;
    template <class F>
    void for_each_field(F&& f) {
      f("goal_velocity", goal_velocity);
      f("max_episode_steps", max_episode_steps);
    }
  };

  static void obs_bounds(float* low, float* high) {
    low[0] = static_cast<float>(kMinPosition), low[1] = static_cast<float>(-kMaxSpeed);
    high[0] = static_cast<float>(kMaxPosition), high[1] = static_cast<float>(kMaxSpeed);
  }
};

class MountainCar : MountainCarTrack {
 public:
  static constexpr const char* kId = "MountainCar-v0";
  static constexpr int kObsDim = 2;
  static constexpr int kActDim = 1;
  static constexpr bool kDiscrete = true;
  static constexpr int kNumActions = 3;
  static constexpr int kMaxEpisodeSteps = 200;
  using Action = int64_t;

  using Config = MountainCarTrack::Config<kMaxEpisodeSteps>;

  MountainCar() = default;
  explicit MountainCar(const Config& cfg) : cfg_(cfg) {}

  const Config& config() const { return cfg_; }

  void obs_bounds(float* low, float* high) const { MountainCarTrack::obs_bounds(low, high); }
  void act_bounds(float*, float*) const {}

  void seed(uint64_t s) { rng_.seed(s); }

  void reset(float* obs) {
    position_ = rng_.uniform(-0.6, -0.4);
    velocity_ = 0.0;
    elapsed_ = 0;
    write_obs(obs);
  }

  StepResult step(const Action* a, float* obs) {
    double position = position_, velocity = velocity_;
    velocity += static_cast<double>(a[0] - 1) * kForce + std::cos(3 * position) * (-kGravity);
    velocity = npmath::clip(velocity, -kMaxSpeed, kMaxSpeed);
    position += velocity;
    position = npmath::clip(position, kMinPosition, kMaxPosition);
    if (position == kMinPosition && velocity < 0) velocity = 0;
    position_ = position;
    velocity_ = velocity;

    StepResult r;
    r.terminated = position >= kGoalPosition && velocity >= cfg_.goal_velocity;
    r.reward = -1.0;
    r.truncated = ++elapsed_ >= cfg_.max_episode_steps;
    write_obs(obs);
    return r;
  }

 private:
  static constexpr double kGoalPosition = 0.5;
  static constexpr double kForce = 0.001;
  static constexpr double kGravity = 0.0025;

  void write_obs(float* obs) const {
    obs[0] = static_cast<float>(position_);
    obs[1] = static_cast<float>(velocity_);
  }

  Config cfg_;
  NumpyRng rng_;
  double position_ = 0, velocity_ = 0;
  int elapsed_ = 0;
};

}  // namespace rltrain::envs
