// Device dispatch for the op layer: every op checks where its tensors live and calls that backend.
//
// An op with a CUDA kernel starts with
//     if constexpr (kCudaBuild)
//       if (on_cuda("silu", x, out)) return cuda::unary(...);
// (`if constexpr` keeps CPU-only builds from needing the CUDA symbols), then falls through to device_of and
// the CPU kernel. An op without one only calls device_of, which turns CUDA operands away with a clear error.
#pragma once

#include "core/error.h"
#include "core/tensor.h"

namespace k5::ops {

#ifdef K5_WITH_CUDA
inline constexpr bool kCudaBuild = true;
#else
inline constexpr bool kCudaBuild = false;
#endif

template <typename... Tensors>
Device common_device(const char* op, const Tensor& first, const Tensors&... rest) {
  const Device device = first.device();
  const bool same_device = ((rest.device() == device) && ...);
  K5_CHECK(same_device, op, ": operands on different devices");
  return device;
}

// The backend for an op that has a CPU kernel only; all operands must be on one device.
template <typename... Tensors>
Device device_of(const char* op, const Tensor& first, const Tensors&... rest) {
  const Device device = common_device(op, first, rest...);
  if constexpr (kCudaBuild)
    K5_CHECK(device == Device::CPU, op, ": no CUDA backend for this op yet (operands are on the GPU)");
  else
    K5_CHECK(device == Device::CPU, op, ": no ", device_name(device), " backend in this build");
  return device;
}

// For an op with a CUDA kernel too: whether its operands (all on one device) are on the GPU.
template <typename... Tensors>
bool on_cuda(const char* op, const Tensor& first, const Tensors&... rest) {
  return common_device(op, first, rest...) == Device::CUDA;
}

}  // namespace k5::ops
