// A fixed pool of worker threads that every CPU kernel uses (`--threads`).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace k5 {

class ThreadPool {
 public:
  // threads <= 0 means one per core.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Splits [begin, end) into chunks of at least `grain` items and calls body(chunk_begin, chunk_end) on
  // them in parallel; the calling thread works too. Returns when all chunks are done. Exceptions thrown by
  // the body are re-thrown here (the first one). Nested calls from inside a body run serially.
  void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

  // Calls body(thread_index, thread_count) once on each thread of the pool.
  void run_on_all(const std::function<void(int, int)>& body);

 private:
  void worker_loop(int index);
  void run_task(int index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int, int)>* task_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

int hardware_threads();

}  // namespace k5
