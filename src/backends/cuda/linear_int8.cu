// The int8 weight-only linear on the GPU (the CUDA side of ops::linear_int8, src/ops/linear_int8.h), the CPU
// path's computation: a block of weight rows is expanded exactly (int8 fits BF16 and F32 without rounding) to
// BF16 under Precision::bf16 (the GEMM then rounds the activations to BF16, as the CPU does) or to F32 under
// fp32, multiplied by cuBLASLt straight into the output's columns, then each column gets its scale and bias.
// The weights stay int8 on the GPU (half the memory of BF16); only one block is expanded at a time. The kernels are in
// linear_int8.cuh.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <memory>

#include "backends/cpu/rows.h"
#include "backends/cuda/check.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"
#include "backends/cuda/linear_int8.cuh"

namespace k5::cuda {

void linear_int8(Context& ctx, const Tensor& x, const ops::Int8Weight& weight, const Tensor* bias, Tensor& out,
                 int64_t expanded_budget_elements) {
  const int64_t M = x.size(0), N = weight.out_features(), K = weight.in_features();
  if (M == 0 || N == 0) return;
  K5_CHECK(!bias || (bias->is_contiguous() && (bias->dtype() == DType::F32 || bias->dtype() == DType::BF16)),
           "linear_int8: bias ", bias->describe(), " must be a contiguous F32 or BF16 vector");
  std::unique_ptr<ScratchBuffer> bias_f32;
  const float* bias_values = bias_as_f32(bias, N, bias_f32);
  const bool bf16 = ctx.precision() == Precision::bf16;
  if (K == 0) {  // as the CPU: the bias alone, or zeros
    K5_CUDA_CHECK(
        cudaMemset2DAsync(out.raw(), size_t(out.stride(0)) * sizeof(float), 0, size_t(N) * sizeof(float), size_t(M)));
    if (bias_values) add_bias_rows(bias_values, out.data<float>(), out.stride(0), M, N);
    return;
  }
  const int64_t block_rows = std::clamp<int64_t>(expanded_budget_elements / K, 1, N);
  // Scratch, not a tensor: every element is written before it is read, so no zero fill.
  const DType expanded_dtype = bf16 ? DType::BF16 : DType::F32;
  const ScratchBuffer block_memory(size_t(block_rows * K) * dtype_size(expanded_dtype));
  const Tensor block = Tensor::wrap(block_memory.as<void>(), expanded_dtype, {block_rows, K}, Device::CUDA);
  // In bf16 the GEMM reads x rounded to BF16: rounded once here instead of once per block.
  std::unique_ptr<ScratchBuffer> x_memory;
  Tensor input = x;
  if (bf16 && x.dtype() == DType::F32) {
    const cpu::Rows rows = cpu::rows_of(x, "linear_int8 input");
    input = Tensor::wrap(bf16_copy_of_rows(rows.data, rows.stride, M, K, x_memory), DType::BF16, {M, K}, Device::CUDA);
  }
  for (int64_t n0 = 0; n0 < N; n0 += block_rows) {
    const int64_t rows = std::min(block_rows, N - n0), count = rows * K;
    const int8_t* values = weight.values.data<int8_t>() + n0 * K;
    if (bf16)
      int8_to_bf16_kernel<<<grid_stride_blocks(count, kInt8Threads), kInt8Threads>>>(values, block.data<uint16_t>(),
                                                                                     count);
    else
      int8_to_f32_kernel<<<grid_stride_blocks(count, kInt8Threads), kInt8Threads>>>(values, block.data<float>(), count);
    K5_CUDA_CHECK_LAUNCH("int8 weight expansion");
    Tensor columns = out.slice(1, n0, n0 + rows);
    cuda::linear(ctx, input, block.slice(0, 0, rows), nullptr, columns, ops::Activation::none);
    scale_columns_kernel<<<row_grid(M, rows, kInt8Threads), kInt8Threads>>>(columns.data<float>(), out.stride(0), M,
                                                                            rows, weight.scales.data<float>() + n0,
                                                                            bias_values ? bias_values + n0 : nullptr);
    K5_CUDA_CHECK_LAUNCH("scale_columns_kernel");
  }
}

}  // namespace k5::cuda
