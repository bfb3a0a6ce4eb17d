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
//   step:  2 x uniform(-1, 1) dispersion (drawn whether or not an engine fires).
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
#include "rltrain/numpy_rng.hpp"

namespace rltrain::envs {

namespace lunar {
// gymnasium's module constants, kept as doubles because Python evaluates every expression in float64.
inline constexpr double kFps = 50.0;
inline constexpr double kScale = 30.0;
inline constexpr double kMainEnginePower = 13.0;
inline constexpr double kSideEnginePower = 0.6;
inline constexpr double kInitialRandom = 1000.0;
inline constexpr double kLegAway = 20.0;
inline constexpr double kLegDown = 18.0;
inline constexpr double kLegW = 2.0;
inline constexpr double kLegH = 8.0;
inline constexpr double kLegSpringTorque = 40.0;
inline constexpr double kSideEngineHeight = 14.0;
inline constexpr double kSideEngineAway = 12.0;
inline constexpr double kMainEngineYLocation = 4.0;
inline constexpr double kViewportW = 600.0;
inline constexpr double kViewportH = 400.0;
inline constexpr int kChunks = 11;
inline constexpr double kLanderPoly[6][2] = {{-14, 17}, {-17, 0}, {-17, -10}, {17, -10}, {17, 0}, {14, 17}};
inline constexpr double kW = kViewportW / kScale;
inline constexpr int kMaxEpisodeSteps = 1000;  // the TimeLimit gymnasium registers LunarLander-v3 with
inline constexpr double kH = kViewportH / kScale;

// Randomised spawn (rltrain's DenseLunarLander): the initial tilt is drawn from uniform(-0.3, 0.3) rad (about
// +-17 degrees, inside the +-0.4 rad the heuristic controller still recovers from) and the horizontal offset from
// uniform(-3, 3) world units (+-0.3 in observation x, a third of the way to the |x| >= 1 termination).
inline constexpr double kSpawnMaxAngle = 0.3;
inline constexpr double kSpawnMaxDx = 3.0;

// The physics state shared with Box2D's contact callbacks. Heap-allocated (one per env) so the environment
// object itself stays movable while Box2D holds a pointer to the listener.
struct Sim final : b2ContactListener {
  std::unique_ptr<b2World> world;
  b2Body* moon = nullptr;
  b2Body* lander = nullptr;
  b2Body* legs[2] = {nullptr, nullptr};
  b2RevoluteJoint* joints[2] = {nullptr, nullptr};
  bool game_over = false;
  bool leg_contact[2] = {false, false};

  // gymnasium's ContactDetector: any lander contact ends the game; a leg's flag follows its latest contact
  // event (a bool, not a count, exactly like gymnasium's leg.ground_contact).
  void BeginContact(b2Contact* contact) override {
    const b2Body* a = contact->GetFixtureA()->GetBody();
    const b2Body* b = contact->GetFixtureB()->GetBody();
    if (a == lander || b == lander) game_over = true;
    for (int i = 0; i < 2; ++i)
      if (a == legs[i] || b == legs[i]) leg_contact[i] = true;
  }
  void EndContact(b2Contact* contact) override {
    const b2Body* a = contact->GetFixtureA()->GetBody();
    const b2Body* b = contact->GetFixtureB()->GetBody();
    for (int i = 0; i < 2; ++i)
      if (a == legs[i] || b == legs[i]) leg_contact[i] = false;
  }
};

// Box2D 2.3 fills two process-wide tables lazily and without synchronisation: the block allocator's size lookup
// (first b2World) and the contact function table (first contact any world creates, b2Contact::s_initialized).
// Make that first world and contact here, once, under a thread-safe static, so environments stepped
// concurrently on worker threads only ever read them.
inline void init_box2d_once() {
  static const bool done = [] {
    b2World world(b2Vec2(0.0f, 0.0f));
    b2BodyDef def;
    b2Body* fixed = world.CreateBody(&def);
    def.type = b2_dynamicBody;
    b2Body* moving = world.CreateBody(&def);
    b2CircleShape circle;
    circle.m_radius = 1.0f;
    fixed->CreateFixture(&circle, 0.0f);
    moving->CreateFixture(&circle, 1.0f);
    world.Step(0.01f, 1, 1);  // overlapping proxies -> b2Contact::Create -> InitializeRegisters
    return true;
  }();
  (void)done;
}

inline b2Vec2 vec(double x, double y) { return b2Vec2(static_cast<float>(x), static_cast<float>(y)); }
}  // namespace lunar

// gymnasium.make("LunarLander-v3", ...) keyword arguments with their defaults, plus rltrain's variants.
struct LunarLanderConfig {
  double gravity = -10.0;         // must lie in (-12, 0), as gymnasium asserts
  bool enable_wind = false;       // tanh(sin(0.02 t) + sin(0.01 pi t)) wind and turbulence while airborne
  double wind_power = 15.0;       // peak horizontal wind force
  double turbulence_power = 1.5;  // peak wind torque
  bool randomize_angle = false;   // DenseLunarLander: initial tilt ~ uniform(-kSpawnMaxAngle, kSpawnMaxAngle)
  bool randomize_pos = false;     // DenseLunarLander: initial x offset ~ uniform(-kSpawnMaxDx, kSpawnMaxDx)
  bool sparse = false;            // SparseLunarLander: 0 every step, the episode's summed reward at its last step
  int max_episode_steps = lunar::kMaxEpisodeSteps;  // gymnasium.make(..., max_episode_steps=)

  // Field names as the Python keyword arguments (see env.hpp); `continuous` is the class, not a field.
  template <class F>
  void for_each_field(F&& f) {
    f("gravity", gravity);
    f("enable_wind", enable_wind);
    f("wind_power", wind_power);
    f("turbulence_power", turbulence_power);
    f("randomize_angle", randomize_angle);
    f("randomize_pos", randomize_pos);
    f("sparse", sparse);
    f("max_episode_steps", max_episode_steps);
  }
};

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
    constexpr double kPi = 3.14159265358979323846;
    const double lo[kObsDim] = {-2.5, -2.5, -10.0, -10.0, -2 * kPi, -10.0, -0.0, -0.0};
    const double hi[kObsDim] = {2.5, 2.5, 10.0, 10.0, 2 * kPi, 10.0, 1.0, 1.0};
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
    observe(state);
    const double shape = shaping(state);
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
    b2World& world = *sim_->world;
    prev_shaping_valid_ = false;
    elapsed_ = 0;
    episode_return_ = 0.0;

    double height[kChunks + 1];
    for (double& h : height) h = rng_.uniform(0.0, kH / 2);
    double chunk_x[kChunks];
    for (int i = 0; i < kChunks; ++i) chunk_x[i] = kW / (kChunks - 1) * i;
    helipad_y_ = kH / 4;
    for (int i = kChunks / 2 - 2; i <= kChunks / 2 + 2; ++i) height[i] = helipad_y_;
    for (int i = 0; i < kChunks; ++i) {
      // i = 0 reads height[-1], which Python resolves to the last element.
      const double left = height[i == 0 ? kChunks : i - 1];
      smooth_y_[i] = 0.33 * (left + height[i] + height[i + 1]);
    }

    b2BodyDef moon_def;
    sim_->moon = world.CreateBody(&moon_def);
    {
      b2EdgeShape bottom;
      bottom.Set(vec(0, 0), vec(kW, 0));
      b2FixtureDef fd;  // pybox2d's shapes= uses fixture defaults: friction 0.2
      fd.shape = &bottom;
      sim_->moon->CreateFixture(&fd);
    }
    for (int i = 0; i < kChunks - 1; ++i) {
      b2EdgeShape edge;
      edge.Set(vec(chunk_x[i], smooth_y_[i]), vec(chunk_x[i + 1], smooth_y_[i + 1]));
      b2FixtureDef fd;
      fd.shape = &edge;
      fd.density = 0.0f;
      fd.friction = 0.1f;
      sim_->moon->CreateFixture(&fd);
    }

    const double initial_y = kViewportH / kScale;
    const double initial_x = kViewportW / kScale / 2;
    {
      b2BodyDef bd;
      bd.type = b2_dynamicBody;
      bd.position = vec(initial_x, initial_y);
      bd.angle = 0.0f;
      sim_->lander = world.CreateBody(&bd);
      b2Vec2 verts[6];
      for (int k = 0; k < 6; ++k) verts[k] = vec(kLanderPoly[k][0] / kScale, kLanderPoly[k][1] / kScale);
      b2PolygonShape poly;
      poly.Set(verts, 6);
      b2FixtureDef fd;
      fd.shape = &poly;
      fd.density = 5.0f;
      fd.friction = 0.1f;
      fd.filter.categoryBits = 0x0010;
      fd.filter.maskBits = 0x001;  // collide only with ground
      fd.restitution = 0.0f;
      sim_->lander->CreateFixture(&fd);
    }
    const double fx = rng_.uniform(-kInitialRandom, kInitialRandom);
    const double fy = rng_.uniform(-kInitialRandom, kInitialRandom);
    sim_->lander->ApplyForceToCenter(vec(fx, fy), true);

    if (cfg_.enable_wind) {
      wind_idx_ = rng_.integers(-9999, 9999);
      torque_idx_ = rng_.integers(-9999, 9999);
    }

    for (int k = 0; k < 2; ++k) {
      const int i = k == 0 ? -1 : +1;
      b2BodyDef bd;
      bd.type = b2_dynamicBody;
      bd.position = vec(initial_x - i * kLegAway / kScale, initial_y);
      bd.angle = static_cast<float>(i * 0.05);
      b2Body* leg = world.CreateBody(&bd);
      b2PolygonShape box;
      box.SetAsBox(static_cast<float>(kLegW / kScale), static_cast<float>(kLegH / kScale));
      b2FixtureDef fd;  // friction left at the 0.2 default, as in gymnasium
      fd.shape = &box;
      fd.density = 1.0f;
      fd.restitution = 0.0f;
      fd.filter.categoryBits = 0x0020;
      fd.filter.maskBits = 0x001;
      leg->CreateFixture(&fd);
      sim_->legs[k] = leg;

      // pybox2d's revoluteJointDef(bodyA=, bodyB=) sets referenceAngle = bodyB.angle - bodyA.angle, so the
      // limits are relative to the legs' initial +-0.05 rad tilt. The anchors start 0.6 units apart and the first
      // solver step snaps the legs into place: gymnasium's quirks, reproduced.
      b2RevoluteJointDef rjd;
      rjd.bodyA = sim_->lander;
      rjd.bodyB = leg;
      rjd.referenceAngle = leg->GetAngle() - sim_->lander->GetAngle();
      rjd.localAnchorA = vec(0, 0);
      rjd.localAnchorB = vec(i * kLegAway / kScale, kLegDown / kScale);
      rjd.enableMotor = true;
      rjd.enableLimit = true;
      rjd.maxMotorTorque = static_cast<float>(kLegSpringTorque);
      rjd.motorSpeed = static_cast<float>(+0.3 * i);  // low enough not to jump back into the sky
      if (i == -1) {
        rjd.lowerAngle = static_cast<float>(+0.9 - 0.5);
        rjd.upperAngle = static_cast<float>(+0.9);
      } else {
        rjd.lowerAngle = static_cast<float>(-0.9);
        rjd.upperAngle = static_cast<float>(-0.9 + 0.5);
      }
      sim_->joints[k] = static_cast<b2RevoluteJoint*>(world.CreateJoint(&rjd));
    }

    // gymnasium returns the observation of one no-op step, which also sets prev_shaping.
    double state[kObsDim];
    advance(0.0, 0.0, 0.0);
    observe(state);
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

  static double shaping(const double* s) {
    // distance to the pad, speed, tilt, and ten points per leg in contact
    return -100 * std::sqrt(s[0] * s[0] + s[1] * s[1]) - 100 * std::sqrt(s[2] * s[2] + s[3] * s[3]) -
           100 * std::abs(s[4]) + 10 * s[6] + 10 * s[7];
  }

  static void write_obs(const double* state, float* obs) {
    for (int i = 0; i < kObsDim; ++i) obs[i] = static_cast<float>(state[i]);
  }

  void observe(double* s) const {
    using namespace lunar;
    const b2Body* l = sim_->lander;
    const double px = l->GetPosition().x, py = l->GetPosition().y;
    const double vx = l->GetLinearVelocity().x, vy = l->GetLinearVelocity().y;
    s[0] = (px - kViewportW / kScale / 2) / (kViewportW / kScale / 2);
    s[1] = (py - (helipad_y_ + kLegDown / kScale)) / (kViewportH / kScale / 2);
    s[2] = vx * (kViewportW / kScale / 2) / kFps;
    s[3] = vy * (kViewportH / kScale / 2) / kFps;
    s[4] = l->GetAngle();
    s[5] = 20.0 * static_cast<double>(l->GetAngularVelocity()) / kFps;
    s[6] = sim_->leg_contact[0] ? 1.0 : 0.0;
    s[7] = sim_->leg_contact[1] ? 1.0 : 0.0;
  }

  void place_lander(double x, double y, double angle, double vx, double vy, double omega, double* state) {
    b2Body* l = sim_->lander;
    const double cx = l->GetPosition().x, cy = l->GetPosition().y;
    const double dtheta = angle - static_cast<double>(l->GetAngle());
    const double c = std::cos(dtheta), s = std::sin(dtheta);
    for (b2Body* leg : sim_->legs) {
      const double rx0 = leg->GetPosition().x - cx, ry0 = leg->GetPosition().y - cy;
      const double rx = c * rx0 - s * ry0, ry = s * rx0 + c * ry0;
      leg->SetTransform(lunar::vec(x + rx, y + ry), static_cast<float>(leg->GetAngle() + dtheta));
      leg->SetLinearVelocity(lunar::vec(vx - omega * ry, vy + omega * rx));
      leg->SetAngularVelocity(static_cast<float>(omega));
      leg->SetAwake(true);
    }
    l->SetTransform(lunar::vec(x, y), static_cast<float>(angle));
    l->SetLinearVelocity(lunar::vec(vx, vy));
    l->SetAngularVelocity(static_cast<float>(omega));
    l->SetAwake(true);
    observe(state);
    prev_shaping_ = shaping(state);
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

    const double angle = lander->GetAngle();
    const double tip[2] = {std::sin(angle), std::cos(angle)};
    const double side[2] = {-tip[1], tip[0]};
    double dispersion[2];
    for (double& d : dispersion) d = rng_.uniform(-1.0, +1.0) / kScale;

    if (m_power > 0.0) {
      // 4 is a bit below the centre, +-2 dispersion for randomness
      const double ox = tip[0] * (kMainEngineYLocation / kScale + 2 * dispersion[0]) + side[0] * dispersion[1];
      const double oy = -tip[1] * (kMainEngineYLocation / kScale + 2 * dispersion[0]) - side[1] * dispersion[1];
      const double px = static_cast<double>(lander->GetPosition().x) + ox;
      const double py = static_cast<double>(lander->GetPosition().y) + oy;
      lander->ApplyLinearImpulse(vec(-ox * kMainEnginePower * m_power, -oy * kMainEnginePower * m_power),
                                 vec(px, py), true);
    }
    if (s_power > 0.0) {
      const double ox = tip[0] * dispersion[0] + side[0] * (3 * dispersion[1] + direction * kSideEngineAway / kScale);
      const double oy =
          -tip[1] * dispersion[0] - side[1] * (3 * dispersion[1] + direction * kSideEngineAway / kScale);
      // gymnasium offsets the x coordinate by 17 (not SIDE_ENGINE_HEIGHT = 14): the thrust point, and so the
      // torque, depends on the tilt. Kept for fidelity.
      const double px = static_cast<double>(lander->GetPosition().x) + ox - tip[0] * 17 / kScale;
      const double py = static_cast<double>(lander->GetPosition().y) + oy + tip[1] * kSideEngineHeight / kScale;
      lander->ApplyLinearImpulse(vec(-ox * kSideEnginePower * s_power, -oy * kSideEnginePower * s_power),
                                 vec(px, py), true);
    }
    sim_->world->Step(static_cast<float>(1.0 / kFps), 6 * 30, 2 * 30);
  }

  static constexpr double kPi = 3.14159265358979323846;

  Config cfg_;
  Rng rng_;
  Rng rng_at_reset_;                   // rng_ as the current episode began (save_state)
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
