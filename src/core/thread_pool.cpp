#include "core/thread_pool.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

namespace k5 {

namespace {
thread_local bool inside_pool_task = false;
}

int hardware_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

int default_threads() { return omp_get_max_threads(); }

ThreadPool::ThreadPool(int threads) : threads_(threads > 0 ? threads : hardware_threads()) {}

ThreadPool::~ThreadPool() = default;

void ThreadPool::run_on_all(const std::function<void(int, int)>& body) {
  if (threads_ == 1 || inside_pool_task || omp_in_parallel()) {
    const bool was_inside = inside_pool_task;
    inside_pool_task = true;
    try {
      body(0, 1);
    } catch (...) {
      inside_pool_task = was_inside;
      throw;
    }
    inside_pool_task = was_inside;
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel num_threads(threads_)
  {
    inside_pool_task = true;
    try {
      body(omp_get_thread_num(), omp_get_num_threads());
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
    }
    inside_pool_task = false;
  }
  if (error) std::rethrow_exception(error);
}

void ThreadPool::parallel_for(int64_t begin, int64_t end, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& body) {
  if (end <= begin) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t total = end - begin;
  const int64_t max_chunks = (total + grain - 1) / grain;
  if (max_chunks == 1 || threads_ == 1 || inside_pool_task || omp_in_parallel()) {
    body(begin, end);
    return;
  }
  // Dynamic scheduling over a few chunks per thread balances uneven work (masked attention rows, tails).
  const int64_t chunks = std::min<int64_t>(max_chunks, int64_t(threads_) * 4);
  const int64_t chunk = (total + chunks - 1) / chunks;
  std::atomic<int64_t> next{0};
  run_on_all([&](int, int) {
    while (true) {
      const int64_t index = next.fetch_add(1);
      const int64_t chunk_begin = begin + index * chunk;
      if (chunk_begin >= end) return;
      body(chunk_begin, std::min(end, chunk_begin + chunk));
    }
  });
}

}  // namespace k5
