// The kernel thread pool: one ThreadPool per process shared by every kernel (set_num_threads -> shared_ptr ->
// kernels on any thread), and split_columns, the policy that decides when a [rows, N] kernel is worth splitting.
#pragma once

#if !defined(_WIN32)
#include <pthread.h>
#endif

#include <algorithm>
#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "rltrain/platform.hpp"
#include "rltrain/thread_pool.hpp"

namespace rltrain {

namespace kernel_pool_detail {

// The one kernel pool, created on first use and replaced by set_num_threads. Callers hold a shared_ptr for the
// whole call, so set_num_threads on one thread never destroys a pool that a kernel on another thread (the GIL is
// released) is still running on: the last holder destroys (joins) it. After fork() the child has no worker
// threads, so the inherited pool is abandoned (never joined) and a fresh one is made on demand.
struct State {
  std::mutex mu;
  std::shared_ptr<ThreadPool> pool;
  int threads = 0;
};

inline State& state() {
  static State& s = *new State();  // never destroyed: no join at exit
  return s;
}

inline void atfork_child() {
  // Leaked on purpose: its threads do not exist in the child. Placement new forgets the parent's pointer
  // without running a destructor (which would join threads that are not here).
  State& s = state();
  new (&s.pool) std::shared_ptr<ThreadPool>();
  new (&s.mu) std::mutex();
}

}  // namespace kernel_pool_detail

// The pool, made with get_num_threads() threads on first use.
inline std::shared_ptr<ThreadPool> kernel_pool() {
  using namespace kernel_pool_detail;
  State& s = state();
#if !defined(_WIN32)  // no fork() on Windows
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, atfork_child);
    return true;
  }();
  (void)registered;
#endif
  const std::lock_guard<std::mutex> lk(s.mu);
  if (s.pool == nullptr) {
    if (s.threads <= 0) s.threads = default_num_threads();
    s.pool = std::make_shared<ThreadPool>(s.threads);
  }
  return s.pool;
}

// Replaces the pool by one of k threads (std::invalid_argument outside [1, kMaxThreads]). The new pool is built
// first: when its threads cannot be created the old pool stays in place and usable (std::runtime_error).
inline void set_num_threads(int k) {
  using namespace kernel_pool_detail;
  if (k < 1 || k > kMaxThreads)
    throw std::invalid_argument("num_threads: expected an integer in [1, " + std::to_string(kMaxThreads) + "], got " +
                                std::to_string(k));
  State& s = state();
  {
    const std::lock_guard<std::mutex> lk(s.mu);
    if (s.pool != nullptr && s.threads == k) return;
  }
  std::shared_ptr<ThreadPool> fresh;
  try {
    fresh = std::make_shared<ThreadPool>(k);
  } catch (const std::system_error& e) {
    throw std::runtime_error("set_num_threads(" + std::to_string(k) + "): could not start the threads (" + e.what() +
                             "); the previous pool is kept");
  }
  std::shared_ptr<ThreadPool> old;  // released after the lock: joining its workers needs no lock held
  {
    const std::lock_guard<std::mutex> lk(s.mu);
    old = std::move(s.pool);
    s.pool = std::move(fresh);
    s.threads = k;
  }
}

inline int get_num_threads() { return kernel_pool()->num_threads(); }

// Runs fn(b, e) over column ranges [b, e) of a [rows, N] kernel: at most num_threads ranges of whole 64-byte
// lines (16 columns of float32), or one range when the input is too small to gain from threads.
template <typename Fn>
void split_columns(std::size_t rows, std::size_t N, Fn&& fn) {
  const std::shared_ptr<ThreadPool> holder = kernel_pool();  // kept alive until the split is done
  ThreadPool& pool = *holder;
  const std::size_t work = rows * N;
  std::size_t chunks = std::min<std::size_t>(pool.num_threads(), (N + 15) / 16);
  // The recursion streams ~20 bytes per element and one core already runs at cache bandwidth (measured:
  // (2048, 64) float32 takes the same time with -march=native and is slower on two threads of a 2-vCPU VM), so
  // only inputs well beyond the private caches (>= 2^20 elements) are split.
  if (work < (std::size_t(1) << 20)) chunks = 1;
  if (chunks <= 1) {
    fn(std::size_t(0), N);
    return;
  }
  const std::size_t step = ((N + chunks - 1) / chunks + 15) / 16 * 16;
  pool.parallel_for(
      chunks,
      [&](std::size_t c) {
        const std::size_t b = c * step, e = std::min(N, b + step);
        if (b < e) fn(b, e);
      },
      ThreadPool::Schedule::Static);
}

}  // namespace rltrain
