// The CUDA backend's kernels, run on the CPU under the warp emulator: the emulator first (it stands in for the CUDA
// headers and defines K5_CUDA_EMULATION), then the kernels' device code (every src/backends/cuda/*.cuh).
#pragma once

// clang-format off
#include "backends/cuda_emulated/warp_emulator.h"
#include "backends/cuda/attention_mma.cuh"
#include "backends/cuda/attention_simt.cuh"
#include "backends/cuda/attention_wgmma.cuh"
#include "backends/cuda/attention_wmma.cuh"
#include "backends/cuda/conv.cuh"
#include "backends/cuda/elementwise.cuh"
#include "backends/cuda/group_norm.cuh"
#include "backends/cuda/linear_int8.cuh"
#include "backends/cuda/nabla.cuh"
#include "backends/cuda/norm.cuh"
#include "backends/cuda/pool.cuh"
#include "backends/cuda/rope.cuh"
#include "backends/cuda/upsample.cuh"
#include "backends/cuda/vae_attention.cuh"
#include "backends/cuda/vae_tiling.cuh"
// clang-format on
