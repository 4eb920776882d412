// CUDA implementations behind the op layer (src/ops/*.h), with the CPU kernels' contracts: same shapes,
// strides, aliasing and BF16 rounding (src/backends/cpu/kernels.h). Operands live on the GPU; the work is
// queued on the default stream and the call returns before it finishes (copies back to the host wait).
// Plain C++ so the op layer can include it in any build; defined only in a CUDA build.
#pragma once

#include "core/context.h"
#include "core/tensor.h"
#include "ops/linear.h"

namespace k5::cuda {

enum class Unary { silu, gelu_erf, gelu_tanh, quick_gelu };
void unary(Context& ctx, Unary function, const Tensor& x, Tensor& out);
void swiglu(Context& ctx, const Tensor& gate, const Tensor& up, Tensor& out);
enum class Binary { add, mul };
void binary(Context& ctx, Binary function, const Tensor& a, const Tensor& b, Tensor& out);
void scale(Context& ctx, const Tensor& x, float factor, Tensor& out);
void softmax(Context& ctx, const Tensor& x, Tensor& out);

void layer_norm(Context& ctx, const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& out);
void rms_norm(Context& ctx, const Tensor& x, const Tensor* weight, float eps, Tensor& out);
void scale_shift_norm(Context& ctx, const Tensor& x, const Tensor& scale, const Tensor& shift, float eps, Tensor& out);
void gated_residual(Context& ctx, Tensor& x, const Tensor& h, const Tensor& gate);

// GEMMs through cuBLASLt (src/backends/cuda/linear.cpp).
void linear(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor& out,
            ops::Activation activation);
void matmul(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out);

}  // namespace k5::cuda
