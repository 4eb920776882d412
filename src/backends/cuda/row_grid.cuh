// Grid-stride loops over a rows x width matrix on a 2-D grid (y walks the rows, x the columns), so that no flat
// index is divided back into a row and a column: a 64-bit division costs dozens of instructions per element on a
// GPU, more than these element-wise kernels' memory traffic.
#pragma once

#include <algorithm>
#include <cstdint>

namespace k5::cuda {

// At most 2^20 blocks across (each thread then loops along its row) and 65,535 down (the grid's y limit). A template
// so that the warp emulator's stand-in for dim3 (tests/backends/cuda_emulated/) gets a function of its own.
template <typename Grid = dim3>
Grid row_grid(int64_t rows, int64_t width, int threads) {
  return Grid(unsigned(std::clamp<int64_t>((width + threads - 1) / threads, 1, int64_t(1) << 20)),
              unsigned(std::clamp<int64_t>(rows, 1, 65535)));
}

// body(row, column) for every element, each once.
template <typename Body>
__device__ void for_each_row_element(int64_t rows, int64_t width, Body&& body) {
  for (int64_t row = blockIdx.y; row < rows; row += gridDim.y)
    for (int64_t column = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; column < width;
         column += int64_t(gridDim.x) * blockDim.x)
      body(row, column);
}

}  // namespace k5::cuda
