// Device memory, host <-> device copies and dispatch rules.
#include "backends/cuda/device.h"
#include "gpu_test_util.h"
#include "ops/elementwise.h"
#include "ops/linear_int8.h"

namespace k5::test {
namespace {

TEST(CudaRuntime, WithoutDeviceAllocationFailsInOneLine) {
  if (cuda::device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  try {
    Tensor::empty(DType::F32, {4}, Device::CUDA);
    FAIL() << "allocating on a missing device should throw";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("no CUDA device"), std::string::npos) << error.what();
  }
}

using CudaTensor = GpuTest;

TEST_F(CudaTensor, RoundTripKeepsValuesAndDtype) {
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Tensor host = random_tensor({3, 5, 7}, 1, 1.0f, dtype);
    const Tensor device = on_gpu(host);
    EXPECT_EQ(device.device(), Device::CUDA);
    EXPECT_EQ(device.dtype(), dtype);
    EXPECT_TRUE(device.is_contiguous());
    const Tensor back = device.to_device(Device::CPU);
    EXPECT_EQ(back.device(), Device::CPU);
    EXPECT_EQ(back.to_f32_vector(), host.to_f32_vector());
  }
}

TEST_F(CudaTensor, NewDeviceTensorsAreZero) {
  const Tensor zeros = Tensor::empty(DType::F32, {1000}, Device::CUDA);
  for (float value : zeros.to_f32_vector()) ASSERT_EQ(value, 0.0f);
}

TEST_F(CudaTensor, StridedViewsCopyBothWays) {
  const Tensor host = random_tensor({6, 10, 4}, 2);
  const Tensor view = host.slice(1, 3, 8).transpose(0, 2);  // [4, 5, 6], not contiguous
  EXPECT_EQ(on_gpu(view).to_f32_vector(), view.to_f32_vector());
  const Tensor device_view = on_gpu(host).slice(1, 3, 8).transpose(0, 2);
  EXPECT_EQ(device_view.to_device(Device::CPU).to_f32_vector(), view.to_f32_vector());
}

TEST_F(CudaTensor, MixedDevicesAreRejected) {
  const Tensor host = random_tensor({8}, 3);
  Tensor out = Tensor::empty(DType::F32, {8}, Device::CUDA);
  EXPECT_THROW(ops::silu(ctx, host, out), Error);
}

TEST_F(CudaTensor, OpWithoutCudaKernelSaysSo) {
  // The int8 weight-only linear has no CUDA kernel (frame_causal_attention, the op used here before, now has one).
  const ops::Int8Weight weight = ops::quantize_int8(ctx, random_tensor({6, 8}, 4));
  const ops::Int8Weight gpu_weight{on_gpu(weight.values), on_gpu(weight.scales)};
  const Tensor x = on_gpu(random_tensor({3, 8}, 5));
  Tensor out = Tensor::empty(DType::F32, {3, 6}, Device::CUDA);
  try {
    ops::linear_int8(ctx, x, gpu_weight, nullptr, out);
    FAIL() << "linear_int8 has no CUDA kernel; the op layer should refuse GPU tensors";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("no CUDA backend"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace k5::test
