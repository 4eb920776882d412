// Tile blending and assembly as the official VAE tiling does it (diffusers' blend_v / blend_h / blend_t):
// the first `extent` positions of the later tile fade in linearly over the last `extent` of the earlier one.
// Everything goes through the op layer, so tiles stay on the device they were decoded on.
#pragma once

#include <vector>

#include "core/context.h"
#include "core/tensor.h"

namespace k5::vae {

// In place on b (both [C, T, H, W] contiguous, same C and other axes): along `axis` (1 = T, 2 = H, 3 = W),
// b[i] = a[-e + i] * (1 - i/e) + b[i] * (i/e) for i < e, e = min(a.size(axis), b.size(axis), extent).
void blend(Context& ctx, const Tensor& a, Tensor& b, int axis, int64_t extent);

// Concatenation along `axis` into a new contiguous tensor on the parts' device.
Tensor concat(Context& ctx, const std::vector<Tensor>& parts, int axis);

// The first `count` positions along `axis` (fewer when the tensor is shorter, as Python slicing does).
Tensor take_front(const Tensor& x, int axis, int64_t count);

// x itself when contiguous, else a contiguous copy on x's device.
Tensor contiguous(Context& ctx, const Tensor& x);

}  // namespace k5::vae
