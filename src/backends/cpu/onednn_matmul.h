// BF16 matrix products through oneDNN's matmul primitive (BF16 inputs, float32 accumulation and output),
// with the primitives cached by shape: creating one costs milliseconds, models reuse a handful of shapes.
#pragma once

#include <cstdint>

namespace k5::cpu {

struct Bf16Matmul {
  int64_t m, n, k;
  const uint16_t* a;  // [m, k], row stride lda
  int64_t lda;
  const uint16_t* b;  // [k, n] with row stride ldb, or (b_transposed) [n, k] with row stride ldb
  int64_t ldb;
  bool b_transposed;
  float* c;  // [m, n], row stride ldc
  int64_t ldc;
  const float* bias = nullptr;  // [n] or null
  bool accumulate = false;      // c += a * b instead of c = a * b
};

// Runs on the calling thread's OpenMP thread count (1 inside a ThreadPool task that set it so).
void matmul_bf16(const Bf16Matmul& product);

}  // namespace k5::cpu
