// Device memory, host <-> device copies and dispatch rules.
#include "backends/cuda/device.h"
#include "gpu_test_util.h"
#include "ops/elementwise.h"

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

}  // namespace
}  // namespace k5::test
