#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/kernels.h"
#include "backends/cpu/rows.h"

namespace k5::cpu {

namespace {

int64_t row_grain(int64_t width) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, width)); }

inline float horizontal_sum(__m256 v) {
  __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  half = _mm_add_ps(half, _mm_movehl_ps(half, half));
  return _mm_cvtss_f32(_mm_add_ss(half, _mm_movehdup_ps(half)));
}

// Mean and 1/sqrt(var + eps) of one row: two passes (mean, then centred squares) with 32 partial sums, which
// keeps float accumulation as accurate as PyTorch's for the row widths of these models.
std::pair<float, float> row_statistics(const float* row, int64_t width, float eps) {
  __m256 partial[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= width; i += 32)
    for (int lane = 0; lane < 4; ++lane)
      partial[lane] = _mm256_add_ps(partial[lane], _mm256_loadu_ps(row + i + 8 * lane));
  double sum =
      horizontal_sum(_mm256_add_ps(_mm256_add_ps(partial[0], partial[1]), _mm256_add_ps(partial[2], partial[3])));
  for (; i < width; ++i) sum += row[i];
  const float mean = float(sum / double(width));
  const __m256 centre = _mm256_set1_ps(mean);
  for (auto& lane : partial) lane = _mm256_setzero_ps();
  i = 0;
  for (; i + 32 <= width; i += 32)
    for (int lane = 0; lane < 4; ++lane) {
      const __m256 centred = _mm256_sub_ps(_mm256_loadu_ps(row + i + 8 * lane), centre);
      partial[lane] = _mm256_fmadd_ps(centred, centred, partial[lane]);
    }
  double squares =
      horizontal_sum(_mm256_add_ps(_mm256_add_ps(partial[0], partial[1]), _mm256_add_ps(partial[2], partial[3])));
  for (; i < width; ++i) squares += double(row[i] - mean) * (row[i] - mean);
  const double variance = squares / double(width);
  return {mean, float(1.0 / std::sqrt(variance + double(eps)))};
}

Vector optional_vector(const Tensor* t, int64_t width, const char* what) {
  return t ? vector_of(*t, width, what) : Vector{nullptr, width, 1};
}

}  // namespace

void layer_norm(Context& ctx, const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& out) {
  const Rows in = rows_of(x, "layer_norm input"), result = rows_of(out, "layer_norm output");
  K5_CHECK(in.count == result.count && in.width == result.width, "layer_norm: output ", out.describe(),
           " does not match input ", x.describe());
  const Vector gamma = optional_vector(weight, in.width, "layer_norm weight");
  const Vector beta = optional_vector(bias, in.width, "layer_norm bias");
  ctx.pool().parallel_for(0, in.count, row_grain(in.width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = in.row(r);
      float* target = result.row(r);
      const auto [mean, inverse_std] = row_statistics(row, in.width, eps);
      for (int64_t i = 0; i < in.width; ++i) {
        float value = (row[i] - mean) * inverse_std;
        if (gamma.data) value *= gamma[i];
        if (beta.data) value += beta[i];
        target[i] = value;
      }
    }
  });
}

void rms_norm(Context& ctx, const Tensor& x, const Tensor* weight, float eps, Tensor& out) {
  const Rows in = rows_of(x, "rms_norm input"), result = rows_of(out, "rms_norm output");
  K5_CHECK(in.count == result.count && in.width == result.width, "rms_norm: output ", out.describe(),
           " does not match input ", x.describe());
  const Vector gamma = optional_vector(weight, in.width, "rms_norm weight");
  ctx.pool().parallel_for(0, in.count, row_grain(in.width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = in.row(r);
      float* target = result.row(r);
      double squares = 0;
      for (int64_t i = 0; i < in.width; ++i) squares += double(row[i]) * row[i];
      const float inverse = float(1.0 / std::sqrt(squares / double(in.width) + double(eps)));
      for (int64_t i = 0; i < in.width; ++i) target[i] = gamma.data ? row[i] * inverse * gamma[i] : row[i] * inverse;
    }
  });
}

void scale_shift_norm(Context& ctx, const Tensor& x, const Tensor& scale, const Tensor& shift, float eps, Tensor& out) {
  const bool bf16_out = out.dtype() == DType::BF16;
  const Rows in = rows_of(x, "scale_shift_norm input");
  const Rows result = bf16_out ? bf16_rows_of(out, "scale_shift_norm output") : rows_of(out, "scale_shift_norm output");
  K5_CHECK(in.count == result.count && in.width == result.width, "scale_shift_norm: output ", out.describe(),
           " does not match input ", x.describe());
  const Vector scale_vector = vector_of(scale, in.width, "scale_shift_norm scale");
  const Vector shift_vector = vector_of(shift, in.width, "scale_shift_norm shift");
  ctx.pool().parallel_for(0, in.count, row_grain(in.width), [&](int64_t begin, int64_t end) {
    std::vector<float> rounded_row(bf16_out ? size_t(in.width) : 0);  // a BF16 row before its rounding
    for (int64_t r = begin; r < end; ++r) {
      const float* row = in.row(r);
      float* target = bf16_out ? rounded_row.data() : result.row(r);
      const auto [mean, inverse_std] = row_statistics(row, in.width, eps);
      int64_t i = 0;
      if (scale_vector.stride == 1 && shift_vector.stride == 1) {
        const __m256 m = _mm256_set1_ps(mean), s = _mm256_set1_ps(inverse_std), one = _mm256_set1_ps(1.0f);
        for (; i + 8 <= in.width; i += 8) {
          const __m256 normed = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(row + i), m), s);
          const __m256 factor = _mm256_add_ps(one, _mm256_loadu_ps(scale_vector.data + i));
          _mm256_storeu_ps(target + i, _mm256_fmadd_ps(normed, factor, _mm256_loadu_ps(shift_vector.data + i)));
        }
      }
      for (; i < in.width; ++i) target[i] = (row[i] - mean) * inverse_std * (1.0f + scale_vector[i]) + shift_vector[i];
      if (bf16_out) convert_from_f32(target, out.data<uint16_t>() + r * in.width, DType::BF16, size_t(in.width));
    }
  });
}

void gated_residual(Context& ctx, Tensor& x, const Tensor& h, const Tensor& gate) {
  const Rows target = rows_of(x, "gated_residual x"), update = rows_of(h, "gated_residual h");
  K5_CHECK(target.count == update.count && target.width == update.width, "gated_residual: ", h.describe(),
           " does not match ", x.describe());
  const Vector g = vector_of(gate, target.width, "gated_residual gate");
  ctx.pool().parallel_for(0, target.count, row_grain(target.width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = target.row(r);
      const float* delta = update.row(r);
      for (int64_t i = 0; i < target.width; ++i) row[i] += g[i] * delta[i];
    }
  });
}

}  // namespace k5::cpu
