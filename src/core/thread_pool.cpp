#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <utility>

namespace k5 {

namespace {
thread_local bool inside_pool_task = false;
}

int hardware_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int threads) {
  const int count = threads > 0 ? threads : hardware_threads();
  for (int i = 1; i < count; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run_task(int index) {
  inside_pool_task = true;
  try {
    (*task_)(index, size());
  } catch (...) {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = std::current_exception();
  }
  inside_pool_task = false;
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    run_task(index);
    std::lock_guard lock(mutex_);
    if (--pending_ == 0) done_.notify_one();
  }
}

void ThreadPool::run_on_all(const std::function<void(int, int)>& body) {
  if (workers_.empty() || inside_pool_task) {
    const bool was_inside = inside_pool_task;
    inside_pool_task = true;
    body(0, 1);
    inside_pool_task = was_inside;
    return;
  }
  {
    std::lock_guard lock(mutex_);
    task_ = &body;
    pending_ = int(workers_.size());
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  run_task(0);
  std::unique_lock lock(mutex_);
  done_.wait(lock, [&] { return pending_ == 0; });
  task_ = nullptr;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void ThreadPool::parallel_for(int64_t begin, int64_t end, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& body) {
  if (end <= begin) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t total = end - begin;
  const int64_t max_chunks = (total + grain - 1) / grain;
  if (max_chunks == 1 || workers_.empty() || inside_pool_task) {
    body(begin, end);
    return;
  }
  // Dynamic scheduling over a few chunks per thread balances uneven work (masked attention rows, tails).
  const int64_t chunks = std::min<int64_t>(max_chunks, int64_t(size()) * 4);
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
