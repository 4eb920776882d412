// The worker threads every CPU kernel uses (`--threads`): OpenMP's team, the same threads oneDNN's GEMMs
// run on. One set of threads matters on small machines: a second pool beside OpenMP's would compete with
// OpenMP threads spin-waiting between GEMMs (measured: a tiny model ran 8x slower that way).
#pragma once

#include <cstdint>
#include <functional>

namespace k5 {

class ThreadPool {
 public:
  // threads <= 0 means one per core.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return threads_; }

  // Splits [begin, end) into chunks of at least `grain` items and calls body(chunk_begin, chunk_end) on
  // them in parallel; the calling thread works too. Returns when all chunks are done. Exceptions thrown by
  // the body are re-thrown here (the first one). Nested calls from inside a body run serially.
  void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

  // Calls body(thread_index, thread_count) once on each thread of the pool.
  void run_on_all(const std::function<void(int, int)>& body);

 private:
  int threads_ = 1;
};

int hardware_threads();
// OpenMP's default team size on the calling thread, which a Context sets to its thread count: for work that runs
// outside the ops of a Context it was not handed.
int default_threads();

}  // namespace k5
