// VAE tile assembly on the CPU (the CPU side of ops::copy and ops::blend, src/ops/conv.h).
#include <algorithm>
#include <cstring>

#include "backends/cpu/conv.h"

namespace k5::cpu {

void copy(Context& ctx, const Tensor& source, Tensor& destination) {
  if (source.is_contiguous() && destination.is_contiguous()) {
    // A plain copy: Tensor::copy_from's general strided path is several times slower for this.
    constexpr int64_t kChunk = int64_t(1) << 20;  // floats per parallel piece
    const float* from = source.data<float>();
    float* to = destination.data<float>();
    const int64_t count = source.numel();
    ctx.pool().parallel_for(0, (count + kChunk - 1) / kChunk, 1, [&](int64_t begin, int64_t end) {
      const int64_t first = begin * kChunk, last = std::min(count, end * kChunk);
      std::memcpy(to + first, from + first, size_t(last - first) * sizeof(float));
    });
    return;
  }
  if (source.dim() == 0) return destination.copy_from(source);
  // Rows of the first axis (channels, for the VAE activations) in parallel; a row that is one block on both
  // sides (a band of whole image rows of a frame) is one memcpy.
  ctx.pool().parallel_for(0, source.size(0), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Tensor from = source.select(0, i);
      Tensor to = destination.select(0, i);
      if (from.is_contiguous() && to.is_contiguous())
        std::memcpy(to.raw(), from.raw(), from.bytes());
      else
        to.copy_from(from);
    }
  });
}

void blend(Context&, const Tensor& previous, Tensor& tile, int axis, int64_t extent) {
  const int64_t e = std::min({previous.size(axis), tile.size(axis), extent});
  if (e <= 0) return;
  // View both as [outer, axis, inner].
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= previous.size(d);
  for (int d = axis + 1; d < 4; ++d) inner *= previous.size(d);
  const int64_t length_a = previous.size(axis), length_b = tile.size(axis);
  const float* pa = previous.data<float>();
  float* pb = tile.data<float>();
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

}  // namespace k5::cpu
