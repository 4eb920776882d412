#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/context.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "core/workspace.h"
#include "support/context.h"

namespace k5 {
namespace {

TEST(ThreadPool, CoversRangeOnce) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(1000);
  pool.parallel_for(0, 1000, 7, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) hits[i]++;
  });
  for (auto& hit : hits) EXPECT_EQ(hit.load(), 1);
}

TEST(ThreadPool, PropagatesExceptionsAndNests) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallel_for(0, 100, 1, [](int64_t, int64_t) { throw std::runtime_error("x"); }),
               std::runtime_error);
  std::atomic<int> total{0};
  pool.parallel_for(0, 4, 1, [&](int64_t begin, int64_t end) {
    pool.parallel_for(0, 10, 1, [&](int64_t b, int64_t e) { total += int(e - b) * int(end - begin); });
  });
  EXPECT_EQ(total.load(), 40);
}

TEST(Workspace, ScopesReleaseAndReuse) {
  Workspace workspace(1024);
  void* first;
  {
    auto scope = workspace.scope();
    first = workspace.allocate(100);
    void* second = workspace.allocate(100);
    EXPECT_NE(first, second);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(second) % 64, 0u);
    workspace.allocate(size_t(1) << 20);  // grows
  }
  {
    auto scope = workspace.scope();
    EXPECT_EQ(workspace.allocate(100), first);
  }
  EXPECT_GE(workspace.peak(), size_t(1) << 20);
  // trim() gives the chunks back only when no scope holds memory; the workspace grows again on use.
  {
    auto scope = workspace.scope();
    workspace.allocate(100);
    workspace.trim();
    EXPECT_GT(workspace.capacity(), 0u);
  }
  workspace.trim();
  EXPECT_EQ(workspace.capacity(), 0u);
  auto scope = workspace.scope();
  EXPECT_NE(workspace.allocate(100), nullptr);
  EXPECT_GT(workspace.capacity(), 0u);
}

TEST(Context, DeviceNames) {
  EXPECT_EQ(parse_device("cpu"), Device::CPU);
  EXPECT_EQ(parse_device("cuda"), Device::CUDA);
  // auto is the GPU exactly when this build has the CUDA backend and a GPU answers.
  EXPECT_EQ(parse_device("auto"), test::gpu_available() ? Device::CUDA : Device::CPU);
  EXPECT_THROW(parse_device("gpu"), Error);
}

// The HTTP server runs jobs on its queue's thread, not the thread that made the Context: the GEMMs' thread count
// (OpenMP's, per thread) must follow the Context there too.
TEST(Context, ThreadCountOnAnotherThread) {
  ContextOptions options;
  options.threads = hardware_threads() + 1;  // unlike any default
  const Context ctx(options);
  EXPECT_EQ(default_threads(), ctx.threads());
  int before = 0, after = 0;
  std::thread([&] {
    before = default_threads();
    ctx.use_on_this_thread();
    after = default_threads();
  }).join();
  EXPECT_NE(before, ctx.threads());
  EXPECT_EQ(after, ctx.threads());
}

}  // namespace
}  // namespace k5
