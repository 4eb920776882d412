#include "core/context.h"

#include <omp.h>

namespace k5 {

const char* precision_name(Precision precision) { return precision == Precision::fp32 ? "fp32" : "bf16"; }

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  fail("unknown precision '", name, "' (valid: fp32, bf16)");
}

Context::Context(const ContextOptions& options)
    : options_(options), pool_(options.threads), logger_(options.log_level) {
  // The CUDA backend (when built) has its first ops only; the models do not run on it yet.
  K5_CHECK(options.device == Device::CPU, "--device ", device_name(options.device),
           ": the models do not run on the GPU yet (the CUDA backend has its first ops only); use --device cpu");
  // oneDNN (the GEMM library) runs on OpenMP; give it the same thread count as our pool.
  omp_set_num_threads(pool_.size());
}

}  // namespace k5
