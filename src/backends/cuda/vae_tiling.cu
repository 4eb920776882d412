// VAE tile assembly on the GPU (the CUDA side of ops::copy and ops::blend, src/ops/conv.h): pure data
// movement, one thread per written element (grid-stride), consecutive threads on consecutive destination
// elements.
#include <algorithm>

#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"

namespace k5::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxRank = 5;

// A strided view padded to kMaxRank axes at the front (size 1, stride 0).
struct View {
  int64_t size[kMaxRank];
  int64_t stride[kMaxRank];
};

View view_of(const Tensor& t) {
  View v;
  const int pad = kMaxRank - t.dim();
  for (int axis = 0; axis < kMaxRank; ++axis) {
    v.size[axis] = axis < pad ? 1 : t.size(axis - pad);
    v.stride[axis] = axis < pad ? 0 : t.stride(axis - pad);
  }
  return v;
}

// destination[index] = source[index] for every index of the common shape (element offsets from the strides).
__global__ void copy_kernel(const float* source, View from, float* destination, View to, int64_t total) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rest = i, source_offset = 0, destination_offset = 0;
    for (int axis = kMaxRank - 1; axis >= 0; --axis) {
      const int64_t index = rest % to.size[axis];
      rest /= to.size[axis];
      source_offset += index * from.stride[axis];
      destination_offset += index * to.stride[axis];
    }
    destination[destination_offset] = source[source_offset];
  }
}

// Both tiles viewed as [outer, length, inner]: tile[o, i, j] = previous[o, length_a - e + i, j] * (1 - i/e) +
// tile[o, i, j] * (i/e) for i < e, the ratios formed in double and applied in float as PyTorch does.
__global__ void blend_kernel(const float* previous, int64_t length_a, float* tile, int64_t length_b, int64_t outer,
                             int64_t extent, int64_t inner) {
  const int64_t total = outer * extent * inner;
  for (int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; n < total; n += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = n % inner, i = n / inner % extent, o = n / (inner * extent);
    const float keep = float(1.0 - double(i) / double(extent));
    const float take = float(double(i) / double(extent));
    float* target = tile + (o * length_b + i) * inner + j;
    *target = previous[(o * length_a + length_a - extent + i) * inner + j] * keep + *target * take;
  }
}

}  // namespace

void copy(Context&, const Tensor& source, Tensor& destination) {
  K5_CHECK(source.device() == Device::CUDA && destination.device() == Device::CUDA && source.dim() <= kMaxRank &&
               source.shape() == destination.shape(),
           "copy: ", source.describe(), " into ", destination.describe(), " must be GPU views of one shape");
  const int64_t total = source.numel();
  if (total == 0) return;
  copy_kernel<<<grid_stride_blocks(total, kThreads), kThreads>>>(
      source.data<float>(), view_of(source), destination.data<float>(), view_of(destination), total);
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
  blend_kernel<<<grid_stride_blocks(total, kThreads), kThreads>>>(previous.data<float>(), previous.size(axis),
                                                                  tile.data<float>(), tile.size(axis), outer, e, inner);
  K5_CUDA_CHECK_LAUNCH("blend_kernel");
}

}  // namespace k5::cuda
