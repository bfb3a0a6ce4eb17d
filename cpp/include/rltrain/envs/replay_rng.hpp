// Environment RNG that replays caller-supplied uniforms in [0, 1): lets a test feed the native environment and
// gymnasium's Python one the very same random draws (tests/_replay.py, ReplayGenerator is the Python twin),
// so their trajectories can be compared step by step independently of how either side seeds its generator.
// Same interface as NumpyRng (seed / uniform / integers); the mapping from a uniform u to a draw is defined here
// and mirrored there.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

namespace rltrain::envs {

class ReplayRng {
 public:
  // Replaying ignores seeds: the draws are whatever set_uniforms() supplied.
  void seed(uint64_t) {}

  void set_uniforms(std::vector<double> u) {
    u_ = std::move(u);
    next_ = 0;
  }
  std::size_t consumed() const { return next_; }

  double uniform(double low, double high) { return low + (high - low) * take(); }
  int64_t integers(int64_t low, int64_t high) {
    return low + static_cast<int64_t>(std::floor(take() * static_cast<double>(high - low)));
  }

 private:
  double take() {
    if (next_ >= u_.size())
      throw std::out_of_range("ReplayRng: ran out of supplied uniforms after " + std::to_string(next_) + " draws");
    return u_[next_++];
  }

  std::vector<double> u_;
  std::size_t next_ = 0;
};

}  // namespace rltrain::envs
