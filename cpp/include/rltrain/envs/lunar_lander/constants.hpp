// LunarLander's numbers: gymnasium 1.4.0's module constants and the keyword arguments of
// gymnasium.make("LunarLander-v3", ...) with rltrain's variants. No Box2D here.
#pragma once

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
inline constexpr double kPi = 3.14159265358979323846;
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

}  // namespace rltrain::envs
