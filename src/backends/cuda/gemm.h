// cuBLASLt GEMMs shared by the CUDA ops (linear.cpp, conv.cu): one handle for the process and a float32-output
// GEMM with an optional bias epilogue and accumulation. cuBLASLt is column-major; callers describe their
// row-major tensors as transposed column-major matrices.
#pragma once

#include <cublasLt.h>

#include <cstdint>

namespace k5::cuda {

// One handle for the process, created on first use (a handle is per device and costs milliseconds).
// TODO(cuda): move into the Context with the stream once the Context owns device state.
cublasLtHandle_t lt_handle();

// Column-major D[m, n] = op(A)[m, k] * op(B)[k, n] (+ bias[m]) (+ D when accumulating), float32 accumulation and
// output. Float32 inputs stay full float32 (CUBLAS_COMPUTE_32F, no TF32) unless `tf32` asks for tensor cores.
struct Gemm {
  cudaDataType_t input_type;  // of A and B: CUDA_R_32F or CUDA_R_16BF
  const void* a;
  bool a_transposed;  // A is stored k x m (ld >= k) and read transposed
  int64_t lda;
  const void* b;
  bool b_transposed = false;  // B is stored n x k (ld >= n) and read transposed
  int64_t ldb;
  float* d;
  int64_t ldd;
  int64_t m, n, k;
  const float* bias = nullptr;  // [m] or null
  bool accumulate = false;      // D += instead of D =
  // Float32 inputs multiplied on the tensor cores with TF32's 10-bit mantissa (CUBLAS_COMPUTE_32F_FAST_TF32),
  // ~8x the float32 rate of an H100: the precision of the official float16 VAE, for Precision::bf16.
  bool tf32 = false;
};

// Queues the GEMM on the default stream; false when cuBLASLt offers no algorithm for it, or the bias is not
// 16-byte aligned (nothing is done).
bool try_gemm(const Gemm& g);

}  // namespace k5::cuda
