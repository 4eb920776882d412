// Device dispatch for the op layer: every op checks where its tensors live and calls that backend.
#pragma once

#include "core/error.h"
#include "core/tensor.h"

namespace k5::ops {

// The backend for an op whose operands are `tensors`; all must be on one device.
template <typename... Tensors>
Device device_of(const char* op, const Tensor& first, const Tensors&... rest) {
  const Device device = first.device();
  const bool same_device = ((rest.device() == device) && ...);
  K5_CHECK(same_device, op, ": operands on different devices");
  K5_CHECK(device == Device::CPU, op, ": no ", device_name(device), " backend in this build");
  return device;
}

}  // namespace k5::ops
