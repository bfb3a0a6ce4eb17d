// The interface every native environment implements (a compile-time concept, no virtual calls):
// the batcher in vec_env.hpp is a template over it.
//
//   struct E {
//     struct Config { ... };                  // gymnasium.make kwargs, with gymnasium's defaults
//     using Action = int64_t | float;         // discrete: one int64 per env; continuous: kActDim floats
//     static constexpr const char* kId;       // "CartPole-v1"
//     static constexpr int kObsDim, kActDim;  // kActDim = 1 for discrete
//     static constexpr bool kDiscrete;
//     static constexpr int kNumActions;       // discrete only (0 otherwise)
//     static constexpr int kMaxEpisodeSteps;  // gymnasium's TimeLimit (registration max_episode_steps)
//     explicit E(const Config&);
//     void obs_bounds(float* low, float* high) const;  // observation space, kObsDim each
//     void act_bounds(float* low, float* high) const;  // continuous only, kActDim each
//     void seed(uint64_t s);                  // like env.reset(seed=s): RNG = numpy.random.default_rng(s)
//     void reset(float* obs);                 // new episode from the env's own RNG stream
//     StepResult step(const Action* a, float* obs);  // TimeLimit included: truncated at kMaxEpisodeSteps
//   };
#pragma once

namespace rltrain::envs {

struct StepResult {
  double reward = 0.0;
  bool terminated = false;
  bool truncated = false;
};

}  // namespace rltrain::envs
