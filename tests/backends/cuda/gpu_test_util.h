// Shared by the GPU tests: a fixture that skips without a CUDA device, random inputs, and a CPU-vs-CUDA
// comparison. Each test runs an op on the CPU (the reference) and on the GPU with the same inputs.
#pragma once

#include <gtest/gtest.h>

#include "backends/cuda/device.h"
#include "core/context.h"
#include "core/tensor.h"
#include "support/compare.h"
#include "support/random.h"

namespace k5::test {

// Every GPU test derives from this: no device (no driver, CI) -> the test is reported as skipped.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
  Context ctx{{.threads = 2, .precision = Precision::fp32, .log_level = LogLevel::quiet}};
};

inline Tensor on_gpu(const Tensor& t) { return t.to_device(Device::CUDA); }

// Relative L2 error of a GPU result against the CPU one (read back to the host).
inline double gpu_vs_cpu(const Tensor& gpu, const Tensor& cpu) {
  EXPECT_EQ(gpu.device(), Device::CUDA);
  return relative_l2(gpu.to_device(Device::CPU), cpu);
}

// Tolerances (relative L2): float32 ops differ only in summation order; the BF16 GEMM rounds its inputs the
// same way on both sides and accumulates in float32, so it agrees far inside the 1e-2 BF16 budget.
constexpr double kF32Tolerance = 1e-5;
constexpr double kBf16GemmTolerance = 1e-4;

}  // namespace k5::test
