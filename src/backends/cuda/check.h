// CUDA and cuBLASLt status codes -> k5::Error, one line: the call, the CUDA error string, where.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "core/error.h"

#define K5_CUDA_CHECK(call)                                                                                            \
  do {                                                                                                                 \
    const cudaError_t k5_cuda_status = (call);                                                                         \
    if (k5_cuda_status != cudaSuccess)                                                                                 \
      ::k5::fail("CUDA error: ", #call, ": ", cudaGetErrorString(k5_cuda_status), " (", __FILE__, ":", __LINE__, ")"); \
  } while (0)

// After a kernel launch: a bad launch configuration shows up here; faults inside the kernel show up at the
// next synchronising call.
#define K5_CUDA_CHECK_LAUNCH(kernel_name)                                                                              \
  do {                                                                                                                 \
    const cudaError_t k5_cuda_status = cudaGetLastError();                                                             \
    if (k5_cuda_status != cudaSuccess)                                                                                 \
      ::k5::fail("CUDA error: launching ", kernel_name, ": ", cudaGetErrorString(k5_cuda_status), " (", __FILE__, ":", \
                 __LINE__, ")");                                                                                       \
  } while (0)

#define K5_CUBLAS_CHECK(call)                                                                                     \
  do {                                                                                                            \
    const cublasStatus_t k5_cublas_status = (call);                                                               \
    if (k5_cublas_status != CUBLAS_STATUS_SUCCESS)                                                                \
      ::k5::fail("cuBLASLt error: ", #call, ": ", cublasLtGetStatusString(k5_cublas_status), " (", __FILE__, ":", \
                 __LINE__, ")");                                                                                  \
  } while (0)
