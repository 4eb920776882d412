// The register-tiled CUDA attention kernels, compiled for the CPU: the warp emulator first (it stands in for the
// CUDA headers and defines K5_CUDA_EMULATION), then the kernels' device code.
#pragma once

// clang-format off
#include "backends/cuda_emulated/warp_emulator.h"
#include "backends/cuda/attention_mma.cuh"
#include "backends/cuda/attention_wgmma.cuh"
// clang-format on
