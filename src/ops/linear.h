// Linear layers and GEMM.
#pragma once

#include "core/context.h"
#include "core/tensor.h"

namespace k5::ops {

enum class Activation { none, gelu_erf, gelu_tanh, silu, quick_gelu };

// out[M, N] = activation(x[M, K] * weight[N, K]^T + bias[N]).
// x: F32, rows contiguous (last dim stride 1; row stride may exceed K). weight: F32 or BF16 contiguous
// (PyTorch's [out_features, in_features] layout). bias: F32/BF16 [N] or null. out: F32 [M, N], rows
// contiguous. The weight dtype picks the arithmetic: F32 weights -> float32 GEMM; BF16 weights -> BF16
// inputs (x rounded to BF16) with float32 accumulation. With BF16 weights x may also be BF16 (contiguous),
// used as it is.
void linear(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor& out,
            Activation activation = Activation::none);
// Same, allocating `out` in the context's workspace.
Tensor linear(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias = nullptr,
              Activation activation = Activation::none);

// out[M, N] = a[M, K] * b[K, N] (both F32, rows contiguous): plain matrix product for model glue code; with
// `accumulate`, out += a * b.
void matmul(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out, bool accumulate = false);

}  // namespace k5::ops
