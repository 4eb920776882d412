#include "models/vae_common/tiling.h"

#include <algorithm>

namespace k5::vae {

void blend(const Tensor& a, Tensor& b, int axis, int64_t extent) {
  K5_CHECK(a.dim() == 4 && b.dim() == 4 && a.is_contiguous() && b.is_contiguous() && a.dtype() == DType::F32 &&
               b.dtype() == DType::F32,
           "VAE tile blend: tiles must be contiguous F32 [C, T, H, W]");
  for (int other = 0; other < 4; ++other) {
    K5_CHECK(other == axis || a.size(other) == b.size(other), "VAE tile blend: tiles ", shape_string(a.shape()),
             " and ", shape_string(b.shape()), " do not line up along axis ", other);
  }
  const int64_t e = std::min({a.size(axis), b.size(axis), extent});
  if (e <= 0) return;
  // View both as [outer, axis, inner].
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= a.size(d);
  for (int d = axis + 1; d < 4; ++d) inner *= a.size(d);
  const int64_t length_a = a.size(axis), length_b = b.size(axis);
  const float* pa = a.data<float>();
  float* pb = b.data<float>();
  for (int64_t i = 0; i < e; ++i) {
    // PyTorch multiplies by Python floats: the ratio is formed in double and applied in float.
    const float keep = float(1.0 - double(i) / double(e));
    const float take = float(double(i) / double(e));
    for (int64_t o = 0; o < outer; ++o) {
      const float* src = pa + (o * length_a + (length_a - e + i)) * inner;
      float* dst = pb + (o * length_b + i) * inner;
      for (int64_t j = 0; j < inner; ++j) dst[j] = src[j] * keep + dst[j] * take;
    }
  }
}

Tensor concat(const std::vector<Tensor>& parts, int axis) {
  K5_CHECK(!parts.empty(), "VAE tiling: nothing to concatenate (the input is smaller than one tile)");
  Shape shape = parts.front().shape();
  shape[size_t(axis)] = 0;
  for (const Tensor& part : parts) shape[size_t(axis)] += part.size(axis);
  Tensor out = Tensor::empty(DType::F32, shape);
  int64_t offset = 0;
  for (const Tensor& part : parts) {
    Tensor destination = out.slice(axis, offset, offset + part.size(axis));
    K5_CHECK(destination.shape() == part.shape(), "VAE tiling: tile ", shape_string(part.shape()),
             " does not fit the assembled shape ", shape_string(shape));
    destination.copy_from(part);
    offset += part.size(axis);
  }
  return out;
}

Tensor take_front(const Tensor& x, int axis, int64_t count) {
  return x.slice(axis, 0, std::min(count, x.size(axis)));
}

}  // namespace k5::vae
