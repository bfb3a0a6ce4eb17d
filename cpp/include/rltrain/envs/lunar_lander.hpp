// LunarLander-v3 on Box2D 2.3, a line-by-line port of gymnasium 1.4.0's envs/box2d/lunar_lander.py (constants,
// body creation order, RNG draw order, float32/float64 rounding points), plus the rltrain variants (randomised
// spawn, sparse reward). Follows the interface in env.hpp. Box2D is the very C++ library gymnasium runs: the
// sources of the box2d-py 2.3.8 sdist (pybox2d without its SWIG layer), compiled statically into rltrain._box2d
// (cmake/Box2D.cmake), so the physics matches gymnasium's bit for bit.
//
// What is deliberately not simulated: gymnasium's exhaust particles. Gymnasium 1.4 creates them only when
// rendering, and even then they cannot touch the lander (lander/legs maskBits 0x001 exclude the particles'
// categoryBits 0x0100, particles only collide with the static ground, and contacts with a static body never
// join islands, so they cannot keep the lander awake either). The dispersion draws that feed both the
// particles and the engine impulses are consumed every step, in gymnasium's order.
//
// Random draws come from rltrain::NumpyRng (numpy_rng.hpp, an exact numpy.random.default_rng copy), so
// seed(s) + reset() draws gymnasium's reset(seed=s) terrain and push. The draw order per episode:
//   reset: 12 x uniform(0, H/2) terrain, 2 x uniform(-1000, 1000) initial force,
//          [enable_wind: integers(-9999, 9999) wind index, then torque index],
//          then gymnasium's internal no-op step: 2 x uniform(-1, 1) dispersion,
//          [randomize_angle: uniform(-kSpawnMaxAngle, kSpawnMaxAngle)], [randomize_pos: uniform(-kSpawnMaxDx, ..)]
//   step:  2 x uniform(-1, 1) dispersion (drawn whether or not an engine fires).//
// The pieces, by concern: lunar_lander/constants.hpp (gymnasium's constants, LunarLanderConfig),
// lunar_lander/contact.hpp (the Box2D world and contact listener), lunar_lander/terrain.hpp (the moon),
// lunar_lander/lander_body.hpp (hull, legs, engines, observation); this file is the env: episode, step, state.
#pragma once

#include <Box2D/Box2D.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "rltrain/envs/env.hpp"
#include "rltrain/envs/lunar_lander/constants.hpp"
#include "rltrain/envs/lunar_lander/contact.hpp"
#include "rltrain/envs/lunar_lander/lander_body.hpp"
#include "rltrain/envs/lunar_lander/terrain.hpp"
#include "rltrain/numpy_rng.hpp"

namespace rltrain::envs {

// Rng: default-constructible (unseeded: fresh entropy) with
//   void seed(uint64_t s); double uniform(double low, double high); int64_t integers(int64_t low, int64_t high);
// NumpyRng gives gymnasium's draws seed for seed; ReplayRng replays supplied uniforms (parity tests).
// Movable, not copyable; one instance per thread at a time.
template <bool Continuous, class Rng = NumpyRng>
class LunarLanderT {
 public:
  using Config = LunarLanderConfig;
  using Action = std::conditional_t<Continuous, float, int64_t>;
  static constexpr const char* kId = Continuous ? "LunarLanderContinuous-v3" : "LunarLander-v3";
  static constexpr int kObsDim = 8;
  static constexpr int kActDim = Continuous ? 2 : 1;
  static constexpr bool kDiscrete = !Continuous;
  static constexpr int kNumActions = Continuous ? 0 : 4;
  static constexpr int kMaxEpisodeSteps = lunar::kMaxEpisodeSteps;

  // The RNG starts unseeded (NumpyRng: fresh entropy), like a gymnasium env before reset(seed=...).
  explicit LunarLanderT(const Config& cfg = Config{}) : cfg_(cfg) {
    if (!(cfg.gravity > -12.0 && cfg.gravity < 0.0))
      throw std::invalid_argument("LunarLander: gravity must be in (-12, 0), got " + std::to_string(cfg.gravity));
    if (!std::isfinite(cfg.wind_power) || !std::isfinite(cfg.turbulence_power))
      throw std::invalid_argument("LunarLander: wind_power and turbulence_power must be finite");
    if (cfg.max_episode_steps < 1)
      throw std::invalid_argument("LunarLander: max_episode_steps must be >= 1, got " +
                                  std::to_string(cfg.max_episode_steps));
    lunar::init_box2d_once();
  }

  void obs_bounds(float* low, float* high) const {
    const double lo[kObsDim] = {-2.5, -2.5, -10.0, -10.0, -2 * lunar::kPi, -10.0, -0.0, -0.0};
    const double hi[kObsDim] = {2.5, 2.5, 10.0, 10.0, 2 * lunar::kPi, 10.0, 1.0, 1.0};
    for (int i = 0; i < kObsDim; ++i) low[i] = static_cast<float>(lo[i]), high[i] = static_cast<float>(hi[i]);
  }
  void act_bounds(float* low, float* high) const {
    for (int i = 0; i < kActDim; ++i) low[i] = -1.0f, high[i] = 1.0f;
  }

  void seed(uint64_t s) { rng_.seed(s); }

  void reset(float* obs) {
    try {
      // What a checkpoint needs to rebuild this episode: the RNG as the episode starts, then its actions.
      rng_at_reset_ = rng_;
      episode_actions_.clear();
      build_episode(obs);
    } catch (...) {
      sim_.reset();  // never leave a half-built world behind: step() then reports "before reset()"
      throw;
    }
  }

  StepResult step(const Action* action, float* obs) {
    if (!sim_) throw std::logic_error("LunarLander: step() called before reset()");
    episode_actions_.insert(episode_actions_.end(), action, action + kActDim);
    double m_power = 0.0, s_power = 0.0, direction = 0.0;
    if constexpr (Continuous) {
      // np.clip(action, -1, +1).astype(np.float64); NaN passes through and fires no engine, as in gymnasium.
      const double a0 = static_cast<double>(std::clamp(action[0], -1.0f, 1.0f));
      const double a1 = static_cast<double>(std::clamp(action[1], -1.0f, 1.0f));
      if (a0 > 0.0) m_power = (std::clamp(a0, 0.0, 1.0) + 1.0) * 0.5;  // 0.5..1.0
      if (std::abs(a1) > 0.5) {
        direction = a1 > 0.0 ? 1.0 : -1.0;
        s_power = std::clamp(std::abs(a1), 0.5, 1.0);
      }
    } else {
      const int64_t a = action[0];
      if (a < 0 || a >= kNumActions)
        throw std::invalid_argument("LunarLander: discrete action must be in [0, 4), got " + std::to_string(a));
      if (a == 2) m_power = 1.0;
      if (a == 1 || a == 3) {
        direction = static_cast<double>(a - 2);  // 1 is the left engine, 3 the right one
        s_power = 1.0;
      }
    }
    advance(m_power, s_power, direction);

    double state[kObsDim];
    lunar::observe(*sim_, helipad_y_, state);
    const double shape = lunar::shaping(state);
    double reward = prev_shaping_valid_ ? shape - prev_shaping_ : 0.0;
    prev_shaping_ = shape;
    prev_shaping_valid_ = true;
    reward -= m_power * 0.30;  // less fuel spent is better
    reward -= s_power * 0.03;

    StepResult r;
    if (sim_->game_over || std::abs(state[0]) >= 1.0) {
      r.terminated = true;
      reward = -100.0;
    }
    if (!sim_->lander->IsAwake()) {
      r.terminated = true;
      reward = +100.0;
    }
    ++elapsed_;
    r.truncated = elapsed_ >= cfg_.max_episode_steps;  // gymnasium's TimeLimit, which may coincide with terminated
    episode_return_ += reward;
    r.reward = cfg_.sparse ? ((r.terminated || r.truncated) ? episode_return_ : 0.0) : reward;
    write_obs(state, obs);
    return r;
  }

  // Moves the lander rigidly, legs included, to world position (x, y) and angle, with the rigid-body velocity
  // field (vx, vy, omega); writes the resulting observation and restarts the reward shaping from it.
  // Used for the randomised spawn (mirrored by rltrain.envs.DenseLunarLander) and for crafted test states.
  void place_lander(double x, double y, double angle, double vx, double vy, double omega, float* obs) {
    double state[kObsDim];
    place_lander(x, y, angle, vx, vy, omega, state);
    write_obs(state, obs);
  }

  // Checkpoint state (env.hpp's env_state): a Box2D world is not plain data, so the state is the RNG as the
  // current episode started plus the episode's actions (at most max_episode_steps of them); load_state rebuilds
  // the episode by replaying them, which the same code on the same seed draws reproduces bit for bit. An episode
  // moved by place_lander (tests) is not reproduced.
  std::string save_state() const {
    static_assert(std::is_trivially_copyable_v<Rng>, "the RNG is saved as bytes");
    std::string out(1, sim_ ? '\1' : '\0');
    const Rng& start = sim_ ? rng_at_reset_ : rng_;  // no episode yet: the stream as it stands
    out.append(reinterpret_cast<const char*>(&start), sizeof(Rng));
    const uint64_t n = episode_actions_.size();
    out.append(reinterpret_cast<const char*>(&n), sizeof(n));
    out.append(reinterpret_cast<const char*>(episode_actions_.data()), n * sizeof(Action));
    return out;
  }
  void load_state(const std::string& bytes) {
    const std::size_t head = 1 + sizeof(Rng) + sizeof(uint64_t);
    uint64_t n = 0;
    if (bytes.size() >= head) std::memcpy(&n, bytes.data() + 1 + sizeof(Rng), sizeof(n));
    if (bytes.size() < head || n % kActDim != 0 || n > uint64_t(cfg_.max_episode_steps) * kActDim ||
        bytes.size() != head + n * sizeof(Action))
      throw std::invalid_argument("state: not a LunarLander env state of this build and configuration");
    std::memcpy(static_cast<void*>(&rng_), bytes.data() + 1, sizeof(Rng));
    if (bytes[0] == '\0') {
      sim_.reset();
      return;
    }
    std::vector<Action> actions(n);
    std::memcpy(actions.data(), bytes.data() + head, n * sizeof(Action));
    float obs[kObsDim];
    reset(obs);
    for (uint64_t k = 0; k < n; k += kActDim) step(actions.data() + k, obs);
  }

  const Config& config() const { return cfg_; }
  double helipad_y() const { return helipad_y_; }
  const std::array<double, lunar::kChunks>& terrain_y() const { return smooth_y_; }
  int elapsed_steps() const { return elapsed_; }
  Rng& rng() { return rng_; }

 private:
  // gymnasium's reset(): a new world, terrain, lander and legs, then its internal no-op step; plus the spawn.
  void build_episode(float* obs) {
    using namespace lunar;
    sim_ = std::make_unique<Sim>();
    // A fresh world per episode, as gymnasium v3 does (its fix for issue #728): body and contact list order,
    // and therefore the solver's results, never depend on earlier episodes.
    sim_->world = std::make_unique<b2World>(vec(0.0, cfg_.gravity));
    sim_->world->SetContactListener(sim_.get());
    prev_shaping_valid_ = false;
    elapsed_ = 0;
    episode_return_ = 0.0;

    // Draws and bodies in gymnasium's order: terrain, moon, hull, initial push, wind phases, legs.
    helipad_y_ = draw_terrain(rng_, smooth_y_);
    build_moon(*sim_, smooth_y_);
    create_hull(*sim_);
    const double fx = rng_.uniform(-kInitialRandom, kInitialRandom);
    const double fy = rng_.uniform(-kInitialRandom, kInitialRandom);
    sim_->lander->ApplyForceToCenter(vec(fx, fy), true);
    if (cfg_.enable_wind) {
      wind_idx_ = rng_.integers(-9999, 9999);
      torque_idx_ = rng_.integers(-9999, 9999);
    }
    create_legs(*sim_);

    // gymnasium returns the observation of one no-op step, which also sets prev_shaping.
    double state[kObsDim];
    advance(0.0, 0.0, 0.0);
    observe(*sim_, helipad_y_, state);
    prev_shaping_ = shaping(state);
    prev_shaping_valid_ = true;

    if (cfg_.randomize_angle || cfg_.randomize_pos) {
      const double dtheta = cfg_.randomize_angle ? rng_.uniform(-kSpawnMaxAngle, kSpawnMaxAngle) : 0.0;
      const double dx = cfg_.randomize_pos ? rng_.uniform(-kSpawnMaxDx, kSpawnMaxDx) : 0.0;
      const b2Body* l = sim_->lander;
      place_lander(l->GetPosition().x + dx, l->GetPosition().y, l->GetAngle() + dtheta, l->GetLinearVelocity().x,
                   l->GetLinearVelocity().y, l->GetAngularVelocity(), state);
    }
    write_obs(state, obs);
  }

  static void write_obs(const double* state, float* obs) {
    for (int i = 0; i < kObsDim; ++i) obs[i] = static_cast<float>(state[i]);
  }

  void place_lander(double x, double y, double angle, double vx, double vy, double omega, double* state) {
    lunar::move_rigidly(*sim_, x, y, angle, vx, vy, omega);
    lunar::observe(*sim_, helipad_y_, state);
    prev_shaping_ = lunar::shaping(state);
    prev_shaping_valid_ = true;
  }

  // gymnasium's step() up to and including world.Step: wind, the two dispersion draws, engine impulses.
  void advance(double m_power, double s_power, double direction) {
    using namespace lunar;
    b2Body* lander = sim_->lander;
    if (cfg_.enable_wind && !(sim_->leg_contact[0] || sim_->leg_contact[1])) {
      // tanh(sin(2 k t) + sin(pi k t)), k = 0.01: never periodic
      const double wi = static_cast<double>(wind_idx_);
      const double wind_mag = std::tanh(std::sin(0.02 * wi) + std::sin(kPi * 0.01 * wi)) * cfg_.wind_power;
      ++wind_idx_;
      lander->ApplyForceToCenter(vec(wind_mag, 0.0), true);
      const double ti = static_cast<double>(torque_idx_);
      const double torque_mag = std::tanh(std::sin(0.02 * ti) + std::sin(kPi * 0.01 * ti)) * cfg_.turbulence_power;
      ++torque_idx_;
      lander->ApplyTorque(static_cast<float>(torque_mag), true);
    }
    double dispersion[2];
    for (double& d : dispersion) d = rng_.uniform(-1.0, +1.0) / kScale;
    fire_engines(lander, m_power, s_power, direction, dispersion);
    sim_->world->Step(static_cast<float>(1.0 / kFps), 6 * 30, 2 * 30);
  }

  Config cfg_;
  Rng rng_;
  Rng rng_at_reset_;                     // rng_ as the current episode began (save_state)
  std::vector<Action> episode_actions_;  // the current episode's actions, kActDim per step (save_state)
  std::unique_ptr<lunar::Sim> sim_;
  std::array<double, lunar::kChunks> smooth_y_{};
  double helipad_y_ = 0.0;
  double prev_shaping_ = 0.0;
  bool prev_shaping_valid_ = false;
  int64_t wind_idx_ = 0;
  int64_t torque_idx_ = 0;
  int elapsed_ = 0;
  double episode_return_ = 0.0;
};

using LunarLander = LunarLanderT<false>;
using LunarLanderContinuous = LunarLanderT<true>;

}  // namespace rltrain::envs
