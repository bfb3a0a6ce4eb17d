// The interface every native environment implements (a compile-time concept, no virtual calls):
// the batcher in vec_env.hpp is a template over it.
//
//   struct E {
//     struct Config {                          // gymnasium.make kwargs, with gymnasium's defaults
//       ...;
//       int max_episode_steps = kMaxEpisodeSteps;   // gymnasium.make(..., max_episode_steps=)
//       template <class F> void for_each_field(F&& f);  // f("name", field&) for each field (bindings use it)
//     };
//     using Action = int64_t | float;         // discrete: one int64 per env; continuous: kActDim floats (float32,
//                                             // the action space's dtype, as gymnasium's Box hands it over)
//     static constexpr const char* kId;       // "CartPole-v1"
//     static constexpr int kObsDim, kActDim;  // kActDim = 1 for discrete
//     static constexpr bool kDiscrete;
//     static constexpr int kNumActions;       // discrete only (0 otherwise)
//     static constexpr int kMaxEpisodeSteps;  // gymnasium's TimeLimit (registration max_episode_steps)
//     E(); explicit E(const Config&);         // unseeded: the RNG draws from std::random_device
//     const Config& config() const;
//     void obs_bounds(float* low, float* high) const;  // observation space, kObsDim each
//     void act_bounds(float* low, float* high) const;  // continuous only, kActDim each
//     void seed(uint64_t s);                  // like env.reset(seed=s): RNG = numpy.random.default_rng(s);
//                                             // the next reset() draws from it, later resets continue the stream
//     void reset(float* obs);                 // new episode from the env's own RNG stream
//     StepResult step(const Action* a, float* obs);  // TimeLimit included: truncated at max_episode_steps
//     std::string save_state() const; void load_state(const std::string&);  // optional, see env_state() below
//   };
//
// Actions reach step() already validated (check_action below): discrete in [0, kNumActions), continuous not NaN.
// Continuous actions are clipped by the env itself exactly where gymnasium clips them.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace rltrain::envs {

// The Config of an env whose only option is its time limit (Acrobot, the test env).
template <int kDefaultMaxEpisodeSteps>
struct TimeLimitConfig {
  int max_episode_steps = kDefaultMaxEpisodeSteps;
  template <class F>
  void for_each_field(F&& f) {
    f("max_episode_steps", max_episode_steps);
  }
};

struct StepResult {
  double reward = 0.0;
  bool terminated = false;
  bool truncated = false;
};

// Empty string when `a` (one env's kActDim actions) is valid for E, else the reason.
template <class E>
std::string check_action(const typename E::Action* a) {
  if constexpr (E::kDiscrete) {
    if (a[0] < 0 || a[0] >= E::kNumActions)
      return "discrete action " + std::to_string(a[0]) + " is outside [0, " + std::to_string(E::kNumActions) + ")";
  } else {
    for (int j = 0; j < E::kActDim; ++j)
      if (std::isnan(a[j])) return "continuous action component " + std::to_string(j) + " is NaN";
  }
  return {};
}

// An env may also refuse actions that depend on its state (a board game's occupied cell): a member
// `std::string check_legal(const Action*) const` returning the reason, or empty when the action is legal.
template <class E, class = void>
struct HasCheckLegal : std::false_type {};
template <class E>
struct HasCheckLegal<
    E, std::void_t<decltype(std::declval<const E&>().check_legal(static_cast<const typename E::Action*>(nullptr)))>>
    : std::true_type {};

// check_action, then the env's own check_legal when it has one.
template <class E>
std::string check_env_action(const E& e, const typename E::Action* a) {
  std::string why = check_action<E>(a);
  if constexpr (HasCheckLegal<E>::value) {
    if (why.empty()) why = e.check_legal(a);
  }
  return why;
}

// The complete state of one env (physics, counters, RNG, config) as bytes, and back, for checkpoints: an env
// restored from env_state(e) steps bitwise like e would. An env with save_state()/load_state() members provides
// its own (LunarLander: a Box2D world is not plain data); any other env must be plain data (classic control:
// doubles, counters, the RNG's words) and is copied byte for byte, so its bytes load into the same build.
template <class E, class = void>
struct HasSaveState : std::false_type {};
template <class E>
struct HasSaveState<E, std::void_t<decltype(std::declval<const E&>().save_state())>> : std::true_type {};

template <class E>
std::string env_state(const E& e) {
  if constexpr (HasSaveState<E>::value) {
    return e.save_state();
  } else {
    static_assert(std::is_trivially_copyable_v<E>, "an env that is not plain data needs save_state/load_state");
    return std::string(reinterpret_cast<const char*>(&e), sizeof(E));
  }
}

template <class E>
void load_env_state(E& e, const std::string& bytes) {
  if constexpr (HasSaveState<E>::value) {
    e.load_state(bytes);
  } else {
    if (bytes.size() != sizeof(E))
      throw std::invalid_argument(std::string("state: ") + E::kId + " env state of " + std::to_string(bytes.size()) +
                                  " bytes, expected " + std::to_string(sizeof(E)) + " (saved by another build?)");
    std::memcpy(static_cast<void*>(&e), bytes.data(), sizeof(E));
  }
}

}  // namespace rltrain::envs
