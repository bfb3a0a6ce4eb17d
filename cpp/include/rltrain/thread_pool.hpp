// Fixed-size thread pool: parallel_for(n, fn) -> tasks claimed from an atomic counter -> workers + caller.
// One pool is created per owner and reused for every call (never a thread per call). The caller thread takes
// part in the work, exceptions thrown by a task are rethrown on the caller, and a nested or concurrent call
// runs inline, so no call can deadlock. How tasks are split never depends on the thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace rltrain {

class ThreadPool {
 public:
  // num_threads counts the caller: a pool of k runs k-1 worker threads.
  explicit ThreadPool(int num_threads) : num_threads_(std::max(1, num_threads)) {
    for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (auto& t : workers_) t.join();
  }

  int num_threads() const { return num_threads_; }

  // Runs fn(i) for i in [0, n). Blocks until all tasks finished; rethrows the first task exception.
  void parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn) {
    if (n == 0) return;
    std::unique_lock<std::mutex> call_lock(call_mu_, std::defer_lock);
    if (n == 1 || workers_.empty() || in_worker() || !call_lock.try_lock()) {
      for (std::size_t i = 0; i < n; ++i) fn(i);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &fn;
      n_tasks_ = n;
      next_.store(0, std::memory_order_relaxed);
      done_.store(0, std::memory_order_relaxed);
      error_ = nullptr;
      ++generation_;
    }
    cv_work_.notify_all();
    run_tasks(fn, n);
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, [&] { return done_.load(std::memory_order_acquire) == n && active_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  // Splits [0, total) into contiguous chunks of at least `grain` items (the split depends only on
  // total and grain) and runs fn(begin, end) on each.
  void parallel_range(std::size_t total, std::size_t grain,
                      const std::function<void(std::size_t, std::size_t)>& fn) {
    if (total == 0) return;
    grain = std::max<std::size_t>(grain, 1);
    const std::size_t chunks = std::min<std::size_t>((total + grain - 1) / grain, 64);
    const std::size_t step = (total + chunks - 1) / chunks;
    parallel_for(chunks, [&](std::size_t c) {
      const std::size_t b = c * step;
      const std::size_t e = std::min(total, b + step);
      if (b < e) fn(b, e);
    });
  }

 private:
  static bool& in_worker() {
    thread_local bool flag = false;
    return flag;
  }

  void run_tasks(const std::function<void(std::size_t)>& fn, std::size_t n) {
    for (;;) {
      const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) break;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
        std::lock_guard<std::mutex> lk(mu_);
        cv_done_.notify_all();
      }
    }
  }

  void worker_loop() {
    in_worker() = true;
    std::size_t seen = 0;
    for (;;) {
      const std::function<void(std::size_t)>* job;
      std::size_t n;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_work_.wait(lk, [&] { return stop_ || (generation_ != seen && job_ != nullptr); });
        if (stop_) return;
        seen = generation_;
        job = job_;
        n = n_tasks_;
        ++active_;
      }
      run_tasks(*job, n);
      {
        std::lock_guard<std::mutex> lk(mu_);
        --active_;
      }
      cv_done_.notify_all();
    }
  }

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // one parallel_for at a time; a concurrent caller runs inline
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  const std::function<void(std::size_t)>* job_ = nullptr;
  std::size_t n_tasks_ = 0;
  std::size_t generation_ = 0;
  int active_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::atomic<std::size_t> next_{0};
  std::atomic<std::size_t> done_{0};
};

// Default thread count: RLTRAIN_NUM_THREADS if set and positive, else the hardware concurrency.
inline int default_num_threads() {
  if (const char* s = std::getenv("RLTRAIN_NUM_THREADS")) {
    const int k = std::atoi(s);
    if (k > 0) return k;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

}  // namespace rltrain
