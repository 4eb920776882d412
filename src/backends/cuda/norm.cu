// Normalisations and the DiT's modulation ops (the CUDA side of src/ops/norm.h): operand checks and launches; the
// kernels are in norm.cuh.

#include "backends/cpu/rows.h"
#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"
#include "backends/cuda/norm.cuh"

namespace k5::cuda {

namespace {

DeviceVector device_vector(const Tensor* t, int64_t width, const char* what) {
  if (!t) return {nullptr, 1};
  K5_CHECK(t->device() == Device::CUDA, what, ": ", t->describe(), " is on the host, the input on the GPU");
  const cpu::Vector v = cpu::vector_of(*t, width, what);
  return {v.data, v.stride};
}

struct RowPair {
  cpu::Rows in, out;
};

// x's rows and out's (F32; or BF16, contiguous, where the op can write it: then out.data is null).
RowPair matching_rows(const Tensor& x, const Tensor& out, const char* op, bool bf16_out_allowed = false) {
  const std::string input_name = std::string(op) + " input", output_name = std::string(op) + " output";
  const cpu::Rows in = cpu::rows_of(x, input_name.c_str());
  const cpu::Rows result = bf16_out_allowed && out.dtype() == DType::BF16 ? cpu::bf16_rows_of(out, output_name.c_str())
                                                                          : cpu::rows_of(out, output_name.c_str());
  K5_CHECK(in.count == result.count && in.width == result.width, op, ": output ", out.describe(),
           " does not match input ", x.describe());
  K5_CHECK(in.count < (int64_t(1) << 31), op, ": ", in.count, " rows is more than one launch takes");
  return {in, result};
}

}  // namespace

void layer_norm(Context&, const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& out) {
  const auto [in, result] = matching_rows(x, out, "layer_norm");
  const DeviceVector gamma = device_vector(weight, in.width, "layer_norm weight");
  const DeviceVector beta = device_vector(bias, in.width, "layer_norm bias");
  if (in.count == 0 || in.width == 0) return;
  layer_norm_kernel<<<unsigned(in.count), kNormRowThreads>>>(in.data, in.stride, gamma, beta, eps, result.data,
                                                             result.stride, in.width);
  K5_CUDA_CHECK_LAUNCH("layer_norm_kernel");
}

void rms_norm(Context&, const Tensor& x, const Tensor* weight, float eps, Tensor& out) {
  const auto [in, result] = matching_rows(x, out, "rms_norm");
  const DeviceVector gamma = device_vector(weight, in.width, "rms_norm weight");
  if (in.count == 0 || in.width == 0) return;
  if (in.width <= kRmsNormWarpRowWidthLimit) {
    rms_norm_warp_rows_kernel<<<grid_stride_blocks(in.count, kRmsNormWarpRowsPerBlock),
                                32 * kRmsNormWarpRowsPerBlock>>>(in.data, in.stride, gamma, eps, result.data,
                                                                 result.stride, in.count, in.width);
    K5_CUDA_CHECK_LAUNCH("rms_norm_warp_rows_kernel");
    return;
  }
  rms_norm_kernel<<<unsigned(in.count), kNormRowThreads>>>(in.data, in.stride, gamma, eps, result.data, result.stride,
                                                           in.width);
  K5_CUDA_CHECK_LAUNCH("rms_norm_kernel");
}

void scale_shift_norm(Context&, const Tensor& x, const Tensor& scale, const Tensor& shift, float eps, Tensor& out) {
  const auto [in, result] = matching_rows(x, out, "scale_shift_norm", true);
  const DeviceVector scale_vector = device_vector(&scale, in.width, "scale_shift_norm scale");
  const DeviceVector shift_vector = device_vector(&shift, in.width, "scale_shift_norm shift");
  if (in.count == 0 || in.width == 0) return;
  if (out.dtype() == DType::BF16)
    scale_shift_norm_kernel<<<unsigned(in.count), kNormRowThreads>>>(
        in.data, in.stride, scale_vector, shift_vector, eps, out.data<uint16_t>(), result.stride, in.width);
  else
    scale_shift_norm_kernel<<<unsigned(in.count), kNormRowThreads>>>(in.data, in.stride, scale_vector, shift_vector,
                                                                     eps, result.data, result.stride, in.width);
  K5_CUDA_CHECK_LAUNCH("scale_shift_norm_kernel");
}

void gated_residual(Context&, Tensor& x, const Tensor& h, const Tensor& gate) {
  const cpu::Rows target = cpu::rows_of(x, "gated_residual x"), update = cpu::rows_of(h, "gated_residual h");
  K5_CHECK(target.count == update.count && target.width == update.width, "gated_residual: ", h.describe(),
           " does not match ", x.describe());
  const DeviceVector g = device_vector(&gate, target.width, "gated_residual gate");
  const int64_t total = target.count * target.width;
  if (total == 0) return;
  gated_residual_kernel<<<row_grid(target.count, target.width, 256), 256>>>(
      target.data, target.stride, update.data, update.stride, g, target.count, target.width);
  K5_CUDA_CHECK_LAUNCH("gated_residual_kernel");
}

}  // namespace k5::cuda
