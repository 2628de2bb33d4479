// Work shared with XLA's intra-op thread pool, for the kernels of this directory.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace bmx {

// The CPU the calling thread runs on, or 0 where that cannot be asked.
inline int64_t CurrentCpu() {
#if defined(__linux__)
  const int cpu = sched_getcpu();
  return cpu < 0 ? 0 : cpu;
#else
  return 0;
#endif
}

// Runs body(c) for every c in [0, n): the calling thread and `helpers` tasks on XLA's
// intra-op pool claim items. Threads of our own would compete with that pool's (spinning)
// workers for the same cores and cost tens of microseconds to start. Each thread first
// claims the items that fall to its CPU (c % (helpers + 1)), then any left: a chunk is then
// computed on the same core from one block to the next and finds its history in that
// core's L2 (32 members, one chunk per core: 83-87 us per chunk against 101-125 us when
// chunks went to whichever thread came first). A task that starts late finds nothing left,
// so the caller never waits on a task that has not begun and, if the pool is busy, does
// every item itself.
template <typename Body>
void ShareWork(xla::ffi::ThreadPool& pool, int64_t n, int64_t helpers, const Body& body) {
  struct Claims {
    explicit Claims(int64_t n) : taken(n) {}
    std::vector<std::atomic<bool>> taken;
    std::atomic<int64_t> done{0};
  };
  auto claims = std::make_shared<Claims>(n);
  const int64_t threads = helpers + 1;
  auto drain = [claims, n, threads, &body] {
    const int64_t home = CurrentCpu() % threads;
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t i = 0; i < n; ++i) {
        if (pass == 0 && i % threads != home) continue;
        if (claims->taken[i].load(std::memory_order_relaxed) || claims->taken[i].exchange(true)) continue;
        body(i);
        claims->done.fetch_add(1, std::memory_order_release);
      }
  };
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule(decltype(drain)(drain));
  drain();
  while (claims->done.load(std::memory_order_acquire) < n) std::this_thread::yield();
}

}  // namespace bmx
