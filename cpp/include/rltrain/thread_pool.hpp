// Fixed-size thread pool: parallel_for(n, fn) -> generation counter -> spinning/sleeping workers + caller.
// One pool per owner, reused for every call (never a thread per call). The caller takes part in the work,
// exceptions thrown by a task are rethrown on the caller, and a nested or concurrent call runs inline, so no
// call can deadlock. Workers spin briefly before sleeping because kernels are often called back to back and a
// futex wake-up costs more than a small kernel. With the static schedule task i always runs on thread
// i % num_threads, so repeated calls keep each thread's columns in its own cache. How work is split never
// depends on the thread count.
// The dynamic schedule never waits for a worker that has not started: tasks are claimed from one atomic word that
// also names the call (a late worker's claim fails once the call is over), and the caller waits only for the tasks
// that workers claimed. With the other core busy (2 vCPUs, another process running) a call that waited for every
// worker to acknowledge it took 220 us instead of 20: the descheduled worker had to run again first.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "rltrain/platform.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RLTRAIN_PAUSE() _mm_pause()
#else
#define RLTRAIN_PAUSE() std::this_thread::yield()
#endif

namespace rltrain {

class ThreadPool {
 public:
  enum class Schedule { Dynamic, Static };

  // num_threads counts the caller: a pool of k runs k-1 worker threads.
  // Thread creation failing part-way (process or cgroup limits, address space) stops and joins the threads
  // already started, then throws std::system_error: no half-built pool, no hang in its destructor.
  explicit ThreadPool(int num_threads, int spin_iterations = 4000)
      : num_threads_(std::max(1, num_threads)), spin_(spin_iterations) {
    try {
      workers_.reserve(static_cast<std::size_t>(num_threads_));
      for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
    } catch (...) {
      shutdown();
      throw;
    }
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() { shutdown(); }

  int num_threads() const { return num_threads_; }

  // Runs fn(i) for i in [0, n). Blocks until all tasks finished; rethrows the first task exception.
  void parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn, Schedule schedule = Schedule::Dynamic) {
    if (n == 0) return;
    std::unique_lock<std::mutex> call_lock(call_mu_, std::defer_lock);
    if (n == 1 || workers_.empty() || in_worker() || !call_lock.try_lock()) {
      for (std::size_t i = 0; i < n; ++i) fn(i);
      return;
    }
    const bool claimed = schedule == Schedule::Dynamic && n <= kClaimMaxTasks;
    job_ = &fn;
    n_tasks_ = n;
    static_ = schedule == Schedule::Static;
    error_ = nullptr;
    std::uint64_t tag = 0;
    {
      // Publishing under the mutex orders the job fields before the new generation for sleeping and
      // spinning workers alike. Generations count in twos: the low bit says every worker takes part.
      std::lock_guard<std::mutex> lk(mu_);
      const std::uint64_t g = (generation_.load(std::memory_order_relaxed) | 1) + 1 + (claimed ? 0 : 1);
      tag = (g >> 1) & 0xffffffffu;
      if (claimed) {
        done_.store(0, std::memory_order_relaxed);
        claim_.store(tag << 32 | static_cast<std::uint64_t>(n) << 16, std::memory_order_release);
      } else {
        next_.store(0, std::memory_order_relaxed);
        pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
      }
      generation_.store(g, std::memory_order_release);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) cv_work_.notify_all();
    in_worker() = true;  // a parallel_for nested in fn runs inline
    if (claimed)
      run_claimed(static_cast<std::uint32_t>(tag));
    else
      run_tasks(0);
    in_worker() = false;
    // Wait for the tasks workers claimed (claimed calls) or for every worker to have finished this generation
    // (they touch fn until then).
    for (int spins = 0;
         claimed ? done_.load(std::memory_order_acquire) != n : pending_.load(std::memory_order_acquire) != 0;
         ++spins) {
      if (spins < spin_)
        RLTRAIN_PAUSE();
      else
        std::this_thread::yield();
    }
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  // Splits [0, total) into contiguous chunks of at least `grain` items (the split depends only on total and
  // grain) and runs fn(begin, end) on each.
  void parallel_range(std::size_t total, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& fn,
                      Schedule schedule = Schedule::Dynamic) {
    if (total == 0) return;
    grain = std::max<std::size_t>(grain, 1);
    const std::size_t chunks = std::min<std::size_t>((total + grain - 1) / grain, 64);
    const std::size_t step = (total + chunks - 1) / chunks;
    parallel_for(
        chunks,
        [&](std::size_t c) {
          const std::size_t b = c * step;
          const std::size_t e = std::min(total, b + step);
          if (b < e) fn(b, e);
        },
        schedule);
  }

 private:
  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true, std::memory_order_release);
    }
    cv_work_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  static bool& in_worker() {
    thread_local bool flag = false;
    return flag;
  }

  void run_one(std::size_t i) {
    try {
      (*job_)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_mu_);
      if (!error_) error_ = std::current_exception();
    }
  }

  // Claimed calls: claim_ = tag (32 bits, the call's generation / 2) | n (16 bits) | next task (16 bits).
  static constexpr std::size_t kClaimMaxTasks = 0xffff;

  // Claims the next task of the call tagged `tag`: false when none is left or that call is over (a newer tag).
  bool claim(std::uint32_t tag, std::size_t& i) {
    std::uint64_t c = claim_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint64_t next = c & 0xffffu, n = (c >> 16) & 0xffffu;
      if ((c >> 32) != tag || next >= n) return false;
      if (claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        i = static_cast<std::size_t>(next);
        return true;
      }
    }
  }

  // Runs tasks of the call tagged `tag` while any is left. job_ is read only after a successful claim: the call
  // cannot return before its claimed tasks are done, so the job is still that call's.
  void run_claimed(std::uint32_t tag) {
    std::size_t i = 0;
    while (claim(tag, i)) {
      run_one(i);
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void run_tasks(int self) {
    const std::size_t n = n_tasks_;
    if (static_) {
      for (std::size_t i = static_cast<std::size_t>(self); i < n; i += static_cast<std::size_t>(num_threads_))
        run_one(i);
    } else {
      for (;;) {
        const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed);
        if (i >= n) break;
        run_one(i);
      }
    }
  }

  void worker_loop(int self) {
    in_worker() = true;
    std::uint64_t seen = 0;
    for (;;) {
      std::uint64_t g = generation_.load(std::memory_order_acquire);
      for (int spins = 0; g == seen && spins < spin_ && !stop_.load(std::memory_order_relaxed); ++spins) {
        RLTRAIN_PAUSE();
        g = generation_.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lk(mu_);
        sleepers_.fetch_add(1, std::memory_order_acq_rel);
        cv_work_.wait(lk, [&] {
          return stop_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_acquire) != seen;
        });
        sleepers_.fetch_sub(1, std::memory_order_acq_rel);
        if (stop_.load(std::memory_order_relaxed)) return;
        g = generation_.load(std::memory_order_acquire);
      }
      if (stop_.load(std::memory_order_relaxed)) return;
      seen = g;
      if ((g & 1) == 0) {  // a claimed call: take tasks while any is left, never wait for it
        run_claimed(static_cast<std::uint32_t>((g >> 1) & 0xffffffffu));
        continue;
      }
      run_tasks(self);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  int num_threads_;
  int spin_;
  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // one parallel_for at a time; a concurrent caller runs inline
  std::mutex mu_, err_mu_;
  std::condition_variable cv_work_;
  const std::function<void(std::size_t)>* job_ = nullptr;
  std::size_t n_tasks_ = 0;
  bool static_ = false;
  std::exception_ptr error_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::size_t> next_{0};
  std::atomic<std::uint64_t> claim_{0};
  std::atomic<std::size_t> done_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

// Default thread count, one rule for the kernel pool, the native batcher and the fork backend:
// RLTRAIN_NUM_THREADS if set to an integer in [1, kMaxThreads], else the CPUs actually available
// (platform.hpp: affinity mask and cgroup quota).
inline int default_num_threads() {
  if (const char* s = std::getenv("RLTRAIN_NUM_THREADS")) {
    // strtol, not atoi: a value beyond int's range saturates instead of being undefined behaviour.
    const long k = std::strtol(s, nullptr, 10);
    if (k > 0) return static_cast<int>(std::min<long>(k, kMaxThreads));
  }
  return std::min(available_cpus(), kMaxThreads);
}

}  // namespace rltrain
