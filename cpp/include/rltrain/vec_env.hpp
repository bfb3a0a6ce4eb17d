// The rollout batcher: actions -> validation -> thread pool (step) or driver thread -> thread pool (send)
// -> envs -> preallocated per-env state buffers -> ready queue (recv).
//
// VecEnv<E> owns num_envs environments of type E (see envs/env.hpp) and its own ThreadPool. Buffers are
// contiguous, one row per env, allocated once:
//   obs [N, kObsDim] float32          first observation of the next episode where one just ended
//   rewards [N] float64               (float64 like gymnasium's vector envs, so sums match bit for bit)
//   terminated [N], truncated [N]     uint8 0/1 (NumPy bool layout)
//   final_obs [N, kObsDim] float32    true last observation where has_final[i], zeros elsewhere
//   has_final [N] uint8
//   episode_return [N] float64, episode_length [N] int64, episode_time [N] float64 (seconds):
//                                     statistics of the episode that ended at this step, 0 elsewhere
// Autoreset is same-step (gymnasium AutoresetMode.SAME_STEP): an env whose episode ends is reset inside the
// same step. Every env's result depends only on its own RNG stream and actions, never on num_threads or on
// scheduling. The class is not meant for concurrent callers: overlapping calls from two threads raise
// std::runtime_error rather than race. After fork() the child has none of the threads: there every call raises,
// and close()/destruction abandon the parent's threads instead of joining them (which would hang).
// One class over ~500 lines on purpose: the sync step, the send/recv driver and the fork guard share one set of
// buffers, locks and states, and splitting them would spread that invariant over files.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "rltrain/envs/env.hpp"
#include "rltrain/platform.hpp"
#include "rltrain/thread_pool.hpp"

namespace rltrain {

// recv() gave up waiting (bindings map it to Python's TimeoutError).
class TimeoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class E>
class VecEnv {
 public:
  using Env = E;
  using Action = typename E::Action;
  using Config = typename E::Config;
  static constexpr int kObsDim = E::kObsDim;
  static constexpr int kActDim = E::kActDim;

  // Where recv() writes its batch: row k belongs to env_id[k]; each pointer holds batch_size rows.
  struct Batch {
    int64_t* env_id;
    float* obs;
    double* rewards;
    uint8_t* terminated;
    uint8_t* truncated;
    float* final_obs;
    uint8_t* has_final;
    double* episode_return;
    int64_t* episode_length;
    double* episode_time;
  };

  // seed: env i is seeded seed + i (all with seed when identical_seeds); without a seed every env draws its
  // own entropy, or, with identical_seeds, all share one random seed.
  VecEnv(std::size_t num_envs, int num_threads, const Config& cfg, std::optional<uint64_t> seed = std::nullopt,
         bool identical_seeds = false)
      : n_(num_envs),
        identical_seeds_(identical_seeds),
        pool_(std::make_unique<ThreadPool>(num_threads)),
        num_threads_(pool_->num_threads()),
        obs_(n_ * kObsDim, 0.0f),
        rewards_(n_, 0.0),
        terminated_(n_, 0),
        truncated_(n_, 0),
        final_obs_(n_ * kObsDim, 0.0f),
        has_final_(n_, 0),
        episode_return_(n_, 0.0),
        episode_length_(n_, 0),
        episode_time_(n_, 0.0),
        acc_return_(n_, 0.0),
        acc_length_(n_, 0),
        start_time_(n_),
        actions_(n_ * kActDim),
        in_flight_(n_, 0),
        env_error_(n_) {
    if (num_envs == 0) throw std::invalid_argument("num_envs: expected at least 1 environment");
    envs_.reserve(n_);
    for (std::size_t i = 0; i < n_; ++i) envs_.emplace_back(cfg);
    if (seed) {
      seed_all(*seed, identical_seeds);
    } else if (identical_seeds) {
      std::random_device rd;
      seed_all((uint64_t(rd()) << 32) | rd(), true);
    }
  }

  VecEnv(const VecEnv&) = delete;
  VecEnv& operator=(const VecEnv&) = delete;
  ~VecEnv() { close(); }

  std::size_t num_envs() const { return n_; }
  // Safe from any thread, even while close() runs on another: never reads pool_, which close() resets.
  int num_threads() const { return closed_.load(std::memory_order_acquire) ? 0 : num_threads_; }
  const Config& config() const { return envs_.front().config(); }
  const E& env(std::size_t i) const { return envs_.at(i); }

  // The buffers (see the top of this file). They stay at the same address for the object's lifetime.
  const float* obs() const { return obs_.data(); }
  const double* rewards() const { return rewards_.data(); }
  const uint8_t* terminated() const { return terminated_.data(); }
  const uint8_t* truncated() const { return truncated_.data(); }
  const float* final_obs() const { return final_obs_.data(); }
  const uint8_t* has_final() const { return has_final_.data(); }
  const double* episode_return() const { return episode_return_.data(); }
  const int64_t* episode_length() const { return episode_length_.data(); }
  const double* episode_time() const { return episode_time_.data(); }
  // Running return and length of the episodes in progress.
  const double* running_return() const { return acc_return_.data(); }
  const int64_t* running_length() const { return acc_length_.data(); }

  bool identical_seeds() const { return identical_seeds_; }

  // Seeds env i with seed + i (seed for all with identical_seeds); like gymnasium's vector reset(seed=...),
  // the next reset() draws from the new streams.
  void seed(uint64_t seed) {
    Guard g(this, "seed");
    require_idle("seed");
    seed_all(seed, identical_seeds_);
  }
  void seed_env(std::size_t i, uint64_t s) {
    Guard g(this, "seed");
    require_idle("seed");
    envs_.at(i).seed(s);
  }

  // Starts a new episode in every env and clears the episode statistics; fills obs.
  void reset() {
    Guard g(this, "reset");
    require_idle("reset");
    const auto now = Clock::now();
    pool_->parallel_range(n_, kGrain, [&](std::size_t b, std::size_t e) {
      for (std::size_t i = b; i < e; ++i) {
        envs_[i].reset(&obs_[i * kObsDim]);
        clear_row(i);
        acc_return_[i] = 0.0;
        acc_length_[i] = 0;
        start_time_[i] = now;
      }
    });
    needs_reset_ = false;
  }

  // A checkpoint of the whole batch: every env's state (envs/env.hpp env_state: physics, counters, RNG) and the
  // batcher's own (current observations, running episode returns and lengths). set_state() on a batcher of the
  // same env, size and config continues bitwise where this one stood; O(num_envs), whatever the training length.
  std::string get_state() {
    Guard g(this, "get_state");
    require_idle("get_state");
    std::string out = state_magic();
    put(out, uint64_t(n_));
    out.push_back(needs_reset_ ? '\1' : '\0');
    for (std::size_t i = 0; i < n_; ++i) {
      out.append(reinterpret_cast<const char*>(&obs_[i * kObsDim]), sizeof(float) * kObsDim);
      put(out, acc_return_[i]);
      put(out, acc_length_[i]);
      const std::string e = envs::env_state(envs_[i]);
      put(out, uint64_t(e.size()));
      out += e;
    }
    return out;
  }

  void set_state(const std::string& state) {
    Guard g(this, "set_state");
    require_idle("set_state");
    std::size_t at = 0;
    const auto take = [&](std::size_t n) {
      if (state.size() - at < n) throw std::invalid_argument("state: truncated batcher state");
      const char* p = state.data() + at;
      at += n;
      return p;
    };
    const std::string magic = state_magic();
    if (state.compare(0, magic.size(), magic) != 0)
      throw std::invalid_argument(std::string("state: not a ") + E::kId + " batcher state");
    at = magic.size();
    uint64_t n = 0;
    std::memcpy(&n, take(sizeof(n)), sizeof(n));
    if (n != n_)
      throw std::invalid_argument("state: saved with " + std::to_string(n) + " envs, this batcher has " +
                                  std::to_string(n_));
    const bool needs_reset = *take(1) != '\0';
    // Parsed whole before anything changes: a bad state leaves the batcher as it was.
    std::vector<float> obs(n_ * kObsDim);
    std::vector<double> ret(n_);
    std::vector<int64_t> len(n_);
    std::vector<std::string> env_states(n_);
    for (std::size_t i = 0; i < n_; ++i) {
      std::memcpy(&obs[i * kObsDim], take(sizeof(float) * kObsDim), sizeof(float) * kObsDim);
      std::memcpy(&ret[i], take(sizeof(double)), sizeof(double));
      std::memcpy(&len[i], take(sizeof(int64_t)), sizeof(int64_t));
      uint64_t size = 0;
      std::memcpy(&size, take(sizeof(size)), sizeof(size));
      env_states[i].assign(take(size), size);
    }
    if (at != state.size()) throw std::invalid_argument("state: trailing bytes after the batcher state");
    std::vector<E> envs;
    envs.reserve(n_);
    for (std::size_t i = 0; i < n_; ++i) {
      envs.emplace_back(envs_[i].config());
      envs::load_env_state(envs.back(), env_states[i]);
    }
    envs_ = std::move(envs);
    obs_ = std::move(obs);
    acc_return_ = std::move(ret);
    acc_length_ = std::move(len);
    const auto now = Clock::now();
    for (std::size_t i = 0; i < n_; ++i) {
      clear_row(i);
      start_time_[i] = now;
    }
    needs_reset_ = needs_reset;
  }

  // Steps every env with actions[i * kActDim ...]. Every action is validated before anything is stepped.
  void step(const Action* actions) {
    Guard g(this, "step");
    require_idle("step");
    require_reset("step");
    for (std::size_t i = 0; i < n_; ++i) validate(i, actions + i * kActDim);
    std::copy(actions, actions + n_ * kActDim, actions_.begin());
    pool_->parallel_range(n_, kGrain, [&](std::size_t b, std::size_t e) {
      for (std::size_t i = b; i < e; ++i) step_one(i);
    });
  }

  // EnvPool-style async: queues one step for each env in env_ids (actions row k for env_ids[k]) and returns
  // at once. An env already in flight, a repeated or out-of-range id, or a bad action raises before anything
  // is queued.
  void send(const Action* actions, const int64_t* env_ids, std::size_t n) {
    Guard g(this, "send");
    require_reset("send");
    std::vector<std::size_t> job(n);
    {
      std::lock_guard<std::mutex> lk(q_mu_);
      std::vector<uint8_t> seen(n_, 0);
      for (std::size_t k = 0; k < n; ++k) {
        const int64_t id = env_ids[k];
        if (id < 0 || static_cast<std::size_t>(id) >= n_)
          throw std::invalid_argument("env_ids: env index " + std::to_string(id) + " is outside [0, " +
                                      std::to_string(n_) + ")");
        if (seen[id]) throw std::invalid_argument("env_ids: env index " + std::to_string(id) + " appears twice");
        if (in_flight_[id])
          throw std::invalid_argument("env_ids: env index " + std::to_string(id) +
                                      " is already in flight; recv() it before sending it again");
        seen[id] = 1;
        validate(static_cast<std::size_t>(id), actions + k * kActDim);
        job[k] = static_cast<std::size_t>(id);
      }
      if (n == 0) return;
      for (std::size_t k = 0; k < n; ++k) {
        std::copy(actions + k * kActDim, actions + (k + 1) * kActDim, actions_.begin() + job[k] * kActDim);
        in_flight_[job[k]] = 1;
      }
      n_in_flight_ += n;
      jobs_.push_back(std::move(job));
      if (!driver_.joinable()) driver_ = std::thread([this] { driver_loop(); });
    }
    q_cv_.notify_all();
  }

  // Waits for the first batch_size envs to finish their sent step, copies their rows into `out` (in the
  // order they finished) and returns. timeout_s < 0 waits without limit; otherwise TimeoutError after
  // timeout_s seconds (the envs stay in flight). Nothing in flight, or batch_size above the number in
  // flight, is an error rather than a wait that could never end. An exception thrown while stepping one of
  // the returned envs is rethrown here.
  void recv(std::size_t batch_size, double timeout_s, const Batch& out) {
    Guard g(this, "recv");
    std::unique_lock<std::mutex> lk(q_mu_);
    if (n_in_flight_ == 0) throw std::runtime_error("recv: no environments in flight; call send() first");
    if (batch_size == 0 || batch_size > n_in_flight_)
      throw std::invalid_argument("batch_size: expected 1 to " + std::to_string(n_in_flight_) +
                                  " (the number of environments in flight), got " + std::to_string(batch_size));
    const auto ready = [&] { return ready_.size() >= batch_size; };
    if (timeout_s < 0) {
      ready_cv_.wait(lk, ready);
    } else if (!ready_cv_.wait_for(lk, std::chrono::duration<double>(timeout_s), ready)) {
      throw TimeoutError("recv: timed out after " + std::to_string(timeout_s) + " s waiting for " +
                         std::to_string(batch_size) + " environments (" + std::to_string(ready_.size()) + " ready, " +
                         std::to_string(n_in_flight_) + " in flight)");
    }
    // An env whose step threw is taken out of flight alone and its error raised; every other ready env stays in
    // the queue untouched, so the next recv() still returns their results (episode ends included).
    for (std::size_t k = 0; k < batch_size; ++k) {
      const std::size_t i = ready_[k];
      if (!env_error_[i]) continue;
      ready_.erase(ready_.begin() + static_cast<std::ptrdiff_t>(k));
      in_flight_[i] = 0;
      --n_in_flight_;
      std::exception_ptr err = env_error_[i];
      env_error_[i] = nullptr;
      lk.unlock();
      rethrow_for_env(err, i);
    }
    for (std::size_t k = 0; k < batch_size; ++k) {
      const std::size_t i = ready_.front();
      ready_.pop_front();
      out.env_id[k] = static_cast<int64_t>(i);
      std::memcpy(out.obs + k * kObsDim, &obs_[i * kObsDim], sizeof(float) * kObsDim);
      out.rewards[k] = rewards_[i];
      out.terminated[k] = terminated_[i];
      out.truncated[k] = truncated_[i];
      std::memcpy(out.final_obs + k * kObsDim, &final_obs_[i * kObsDim], sizeof(float) * kObsDim);
      out.has_final[k] = has_final_[i];
      out.episode_return[k] = episode_return_[i];
      out.episode_length[k] = episode_length_[i];
      out.episode_time[k] = episode_time_[i];
      in_flight_[i] = 0;
      --n_in_flight_;
    }
  }

  std::size_t num_in_flight() const {
    if (process_id() != owner_pid_) return n_in_flight_;  // forked child: q_mu_ may be held by a thread not here
    std::lock_guard<std::mutex> lk(q_mu_);
    return n_in_flight_;
  }

  // Stops the driver and worker threads (finishing a step already running); the buffers stay readable.
  // Idempotent; every later call except close() raises.
  void close() {
    if (process_id() != owner_pid_) {
      // A forked child: the threads (and any mutex they held) exist only in the parent. Leak, never join.
      if (closed_.load(std::memory_order_relaxed)) return;
      (void)pool_.release();
      (void)sync_.release();
      if (driver_.joinable()) (void)new std::thread(std::move(driver_));
      closed_.store(true, std::memory_order_release);
      return;
    }
    std::lock_guard<std::mutex> api(api_mu_);
    if (closed_.load(std::memory_order_relaxed)) return;
    {
      std::lock_guard<std::mutex> lk(q_mu_);
      driver_stop_ = true;
    }
    q_cv_.notify_all();
    if (driver_.joinable()) driver_.join();
    pool_.reset();
    closed_.store(true, std::memory_order_release);
  }
  bool closed() const { return closed_.load(std::memory_order_acquire); }

 private:
  using Clock = std::chrono::steady_clock;
  // The header of get_state()'s bytes; a function, not a static string, so nothing can throw at load time.
  static std::string state_magic() { return std::string("rltrain-vec-state-1:") + E::kId + ":"; }

  template <class T>
  static void put(std::string& out, const T& v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }

  // Rethrows an env's step error with the env index in front of its message, keeping its category (the
  // bindings map invalid_argument to ValueError, the rest to RuntimeError).
  [[noreturn]] static void rethrow_for_env(const std::exception_ptr& err, std::size_t i) {
    const std::string where = "env " + std::to_string(i) + ": ";
    try {
      std::rethrow_exception(err);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(where + e.what());
    } catch (const std::exception& e) {
      throw std::runtime_error(where + e.what());
    }
  }
  // Envs per task: classic-control steps take ~0.1 us, so single-env tasks would cost more in atomics.
  static constexpr std::size_t kGrain = 8;

  // Serialises the public calls; a second thread gets an error instead of a data race or a deadlock.
  class Guard {
   public:
    Guard(VecEnv* v, const char* what) {
      if (process_id() != v->owner_pid_)
        throw std::runtime_error(std::string(what) +
                                 ": this vector env was created in another process (before fork()); create a new "
                                 "one in this process");
      lk_ = std::unique_lock<std::mutex>(v->api_mu_, std::try_to_lock);
      if (!lk_.owns_lock())
        throw std::runtime_error(std::string(what) + ": the vector env is busy in another thread's call");
      if (v->closed_.load(std::memory_order_relaxed))
        throw std::runtime_error(std::string(what) + ": the vector env is closed");
    }

   private:
    std::unique_lock<std::mutex> lk_;
  };

  void seed_all(uint64_t seed, bool identical) {
    for (std::size_t i = 0; i < n_; ++i) envs_[i].seed(identical ? seed : seed + i);
  }

  void require_idle(const char* what) const {
    std::lock_guard<std::mutex> lk(q_mu_);
    if (n_in_flight_ != 0)
      throw std::runtime_error(std::string(what) + ": " + std::to_string(n_in_flight_) +
                               " environments are in flight from send(); recv() them first");
  }
  void require_reset(const char* what) const {
    if (needs_reset_) throw std::runtime_error(std::string(what) + ": call reset() before stepping");
  }

  void validate(std::size_t i, const Action* a) const {
    const std::string why = envs::check_env_action<E>(envs_[i], a);
    if (!why.empty()) throw std::invalid_argument("actions: env " + std::to_string(i) + ": " + why);
  }

  void clear_row(std::size_t i) {
    std::fill_n(&final_obs_[i * kObsDim], kObsDim, 0.0f);
    has_final_[i] = 0;
    rewards_[i] = 0.0;
    terminated_[i] = truncated_[i] = 0;
    episode_return_[i] = 0.0;
    episode_length_[i] = 0;
    episode_time_[i] = 0.0;
  }

  // One env's step with same-step autoreset. Touches row i only, so envs never interact.
  void step_one(std::size_t i) {
    float* o = &obs_[i * kObsDim];
    const envs::StepResult r = envs_[i].step(&actions_[i * kActDim], o);
    rewards_[i] = r.reward;
    terminated_[i] = r.terminated;
    truncated_[i] = r.truncated;
    acc_return_[i] += r.reward;
    acc_length_[i] += 1;
    if (r.terminated || r.truncated) {
      const auto now = Clock::now();
      std::memcpy(&final_obs_[i * kObsDim], o, sizeof(float) * kObsDim);
      has_final_[i] = 1;
      episode_return_[i] = acc_return_[i];
      episode_length_[i] = acc_length_[i];
      episode_time_[i] = std::chrono::duration<double>(now - start_time_[i]).count();
      acc_return_[i] = 0.0;
      acc_length_[i] = 0;
      start_time_[i] = now;
      envs_[i].reset(o);
    } else {
      std::fill_n(&final_obs_[i * kObsDim], kObsDim, 0.0f);
      has_final_[i] = 0;
      episode_return_[i] = 0.0;
      episode_length_[i] = 0;
      episode_time_[i] = 0.0;
    }
  }

  // Runs queued send() jobs on the pool; each env joins the ready queue the moment its step finishes.
  void driver_loop() {
    for (;;) {
      std::vector<std::size_t> job;
      {
        std::unique_lock<std::mutex> lk(q_mu_);
        q_cv_.wait(lk, [&] { return driver_stop_ || !jobs_.empty(); });
        if (driver_stop_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      pool_->parallel_for(job.size(), [&](std::size_t k) {
        const std::size_t i = job[k];
        std::exception_ptr err;
        try {
          step_one(i);
        } catch (...) {
          err = std::current_exception();
        }
        {
          // Moved, not copied: this thread keeps no reference to the exception, so the caller that rethrows it
          // also frees it (a copy's release here raced with the caller's reading of the message under TSan).
          std::lock_guard<std::mutex> lk(q_mu_);
          env_error_[i] = std::move(err);
          ready_.push_back(i);
        }
        ready_cv_.notify_all();
      });
    }
  }

  std::size_t n_;
  bool identical_seeds_;
  std::vector<E> envs_;
  std::unique_ptr<ThreadPool> pool_;
  const int num_threads_;  // pool_'s size, readable without touching pool_

  std::vector<float> obs_;
  std::vector<double> rewards_;
  std::vector<uint8_t> terminated_, truncated_;
  std::vector<float> final_obs_;
  std::vector<uint8_t> has_final_;
  std::vector<double> episode_return_;
  std::vector<int64_t> episode_length_;
  std::vector<double> episode_time_;
  std::vector<double> acc_return_;
  std::vector<int64_t> acc_length_;
  std::vector<Clock::time_point> start_time_;
  std::vector<Action> actions_;  // staging: row i is read by env i's step

  long owner_pid_ = process_id();
  // The locks live on the heap so that a forked child can abandon them: their state was copied mid-use from
  // the parent, and destroying a condition variable that records waiters blocks forever (glibc).
  struct Sync {
    std::mutex api_mu;  // one public call at a time
    std::mutex q_mu;    // guards the async state below
    std::condition_variable q_cv, ready_cv;
  };
  std::unique_ptr<Sync> sync_ = std::make_unique<Sync>();
  std::mutex& api_mu_ = sync_->api_mu;
  std::mutex& q_mu_ = sync_->q_mu;
  std::condition_variable& q_cv_ = sync_->q_cv;
  std::condition_variable& ready_cv_ = sync_->ready_cv;
  // Written by close() (under api_mu_), read by closed()/num_threads() from any thread without a lock.
  std::atomic<bool> closed_{false};
  bool needs_reset_ = true;

  std::deque<std::vector<std::size_t>> jobs_;
  std::deque<std::size_t> ready_;
  std::vector<uint8_t> in_flight_;
  std::size_t n_in_flight_ = 0;
  std::vector<std::exception_ptr> env_error_;
  bool driver_stop_ = false;
  std::thread driver_;
};

}  // namespace rltrain
