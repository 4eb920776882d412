// torch.randn reproduced in C++, so a seed gives the same initial noise as the official pipeline
// (`torch.randn(shape, generator=torch.Generator(device).manual_seed(seed), dtype=dtype)`).
//
// CPU generator: bit-exact with torch 2.15 on x86 with AVX2 or AVX-512 (both run torch's AVX2 kernel;
// tests/golden/torch_random, plus 9 M values per dtype checked once by hand). Builds without AVX2
// (ATEN_CPU_CAPABILITY=default, ARM) use glibc's sinf/cosf/logf in the Box-Muller step instead of the AVX
// polynomials and differ in the last bits; older torch releases drew bfloat16/float16 noise in the reduced
// type and differ for those dtypes.
//
// CUDA generator: the Philox4x32-10 streams and the element layout follow PyTorch's
// distribution_nullary_kernel, but on the GPU curand's Box-Muller uses the approximate __sincosf (the
// special-function unit) and CUDA's own logf, which this CPU code replaces with glibc's sinf/cosf/logf.
// Expect most values to match a GPU bit for bit in bfloat16 and the rest to differ by about 1e-6 in float32.
// UNVERIFIED on a GPU: only a published 19-element printout of torch.randn(device="cuda") for seed 42 (4
// decimals) has been checked, which covers seeding, the Philox stream and one block's layout; multi-block and
// multi-round layouts (large tensors) and the last bits need a comparison with torch on a GPU machine.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace k5 {

enum class RngDevice { cpu, cuda };

// The CUDA launch layout depends on the GPU; the defaults are an H100/H200 SXM.
struct CudaDeviceShape {
  int multiprocessors = 132;
  int max_threads_per_multiprocessor = 2048;
};

// torch.randn(shape, generator=torch.Generator(device).manual_seed(seed), dtype=dtype) on a fresh generator.
// dtype: DType::F32, DType::BF16 or DType::F16; the result is a contiguous host tensor of that dtype.
Tensor torch_randn(RngDevice device, uint64_t seed, const Shape& shape, DType dtype, const CudaDeviceShape& cuda = {});

// "cpu" | "cuda".
RngDevice parse_rng_device(const std::string& name);

// Philox4x32-10 (Salmon et al. 2011), the counter-based generator behind curand's curandStatePhilox4_32_10_t.
using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;
PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

// How PyTorch's distribution_nullary_kernel launches randn on CUDA for `numel` elements: a grid-stride loop
// in which thread t (curand subsequence t) draws one curand_normal4 per round and writes element
// t + round * threads * 4 + i * threads from component i.
struct CudaNormalLaunch {
  int64_t blocks = 0;
  int64_t threads_per_block = 256;
  int64_t rounds = 0;                    // curand_normal4 calls per thread
  uint64_t philox_offset_increment = 0;  // what the generator's offset advances by (4 per round)
};
CudaNormalLaunch cuda_normal_launch(int64_t numel, const CudaDeviceShape& cuda = {});

// torch.multinomial(probs, num_samples=1) drawn again and again from one generator, as transformers'
// sampling step draws each new token after transformers.set_seed(seed) (torch.manual_seed: the CPU generator
// and every CUDA generator start from the seed). torch draws it as argmax(probs / q), first maximum, with
// q = torch.empty_like(probs).exponential_(1) in float32:
// - CPU: q = -log1p(-u) in double, u from 53 bits of two mt19937 words (bit-exact with torch 2.15);
// - CUDA: q = -log(u) in float, u from curand_uniform4 in distribution_nullary_kernel's layout (as randn's),
//   the Philox offset advancing by 4 per round on every call; u >= 1 - 2^-24 gives q = 2^-24. On the GPU
//   logf may differ from glibc's in the last bit, which moves the argmax only on a near tie. UNVERIFIED on a
//   GPU (tools/golden/torch_random_cuda.py writes the values to compare against).
class TorchMultinomial {
 public:
  TorchMultinomial(RngDevice device, uint64_t seed, const CudaDeviceShape& cuda = {});
  ~TorchMultinomial();
  TorchMultinomial(const TorchMultinomial&) = delete;
  TorchMultinomial& operator=(const TorchMultinomial&) = delete;

  // One index drawn from the row `probs` (non-negative, finite, not all zero).
  int64_t sample(std::span<const float> probs);
  // The q the next draw of n probabilities would use (torch.empty(n).exponential_()), advancing the generator.
  std::vector<float> exponential(int64_t n);

 private:
  class CpuState;
  RngDevice device_;
  uint64_t seed_;
  CudaDeviceShape cuda_;
  uint64_t philox_offset_ = 0;
  std::unique_ptr<CpuState> cpu_;
};

}  // namespace k5
