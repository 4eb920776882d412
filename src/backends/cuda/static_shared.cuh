// A kernel's statically sized shared-memory array. The CPU tests' warp emulator (tests/backends/cuda_emulated/)
// defines K5_STATIC_SHARED before including kernels: there a block's threads are fibers of one host thread.
#pragma once

#ifndef K5_STATIC_SHARED
#define K5_STATIC_SHARED __shared__
#endif
