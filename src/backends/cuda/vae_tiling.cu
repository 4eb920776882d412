// VAE tile assembly on the GPU (the CUDA side of ops::copy and ops::blend, src/ops/conv.h): operand checks and
// launches; the kernels are in vae_tiling.cuh.
#include <algorithm>

#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"
#include "backends/cuda/vae_tiling.cuh"

namespace k5::cuda {

void copy(Context&, const Tensor& source, Tensor& destination) {
  K5_CHECK(source.device() == Device::CUDA && destination.device() == Device::CUDA && source.dim() <= kCopyMaxRank &&
               source.shape() == destination.shape(),
           "copy: ", source.describe(), " into ", destination.describe(), " must be GPU views of one shape");
  const int64_t total = source.numel();
  if (total == 0) return;
  copy_kernel<<<grid_stride_blocks(total, kTilingThreads), kTilingThreads>>>(
      source.data<float>(), copy_view(source), destination.data<float>(), copy_view(destination), total);
  K5_CUDA_CHECK_LAUNCH("copy_kernel");
}

void blend(Context&, const Tensor& previous, Tensor& tile, int axis, int64_t extent) {
  K5_CHECK(previous.device() == Device::CUDA && tile.device() == Device::CUDA && previous.is_contiguous() &&
               tile.is_contiguous() && previous.dim() == 4 && tile.dim() == 4,
           "blend: ", previous.describe(), " and ", tile.describe(), " must be contiguous GPU [C, T, H, W] tensors");
  const int64_t e = std::min({previous.size(axis), tile.size(axis), extent});
  if (e <= 0) return;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= previous.size(d);
  for (int d = axis + 1; d < 4; ++d) inner *= previous.size(d);
  const int64_t total = outer * e * inner;
  if (total == 0) return;
  blend_kernel<<<grid_stride_blocks(total, kTilingThreads), kTilingThreads>>>(
      previous.data<float>(), previous.size(axis), tile.data<float>(), tile.size(axis), outer, e, inner);
  K5_CUDA_CHECK_LAUNCH("blend_kernel");
}

}  // namespace k5::cuda
