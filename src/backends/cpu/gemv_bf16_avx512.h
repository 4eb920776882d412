// Streaming matrix-vector product with BF16 weights on AVX512-BF16 (VDPBF16PS): out[r, j] = x[r, :] . w[j, :]
// (+ bias[j]) for 1..4 BF16 activation rows x [m, k] and weights w [n, k], float32 accumulation.
#pragma once

#include <cstdint>

#include "backends/cpu/rows.h"
#include "core/context.h"

namespace k5::cpu {

void gemv_bf16_avx512(Context& ctx, const uint16_t* x, int64_t m, int64_t k, const uint16_t* w, int64_t n,
                      const float* bias, const Rows& out);

}  // namespace k5::cpu
