// The few operating-system calls the core needs, with a POSIX and a Windows branch each.
#pragma once

#if defined(_WIN32)
#include <process.h>
#else
#include <unistd.h>
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

}  // namespace rltrain
