// The few operating-system calls the core needs, with a POSIX and a Windows branch each.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#if defined(_WIN32)
#include <process.h>
#else
#include <unistd.h>
#endif
#if defined(__linux__)
#include <sched.h>
#endif

namespace rltrain {

// The calling process's id: the batcher compares it with its creator's to detect use after fork().
inline long process_id() {
#if defined(_WIN32)
  return static_cast<long>(::_getpid());
#else
  return static_cast<long>(::getpid());
#endif
}

// The CPUs this process may actually use: the affinity mask (taskset, a container's cpuset), further capped by a
// cgroup CPU quota (cgroup v2 cpu.max, or v1 cfs_quota_us / cfs_period_us, rounded up), which
// hardware_concurrency() ignores: a 2-CPU container on a 128-core host gets 2, not 128. Other systems: the
// hardware concurrency. Always >= 1.
inline int available_cpus() {
  int n = static_cast<int>(std::thread::hardware_concurrency());
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
  double quota = -1.0, period = -1.0;
  std::ifstream v2("/sys/fs/cgroup/cpu.max");
  std::string q;
  if (v2 >> q >> period && q != "max") quota = std::strtod(q.c_str(), nullptr);
  if (quota <= 0) {
    std::ifstream qf("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), pf("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
    if (!(qf >> quota && pf >> period)) quota = -1.0;
  }
  if (quota > 0 && period > 0) n = std::min(n, std::max(1, static_cast<int>(std::ceil(quota / period))));
#endif
  return std::max(1, n);
}

// Upper bound on any thread count (kernel pool, native batcher, fork workers): far above any useful value, low
// enough that a typo cannot start thousands of spinning threads.
inline constexpr int kMaxThreads = 1024;

}  // namespace rltrain
