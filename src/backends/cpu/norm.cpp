#include <algorithm>
#include <cmath>

#include "backends/cpu/kernels.h"
#include "backends/cpu/rows.h"

namespace k5::cpu {

namespace {

int64_t row_grain(int64_t width) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, width)); }

// Mean and 1/sqrt(var + eps) of one row; two passes in double so long rows stay exact to float precision.
std::pair<float, float> row_statistics(const float* row, int64_t width, float eps) {
  double sum = 0;
  for (int64_t i = 0; i < width; ++i) sum += row[i];
  const double mean = sum / double(width);
  double squares = 0;
  for (int64_t i = 0; i < width; ++i) {
    const double centred = row[i] - mean;
    squares += centred * centred;
  }
  const double variance = squares / double(width);
  return {float(mean), float(1.0 / std::sqrt(variance + double(eps)))};
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
  const Rows in = rows_of(x, "scale_shift_norm input"), result = rows_of(out, "scale_shift_norm output");
  K5_CHECK(in.count == result.count && in.width == result.width, "scale_shift_norm: output ", out.describe(),
           " does not match input ", x.describe());
  const Vector scale_vector = vector_of(scale, in.width, "scale_shift_norm scale");
  const Vector shift_vector = vector_of(shift, in.width, "scale_shift_norm shift");
  ctx.pool().parallel_for(0, in.count, row_grain(in.width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = in.row(r);
      float* target = result.row(r);
      const auto [mean, inverse_std] = row_statistics(row, in.width, eps);
      for (int64_t i = 0; i < in.width; ++i)
        target[i] = (row[i] - mean) * inverse_std * (1.0f + scale_vector[i]) + shift_vector[i];
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
