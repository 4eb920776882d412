// CPU implementations behind the op layer (src/ops/*.h). Shapes and semantics are documented there.
#pragma once

#include "core/context.h"
#include "core/tensor.h"
#include "ops/attention.h"
#include "ops/linear.h"
#include "ops/rope.h"

namespace k5::cpu {

void linear(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor& out,
            ops::Activation activation);
void matmul(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out, bool accumulate);

void attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               const ops::AttentionOptions& options);
void block_sparse_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& block_mask,
                            int block_size, Tensor& out, float scale);
int64_t nabla_select_blocks(Context& ctx, const Tensor& q_pool, const Tensor& k_pool, const Tensor& sta, double P,
                            Tensor& block_mask);

void layer_norm(Context& ctx, const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& out);
void rms_norm(Context& ctx, const Tensor& x, const Tensor* weight, float eps, Tensor& out);
void scale_shift_norm(Context& ctx, const Tensor& x, const Tensor& scale, const Tensor& shift, float eps, Tensor& out);
void gated_residual(Context& ctx, Tensor& x, const Tensor& h, const Tensor& gate);

enum class Unary { silu, gelu_erf, gelu_tanh, quick_gelu };
void unary(Context& ctx, Unary function, const Tensor& x, Tensor& out);
// Applies `function` in place to a contiguous float array (used by the linear epilogue too).
void unary_inplace(Unary function, float* values, int64_t count);
void swiglu(Context& ctx, const Tensor& gate, const Tensor& up, Tensor& out);
enum class Binary { add, mul };
void binary(Context& ctx, Binary function, const Tensor& a, const Tensor& b, Tensor& out);
void scale(Context& ctx, const Tensor& x, float factor, Tensor& out);
void softmax(Context& ctx, const Tensor& x, Tensor& out);

void rope(Context& ctx, Tensor& x, const Tensor& cos, const Tensor& sin, bool interleaved,
          const ops::HeadRmsNorm* norm = nullptr);

void block_mean_pool(Context& ctx, const Tensor& x, int64_t block, Tensor& out);

}  // namespace k5::cpu
