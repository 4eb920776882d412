// Each CUDA op against the CPU op on random data (the CPU float32 path is the reference).
#include "backends/cuda/kernels.h"
#include "gpu_test_util.h"
#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/linear_int8.h"
#include "ops/norm.h"

namespace k5::test {
namespace {

using CudaOps = GpuTest;

TEST_F(CudaOps, UnaryActivations) {
  const Tensor x = random_tensor({37, 513}, 10, 3.0f);
  using UnaryOp = void (*)(Context&, const Tensor&, Tensor&);
  for (UnaryOp op : {UnaryOp(ops::silu), UnaryOp(ops::gelu), UnaryOp(ops::quick_gelu)}) {
    Tensor expected = Tensor::empty(DType::F32, x.shape());
    op(ctx, x, expected);
    Tensor out = Tensor::empty(DType::F32, x.shape(), Device::CUDA);
    op(ctx, on_gpu(x), out);
    EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
    Tensor in_place = on_gpu(x);
    op(ctx, in_place, in_place);
    EXPECT_LE(gpu_vs_cpu(in_place, expected), kF32Tolerance);
  }
}

TEST_F(CudaOps, Swiglu) {
  const Tensor gate = random_tensor({19, 300}, 11, 2.0f), up = random_tensor({19, 300}, 12);
  Tensor expected = Tensor::empty(DType::F32, gate.shape());
  ops::swiglu(ctx, gate, up, expected);
  Tensor out = Tensor::empty(DType::F32, gate.shape(), Device::CUDA);
  ops::swiglu(ctx, on_gpu(gate), on_gpu(up), out);
  EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
}

TEST_F(CudaOps, AddMulSameShapeAndRowBroadcast) {
  const Tensor a = random_tensor({5, 7, 96}, 13), b = random_tensor({5, 7, 96}, 14), row = random_tensor({96}, 15);
  using BinaryOp = void (*)(Context&, const Tensor&, const Tensor&, Tensor&);
  for (BinaryOp op : {BinaryOp(ops::add), BinaryOp(ops::mul)}) {
    for (const Tensor* right : {&b, &row}) {
      Tensor expected = Tensor::empty(DType::F32, a.shape());
      op(ctx, a, *right, expected);
      Tensor out = on_gpu(a);  // out aliases a
      op(ctx, out, on_gpu(*right), out);
      EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
    }
  }
}

TEST_F(CudaOps, Scale) {
  const Tensor x = random_tensor({1000}, 16);
  Tensor expected = Tensor::empty(DType::F32, x.shape());
  ops::scale(ctx, x, -0.37f, expected);
  Tensor out = Tensor::empty(DType::F32, x.shape(), Device::CUDA);
  ops::scale(ctx, on_gpu(x), -0.37f, out);
  EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
}

TEST_F(CudaOps, SoftmaxOnStridedRows) {
  // Rows 300 apart, 257 wide: the row stride differs from the width.
  const Tensor wide = random_tensor({64, 300}, 17, 4.0f);
  const Tensor x = wide.slice(1, 0, 257);
  Tensor expected = Tensor::empty(DType::F32, x.shape());
  ops::softmax(ctx, x, expected);
  Tensor out = Tensor::empty(DType::F32, x.shape(), Device::CUDA);
  ops::softmax(ctx, on_gpu(wide).slice(1, 0, 257), out);
  EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
}

TEST_F(CudaOps, LayerNormWithAndWithoutAffine) {
  for (int64_t width : {1000, 3072}) {
    const Tensor x = random_tensor({33, width}, 18, 2.0f);
    const Tensor weight = random_tensor({width}, 19), bias = random_tensor({width}, 20);
    const Tensor gpu_weight = on_gpu(weight), gpu_bias = on_gpu(bias);
    for (bool affine : {false, true}) {
      Tensor expected = Tensor::empty(DType::F32, x.shape());
      ops::layer_norm(ctx, x, affine ? &weight : nullptr, affine ? &bias : nullptr, 1e-6f, expected);
      Tensor out = on_gpu(x);  // in place
      ops::layer_norm(ctx, out, affine ? &gpu_weight : nullptr, affine ? &gpu_bias : nullptr, 1e-6f, out);
      EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance) << "width " << width << " affine " << affine;
    }
  }
}

TEST_F(CudaOps, RmsNorm) {
  // Head-dim rows (the DiT's query/key norm; one warp per row up to 512 values) and model-width rows (a block each).
  for (const Shape& shape : {Shape{256, 128}, Shape{1000, 64}, Shape{7, 512}, Shape{5, 513}, Shape{9, 3584}}) {
    const Tensor x = random_tensor(shape, 21, 3.0f), weight = random_tensor({shape[1]}, 22);
    const Tensor gpu_weight = on_gpu(weight);
    for (bool affine : {false, true}) {
      Tensor expected = Tensor::empty(DType::F32, x.shape());
      ops::rms_norm(ctx, x, affine ? &weight : nullptr, 1e-6f, expected);
      Tensor out = Tensor::empty(DType::F32, x.shape(), Device::CUDA);
      ops::rms_norm(ctx, on_gpu(x), affine ? &gpu_weight : nullptr, 1e-6f, out);
      EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance) << shape_string(shape) << " affine " << affine;
    }
  }
}

TEST_F(CudaOps, ScaleShiftNormWithStridedModulation) {
  const int64_t tokens = 41, dim = 1024;
  const Tensor x = random_tensor({tokens, dim}, 23);
  // The modulation vector as [dim, 6]: scale and shift are columns, `6` elements apart.
  const Tensor modulation = random_tensor({dim, 6}, 24, 0.5f);
  const Tensor scale = modulation.select(1, 1), shift = modulation.select(1, 0);
  Tensor expected = Tensor::empty(DType::F32, x.shape());
  ops::scale_shift_norm(ctx, x, scale, shift, 1e-6f, expected);
  const Tensor gpu_modulation = on_gpu(modulation);
  Tensor out = on_gpu(x);  // in place
  ops::scale_shift_norm(ctx, out, gpu_modulation.select(1, 1), gpu_modulation.select(1, 0), 1e-6f, out);
  EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
}

// The ops that may write BF16 write exactly their own F32 results, rounded (which follow the CPU's above).
TEST_F(CudaOps, Bf16OutputsAreTheRoundedF32Results) {
  const Tensor x = on_gpu(random_tensor({37, 1000}, 28, 2.0f));
  const Tensor modulation = on_gpu(random_tensor({1000, 2}, 29, 0.5f));
  const auto rounded = [](const Tensor& t) { return t.to_device(Device::CPU).to(DType::BF16).to_f32_vector(); };
  const auto values = [](const Tensor& t) { return t.to_device(Device::CPU).to_f32_vector(); };
  Tensor expected = Tensor::empty(DType::F32, x.shape(), Device::CUDA);
  Tensor out = Tensor::empty(DType::BF16, x.shape(), Device::CUDA);
  ops::scale_shift_norm(ctx, x, modulation.select(1, 1), modulation.select(1, 0), 1e-6f, expected);
  ops::scale_shift_norm(ctx, x, modulation.select(1, 1), modulation.select(1, 0), 1e-6f, out);
  EXPECT_EQ(values(out), rounded(expected));
  for (auto* activation : {&ops::gelu, &ops::silu, &ops::quick_gelu}) {
    activation(ctx, x, expected);
    activation(ctx, x, out);
    EXPECT_EQ(values(out), rounded(expected));
  }
}

TEST_F(CudaOps, GatedResidual) {
  const Tensor x = random_tensor({50, 768}, 25), h = random_tensor({50, 768}, 26), gate = random_tensor({768}, 27);
  Tensor expected = x.clone();
  ops::gated_residual(ctx, expected, h, gate);
  Tensor out = on_gpu(x);
  ops::gated_residual(ctx, out, on_gpu(h), on_gpu(gate));
  EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
}

struct LinearCase {
  int64_t m, n, k;
  DType weight_dtype;
  DType input_dtype;
  bool bias;
  ops::Activation activation;
};

void check_linear(Context& ctx, const LinearCase& c, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << c.m << "x" << c.n << "x" << c.k << " weight " << dtype_name(c.weight_dtype)
                                    << " input " << dtype_name(c.input_dtype) << " bias " << c.bias << " activation "
                                    << int(c.activation));
  const Tensor x = random_tensor({c.m, c.k}, seed, 1.0f, c.input_dtype);
  const Tensor weight = random_tensor({c.n, c.k}, seed + 1, 0.05f, c.weight_dtype);
  const Tensor bias = random_tensor({c.n}, seed + 2, 0.5f, c.weight_dtype);
  Tensor expected = Tensor::empty(DType::F32, {c.m, c.n});
  ops::linear(ctx, x, weight, c.bias ? &bias : nullptr, expected, c.activation);
  const Tensor gpu_bias = on_gpu(bias);
  Tensor out = Tensor::empty(DType::F32, {c.m, c.n}, Device::CUDA);
  ops::linear(ctx, on_gpu(x), on_gpu(weight), c.bias ? &gpu_bias : nullptr, out, c.activation);
  const double tolerance = c.weight_dtype == DType::BF16 ? kBf16GemmTolerance : kF32Tolerance;
  EXPECT_LE(gpu_vs_cpu(out, expected), tolerance);
}

TEST_F(CudaOps, LinearF32AndBf16Weights) {
  uint32_t seed = 30;
  for (DType weight_dtype : {DType::F32, DType::BF16}) {
    check_linear(ctx, {77, 192, 320, weight_dtype, DType::F32, true, ops::Activation::none}, seed += 3);
    check_linear(ctx, {77, 192, 320, weight_dtype, DType::F32, false, ops::Activation::none}, seed += 3);
    check_linear(ctx, {128, 256, 512, weight_dtype, DType::F32, true, ops::Activation::gelu_erf}, seed += 3);
    check_linear(ctx, {33, 100, 64, weight_dtype, DType::F32, true, ops::Activation::gelu_tanh}, seed += 3);
    check_linear(ctx, {33, 100, 64, weight_dtype, DType::F32, false, ops::Activation::silu}, seed += 3);
    check_linear(ctx, {33, 100, 64, weight_dtype, DType::F32, true, ops::Activation::quick_gelu}, seed += 3);
    // A few rows (decoding one token) and odd sizes.
    check_linear(ctx, {1, 300, 129, weight_dtype, DType::F32, true, ops::Activation::none}, seed += 3);
    check_linear(ctx, {3, 17, 33, weight_dtype, DType::F32, true, ops::Activation::none}, seed += 3);
  }
  // BF16 activations with BF16 weights go to the GEMM unrounded.
  check_linear(ctx, {65, 160, 96, DType::BF16, DType::BF16, true, ops::Activation::none}, seed += 3);
}

TEST_F(CudaOps, LinearOnStridedUnalignedRows) {
  // x rows 131 floats apart starting one float in: neither the pointer nor the leading dimension is aligned.
  const Tensor wide = random_tensor({40, 131}, 60);
  const Tensor x = wide.slice(1, 1, 129);
  const Tensor weight = random_tensor({96, 128}, 61, 0.1f), bias = random_tensor({96}, 62);
  for (DType weight_dtype : {DType::F32, DType::BF16}) {
    const Tensor w = weight.to(weight_dtype);
    Tensor expected = Tensor::empty(DType::F32, {40, 96});
    ops::linear(ctx, x, w, &bias, expected);
    const Tensor gpu_bias = on_gpu(bias);
    Tensor out = Tensor::empty(DType::F32, {40, 96}, Device::CUDA);
    ops::linear(ctx, on_gpu(wide).slice(1, 1, 129), on_gpu(w), &gpu_bias, out);
    EXPECT_LE(gpu_vs_cpu(out, expected), weight_dtype == DType::BF16 ? kBf16GemmTolerance : kF32Tolerance);
  }
}

TEST_F(CudaOps, LinearAllocatingOverloadReturnsGpuTensor) {
  const Tensor x = random_tensor({2, 5, 64}, 63), weight = random_tensor({48, 64}, 64, 0.1f);
  const Tensor expected = ops::linear(ctx, x, weight);
  const Tensor out = ops::linear(ctx, on_gpu(x), on_gpu(weight));
  EXPECT_EQ(out.shape(), (Shape{2, 5, 48}));
  EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
}

TEST_F(CudaOps, Matmul) {
  const Tensor a = random_tensor({45, 70}, 65), b = random_tensor({70, 33}, 66);
  Tensor expected = Tensor::empty(DType::F32, {45, 33});
  ops::matmul(ctx, a, b, expected);
  Tensor out = Tensor::empty(DType::F32, {45, 33}, Device::CUDA);
  ops::matmul(ctx, on_gpu(a), on_gpu(b), out);
  EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
  ops::matmul(ctx, a, b, expected, /*accumulate=*/true);  // out += a b
  ops::matmul(ctx, on_gpu(a), on_gpu(b), out, /*accumulate=*/true);
  EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
}

TEST_F(CudaOps, LinearInt8FollowsTheCpu) {
  // Both precisions (bf16 rounds the activations, as the CPU), F32 and BF16 biases, one row and many, into a
  // column slice of a wider output; then with a small expansion budget, so the weight goes in blocks of 30 rows
  // (the last one 10).
  for (Precision precision : {Precision::fp32, Precision::bf16}) {
    Context context{{.threads = 2, .precision = precision, .log_level = LogLevel::quiet}};
    const ops::Int8Weight weight = ops::quantize_int8(context, random_tensor({100, 96}, 70, 0.05f));
    const ops::Int8Weight gpu_weight{on_gpu(weight.values), on_gpu(weight.scales)};
    const double tolerance = precision == Precision::bf16 ? kBf16GemmTolerance : kF32Tolerance;
    for (int64_t rows : {1, 37})
      for (DType bias_dtype : {DType::F32, DType::BF16}) {
        SCOPED_TRACE(::testing::Message()
                     << precision_name(precision) << " rows " << rows << " bias " << dtype_name(bias_dtype));
        const Tensor x = random_tensor({rows, 96}, 71 + uint32_t(rows)),
                     bias = random_tensor({100}, 72, 0.5f, bias_dtype);
        Tensor expected = Tensor::empty(DType::F32, {rows, 100});
        ops::linear_int8(context, x, weight, &bias, expected);
        const Tensor gpu_x = on_gpu(x), gpu_bias = on_gpu(bias);
        Tensor wide = Tensor::empty(DType::F32, {rows, 130}, Device::CUDA);
        Tensor out = wide.slice(1, 10, 110);
        ops::linear_int8(context, gpu_x, gpu_weight, &gpu_bias, out);
        EXPECT_LE(gpu_vs_cpu(out, expected), tolerance);
        const Tensor allocated = ops::linear_int8(context, gpu_x, gpu_weight, &gpu_bias);  // in the GPU workspace
        EXPECT_EQ(allocated.device(), Device::CUDA);
        EXPECT_LE(gpu_vs_cpu(allocated, expected), tolerance);
        Tensor blocks = Tensor::empty(DType::F32, {rows, 100}, Device::CUDA);
        cuda::linear_int8(context, gpu_x, gpu_weight, &gpu_bias, blocks, 96 * 30);
        EXPECT_LE(gpu_vs_cpu(blocks, expected), tolerance);
        if (precision == Precision::bf16) {  // a BF16 input (the DiT's normalised activations), used as it is
          const Tensor x_bf16 = x.to(DType::BF16);
          ops::linear_int8(context, x_bf16, weight, &bias, expected);
          ops::linear_int8(context, on_gpu(x_bf16), gpu_weight, &gpu_bias, out);
          EXPECT_LE(gpu_vs_cpu(out, expected), tolerance);
        }
      }
    // No inputs (K = 0): the bias alone, as the CPU, in a column slice.
    const ops::Int8Weight empty = ops::quantize_int8(context, Tensor::empty(DType::F32, {100, 0}));
    const Tensor x = Tensor::empty(DType::F32, {3, 0}), bias = random_tensor({100}, 73);
    Tensor expected = Tensor::empty(DType::F32, {3, 100});
    ops::linear_int8(context, x, empty, &bias, expected);
    Tensor wide = Tensor::empty(DType::F32, {3, 130}, Device::CUDA);
    Tensor out = wide.slice(1, 10, 110);
    const Tensor gpu_bias = on_gpu(bias);
    ops::linear_int8(context, on_gpu(x), {on_gpu(empty.values), on_gpu(empty.scales)}, &gpu_bias, out);
    EXPECT_EQ(gpu_vs_cpu(out, expected), 0.0);
  }
}

}  // namespace
}  // namespace k5::test
