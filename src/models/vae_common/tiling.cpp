#include "models/vae_common/tiling.h"

#include <algorithm>

#include "ops/conv.h"

namespace k5::vae {

void blend(Context& ctx, const Tensor& a, Tensor& b, int axis, int64_t extent) {
  ops::blend(ctx, a, b, axis, extent);
}

Tensor concat(Context& ctx, const std::vector<Tensor>& parts, int axis) {
  K5_CHECK(!parts.empty(), "VAE tiling: nothing to concatenate (the input is smaller than one tile)");
  Shape shape = parts.front().shape();
  shape[size_t(axis)] = 0;
  for (const Tensor& part : parts) shape[size_t(axis)] += part.size(axis);
  Tensor out = Tensor::empty(DType::F32, shape, parts.front().device());
  int64_t offset = 0;
  for (const Tensor& part : parts) {
    Tensor destination = out.slice(axis, offset, offset + part.size(axis));
    K5_CHECK(destination.shape() == part.shape(), "VAE tiling: tile ", shape_string(part.shape()),
             " does not fit the assembled shape ", shape_string(shape));
    ops::copy(ctx, part, destination);
    offset += part.size(axis);
  }
  return out;
}

Tensor take_front(const Tensor& x, int axis, int64_t count) {
  return x.slice(axis, 0, std::min(count, x.size(axis)));
}

Tensor contiguous(Context& ctx, const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor out = Tensor::empty(DType::F32, x.shape(), x.device());
  ops::copy(ctx, x, out);
  return out;
}

}  // namespace k5::vae
