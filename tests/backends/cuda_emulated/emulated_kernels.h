// The CUDA kernels that run on the CPU under the warp emulator (the register-tiled attention kernels, the
// rotary-embedding kernel and NABLA's block selection): the emulator first (it stands in for the CUDA headers and
// defines K5_CUDA_EMULATION), then the kernels' device code.
#pragma once

// clang-format off
#include "backends/cuda_emulated/warp_emulator.h"
#include "backends/cuda/attention_mma.cuh"
#include "backends/cuda/attention_wgmma.cuh"
#include "backends/cuda/nabla.cuh"
#include "backends/cuda/rope.cuh"
// clang-format on
