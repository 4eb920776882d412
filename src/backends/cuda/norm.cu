// Normalisations and the DiT's modulation ops (the CUDA side of src/ops/norm.h), all in float32. One block per
// row, or one warp for an RMSNorm row of at most 512 values. LayerNorm statistics take two passes (mean, then
// centred squares) as the CPU path does; RMSNorm one (the squares). Per-thread partial sums are combined in a tree,
// which keeps float accumulation close to the CPU's double sums.

#include "backends/cpu/rows.h"
#include "backends/cuda/bf16.cuh"
#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"
#include "backends/cuda/row_grid.cuh"

namespace k5::cuda {

namespace {

constexpr int kRowThreads = 256;

// A [D] vector with an element stride (a strided view of a modulation vector), or absent.
struct DeviceVector {
  const float* data;
  int64_t stride;
  __device__ float operator[](int64_t i) const { return data[i * stride]; }
};

DeviceVector device_vector(const Tensor* t, int64_t width, const char* what) {
  if (!t) return {nullptr, 1};
  K5_CHECK(t->device() == Device::CUDA, what, ": ", t->describe(), " is on the host, the input on the GPU");
  const cpu::Vector v = cpu::vector_of(*t, width, what);
  return {v.data, v.stride};
}

__device__ float row_mean(const float* row, int64_t width) {
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) sum += row[i];
  return block_sum(sum) / float(width);
}

__device__ float row_inverse_std(const float* row, int64_t width, float mean, float eps) {
  float squares = 0.0f;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    const float centred = row[i] - mean;
    squares += centred * centred;
  }
  return 1.0f / sqrtf(block_sum(squares) / float(width) + eps);
}

// out may alias x in all of these: the last pass reads and writes each element from the same thread.
__global__ void layer_norm_kernel(const float* x, int64_t x_stride, DeviceVector weight, DeviceVector bias, float eps,
                                  float* out, int64_t out_stride, int64_t width) {
  const float* row = x + blockIdx.x * x_stride;
  float* target = out + blockIdx.x * out_stride;
  const float mean = row_mean(row, width);
  const float inverse_std = row_inverse_std(row, width, mean, eps);
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    float value = (row[i] - mean) * inverse_std;
    if (weight.data) value *= weight[i];
    if (bias.data) value += bias[i];
    target[i] = value;
  }
}

__global__ void rms_norm_kernel(const float* x, int64_t x_stride, DeviceVector weight, float eps, float* out,
                                int64_t out_stride, int64_t width) {
  const float* row = x + blockIdx.x * x_stride;
  float* target = out + blockIdx.x * out_stride;
  float squares = 0.0f;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) squares += row[i] * row[i];
  const float inverse = 1.0f / sqrtf(block_sum(squares) / float(width) + eps);
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x)
    target[i] = weight.data ? row[i] * inverse * weight[i] : row[i] * inverse;
}

// Rows too narrow to keep a block busy (the models' per-head q/k norms: 64 or 128 values) take one warp each.
constexpr int64_t kWarpRowWidthLimit = 512;
constexpr int kWarpRowsPerBlock = 8;

__global__ void rms_norm_warp_rows_kernel(const float* x, int64_t x_stride, DeviceVector weight, float eps, float* out,
                                          int64_t out_stride, int64_t rows, int64_t width) {
  const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32);
  for (int64_t r = int64_t(blockIdx.x) * kWarpRowsPerBlock + warp; r < rows;
       r += int64_t(gridDim.x) * kWarpRowsPerBlock) {
    const float* row = x + r * x_stride;
    float* target = out + r * out_stride;
    float squares = 0.0f;
    for (int64_t i = lane; i < width; i += 32) squares += row[i] * row[i];
    const float inverse = 1.0f / sqrtf(warp_reduce(squares, SumOp<float>{}) / float(width) + eps);
    for (int64_t i = lane; i < width; i += 32)
      target[i] = weight.data ? row[i] * inverse * weight[i] : row[i] * inverse;
  }
}

// out: F32, or BF16 (uint16_t) rows of the rounded results.
template <typename Out>
__global__ void scale_shift_norm_kernel(const float* x, int64_t x_stride, DeviceVector scale, DeviceVector shift,
                                        float eps, Out* out, int64_t out_stride, int64_t width) {
  const float* row = x + blockIdx.x * x_stride;
  Out* target = out + blockIdx.x * out_stride;
  const float mean = row_mean(row, width);
  const float inverse_std = row_inverse_std(row, width, mean, eps);
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x)
    store(&target[i], (row[i] - mean) * inverse_std * (1.0f + scale[i]) + shift[i]);
}

__global__ void gated_residual_kernel(float* x, int64_t x_stride, const float* h, int64_t h_stride, DeviceVector gate,
                                      int64_t rows, int64_t width) {
  for_each_row_element(rows, width, [&](int64_t row, int64_t column) {
    x[row * x_stride + column] += gate[column] * h[row * h_stride + column];
  });
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
  layer_norm_kernel<<<unsigned(in.count), kRowThreads>>>(in.data, in.stride, gamma, beta, eps, result.data,
                                                         result.stride, in.width);
  K5_CUDA_CHECK_LAUNCH("layer_norm_kernel");
}

void rms_norm(Context&, const Tensor& x, const Tensor* weight, float eps, Tensor& out) {
  const auto [in, result] = matching_rows(x, out, "rms_norm");
  const DeviceVector gamma = device_vector(weight, in.width, "rms_norm weight");
  if (in.count == 0 || in.width == 0) return;
  if (in.width <= kWarpRowWidthLimit) {
    rms_norm_warp_rows_kernel<<<grid_stride_blocks(in.count, kWarpRowsPerBlock), 32 * kWarpRowsPerBlock>>>(
        in.data, in.stride, gamma, eps, result.data, result.stride, in.count, in.width);
    K5_CUDA_CHECK_LAUNCH("rms_norm_warp_rows_kernel");
    return;
  }
  rms_norm_kernel<<<unsigned(in.count), kRowThreads>>>(in.data, in.stride, gamma, eps, result.data, result.stride,
                                                       in.width);
  K5_CUDA_CHECK_LAUNCH("rms_norm_kernel");
}

void scale_shift_norm(Context&, const Tensor& x, const Tensor& scale, const Tensor& shift, float eps, Tensor& out) {
  const auto [in, result] = matching_rows(x, out, "scale_shift_norm", true);
  const DeviceVector scale_vector = device_vector(&scale, in.width, "scale_shift_norm scale");
  const DeviceVector shift_vector = device_vector(&shift, in.width, "scale_shift_norm shift");
  if (in.count == 0 || in.width == 0) return;
  if (out.dtype() == DType::BF16)
    scale_shift_norm_kernel<<<unsigned(in.count), kRowThreads>>>(in.data, in.stride, scale_vector, shift_vector, eps,
                                                                 out.data<uint16_t>(), result.stride, in.width);
  else
    scale_shift_norm_kernel<<<unsigned(in.count), kRowThreads>>>(in.data, in.stride, scale_vector, shift_vector, eps,
                                                                 result.data, result.stride, in.width);
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
