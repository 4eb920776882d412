#include "core/context.h"

#include <omp.h>

#ifdef K5_WITH_CUDA
#include "backends/cuda/device.h"
#endif

namespace k5 {

const char* precision_name(Precision precision) { return precision == Precision::fp32 ? "fp32" : "bf16"; }

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  fail("unknown precision '", name, "' (valid: fp32, bf16)");
}

Device default_device() {
#ifdef K5_WITH_CUDA
  static const Device device = cuda::device_count() > 0 ? Device::CUDA : Device::CPU;
  return device;
#else
  return Device::CPU;
#endif
}

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") return Device::CUDA;
  if (name == "auto") return default_device();
  fail("unknown device '", name, "' (valid: auto, cpu, cuda)");
}

Context::Context(const ContextOptions& options)
    : options_(options), pool_(options.threads), logger_(options.log_level) {
  if (options.device == Device::CUDA) {
#ifdef K5_WITH_CUDA
    K5_CHECK(cuda::device_count() > 0, "--device cuda: no CUDA device found (driver or GPU missing)");
#else
    fail("--device cuda: this k5 was built without the CUDA backend (configure with -DK5_CUDA=ON where nvcc is)");
#endif
  }
  use_on_this_thread();
}

// oneDNN (the GEMM library) runs on OpenMP; give it the same thread count as our pool.
void Context::use_on_this_thread() const { omp_set_num_threads(pool_.size()); }

void Context::trim_workspaces() {
  workspace_.trim();
  if (cuda_workspace_) cuda_workspace_->trim();
}

Workspace& Context::workspace(Device device) {
  if (device == Device::CPU) return workspace_;
  if (!cuda_workspace_) cuda_workspace_ = std::make_unique<Workspace>(0, Device::CUDA);
  return *cuda_workspace_;
}

}  // namespace k5
