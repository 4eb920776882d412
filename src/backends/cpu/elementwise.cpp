#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "backends/cpu/kernels.h"
#include "backends/cpu/rows.h"
#include "backends/cpu/vector_math.h"
#include "ops/operands.h"

namespace k5::cpu {

namespace {
constexpr int64_t kGrain = 16384;  // elements per parallel chunk

using ops::check_same_shape;
using ops::contiguous_f32;
}  // namespace

void unary_inplace(Unary function, float* values, int64_t count) {
  int64_t i = 0;
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  switch (function) {
    case Unary::silu:
      for (; i + 8 <= count; i += 8) {
        const __m256 x = _mm256_loadu_ps(values + i);
        _mm256_storeu_ps(values + i, _mm256_mul_ps(x, sigmoid8(x)));
      }
      for (; i < count; ++i) values[i] = values[i] / (1.0f + std::exp(-values[i]));
      return;
    case Unary::gelu_erf:
      for (; i + 8 <= count; i += 8) {
        const __m256 x = _mm256_loadu_ps(values + i);
        const __m256 e = erf8(_mm256_mul_ps(x, _mm256_set1_ps(float(M_SQRT1_2))));
        _mm256_storeu_ps(values + i, _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, e)));
      }
      for (; i < count; ++i) values[i] = 0.5f * values[i] * (1.0f + std::erf(values[i] * float(M_SQRT1_2)));
      return;
    case Unary::gelu_tanh:
      for (; i < count; ++i) {
        const float x = values[i];
        values[i] = 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
      }
      return;
    case Unary::quick_gelu:
      for (; i + 8 <= count; i += 8) {
        const __m256 x = _mm256_loadu_ps(values + i);
        _mm256_storeu_ps(values + i, _mm256_mul_ps(x, sigmoid8(_mm256_mul_ps(x, _mm256_set1_ps(1.702f)))));
      }
      for (; i < count; ++i) values[i] = values[i] / (1.0f + std::exp(-1.702f * values[i]));
      return;
  }
}

void unary(Context& ctx, Unary function, const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "unary op");
  const float* in = contiguous_f32(x, "unary op input");
  if (out.dtype() == DType::BF16) {  // the float32 results, rounded
    K5_CHECK(out.is_contiguous(), "unary op output: expected a contiguous tensor, got ", out.describe());
    uint16_t* result = out.data<uint16_t>();
    ctx.pool().parallel_for(0, x.numel(), kGrain, [&](int64_t begin, int64_t end) {
      float values[1024];
      for (int64_t first = begin; first < end; first += 1024) {
        const int64_t count = std::min<int64_t>(1024, end - first);
        std::copy(in + first, in + first + count, values);
        unary_inplace(function, values, count);
        convert_from_f32(values, result + first, DType::BF16, size_t(count));
      }
    });
    return;
  }
  float* result = contiguous_f32(out, "unary op output");
  ctx.pool().parallel_for(0, x.numel(), kGrain, [&](int64_t begin, int64_t end) {
    if (result != in) std::copy(in + begin, in + end, result + begin);
    unary_inplace(function, result + begin, end - begin);
  });
}

void swiglu(Context& ctx, const Tensor& gate, const Tensor& up, Tensor& out) {
  check_same_shape(gate, up, "swiglu");
  check_same_shape(gate, out, "swiglu");
  const float* g = contiguous_f32(gate, "swiglu gate");
  const float* u = contiguous_f32(up, "swiglu up");
  float* result = contiguous_f32(out, "swiglu output");
  ctx.pool().parallel_for(0, gate.numel(), kGrain, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + 8 <= end; i += 8) {
      const __m256 x = _mm256_loadu_ps(g + i);
      _mm256_storeu_ps(result + i, _mm256_mul_ps(_mm256_mul_ps(x, sigmoid8(x)), _mm256_loadu_ps(u + i)));
    }
    for (; i < end; ++i) result[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  });
}

void binary(Context& ctx, Binary function, const Tensor& a, const Tensor& b, Tensor& out) {
  const auto [left, right, result, total, period] = ops::binary_operands(a, b, out);
  ctx.pool().parallel_for(0, total, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float r = right[period == total ? i : i % period];
      result[i] = function == Binary::add ? left[i] + r : left[i] * r;
    }
  });
}

void scale(Context& ctx, const Tensor& x, float factor, Tensor& out) {
  check_same_shape(x, out, "scale");
  const float* in = contiguous_f32(x, "scale input");
  float* result = contiguous_f32(out, "scale output");
  ctx.pool().parallel_for(0, x.numel(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) result[i] = in[i] * factor;
  });
}

void softmax(Context& ctx, const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "softmax");
  const Rows in = rows_of(x, "softmax input"), result = rows_of(out, "softmax output");
  ctx.pool().parallel_for(0, in.count, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, in.width)),
                          [&](int64_t begin, int64_t end) {
                            for (int64_t r = begin; r < end; ++r) {
                              const float* row = in.row(r);
                              float* target = result.row(r);
                              float maximum = -INFINITY;
                              for (int64_t i = 0; i < in.width; ++i) maximum = std::max(maximum, row[i]);
                              double sum = 0;
                              for (int64_t i = 0; i < in.width; ++i) {
                                target[i] = std::exp(row[i] - maximum);
                                sum += target[i];
                              }
                              const float inverse = float(1.0 / sum);
                              for (int64_t i = 0; i < in.width; ++i) target[i] *= inverse;
                            }
                          });
}

void rope(Context& ctx, Tensor& x, const Tensor& cos, const Tensor& sin, bool interleaved,
          const ops::HeadRmsNorm* norm) {
  const auto [tokens, heads, dim, half, cos_rows, sin_rows, gamma] = ops::rope_operands(x, cos, sin, norm);
  const int64_t token_stride = x.stride(0), head_stride = x.stride(1);
  float* base = x.data<float>();
  ctx.pool().parallel_for(
      0, tokens, std::max<int64_t>(1, 2048 / std::max<int64_t>(1, heads * dim)), [&](int64_t begin, int64_t end) {
        for (int64_t token = begin; token < end; ++token) {
          const float* c = cos_rows.row(token);
          const float* s = sin_rows.row(token);
          for (int64_t head = 0; head < heads; ++head) {
            float* v = base + token * token_stride + head * head_stride;
            // The normalised value of element i, as rms_norm computes it (the same expression, so the same float).
            float inverse = 1.0f;
            if (norm) {
              double squares = 0;
              for (int64_t i = 0; i < dim; ++i) squares += double(v[i]) * v[i];
              inverse = float(1.0 / std::sqrt(squares / double(dim) + double(norm->eps)));
            }
            auto value = [&](int64_t i) {
              if (!norm) return v[i];
              return gamma.data ? v[i] * inverse * gamma[i] : v[i] * inverse;
            };
            for (int64_t i = 0; i < half; ++i) {
              const int64_t first = interleaved ? 2 * i : i, second = interleaved ? 2 * i + 1 : i + half;
              const float a = value(first), b = value(second);
              v[first] = c[i] * a - s[i] * b;
              v[second] = s[i] * a + c[i] * b;
            }
          }
        }
      });
}

}  // namespace k5::cpu
