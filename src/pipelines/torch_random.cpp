// torch.randn on PyTorch's CPU (mt19937) and CUDA (Philox4x32-10 via curand) generators.
// References (PyTorch 2.15): aten/src/ATen/native/cpu/DistributionTemplates.h (normal_fill, NormalFill16),
// aten/src/ATen/native/cpu/avx_mathfun.h, aten/src/ATen/core/DistributionsHelper.h (normal_distribution),
// aten/src/ATen/core/TransformationHelper.h (uniform_real), aten/src/ATen/CPUGeneratorImpl.cpp (random64),
// aten/src/ATen/native/cuda/DistributionTemplates.h (calc_execution_policy, distribution_nullary_kernel);
// curand_kernel.h / curand_normal.h (curand_init, curand4, _curand_box_muller).
#include "pipelines/torch_random.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <optional>
#include <random>

#include "core/error.h"

namespace k5 {
namespace {

// Writes `value` (float) at `index` of a contiguous F32 / BF16 / F16 buffer, rounding to nearest even as
// torch's static_cast<scalar_t>(float) does.
void store(void* data, DType dtype, int64_t index, float value) {
  switch (dtype) {
    case DType::F32:
      static_cast<float*>(data)[index] = value;
      break;
    case DType::BF16:
      static_cast<uint16_t*>(data)[index] = f32_to_bf16(value);
      break;
    case DType::F16:
      static_cast<uint16_t*>(data)[index] = f32_to_f16(value);
      break;
    default:
      fail("torch_randn: unsupported dtype ", dtype_name(dtype));
  }
}

// ---------------------------------------------------------------------------------------------------------
// CPU generator.

// torch's CPUGeneratorImpl: a standard mt19937 seeded with the low 32 bits of the seed (mt19937's
// init_with_uint32), so std::mt19937 produces the same words.
class CpuGenerator {
 public:
  explicit CpuGenerator(uint64_t seed) : engine_(static_cast<uint32_t>(seed & 0xffffffffu)) {}

  // at::uniform_real_distribution<float>(0, 1): the low 24 bits of one word, times 2^-24.
  float uniform_float() { return float(engine_() & 0xffffffu) * (1.0f / 16777216.0f); }

  // at::uniform_real_distribution<double>(0, 1): random64() puts the first word high; keep 53 bits.
  double uniform_double() {
    const uint64_t high = engine_();
    const uint64_t low = engine_();
    const uint64_t word = (high << 32) | low;
    return double(word & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
  }

  // at::normal_distribution<double>(0, 1): Box-Muller in double that keeps the sine sample for the next call
  // (torch caches it in the generator, so it carries from element to element).
  double normal_double() {
    if (cached_normal_) {
      const double value = *cached_normal_;
      cached_normal_.reset();
      return value;
    }
    const double u1 = uniform_double();
    const double u2 = uniform_double();
    const double radius = std::sqrt(-2.0 * std::log1p(-u2));
    const double theta = 2.0 * std::numbers::pi * u1;
    cached_normal_ = radius * std::sin(theta);
    return radius * std::cos(theta);
  }

 private:
  std::mt19937 engine_;
  std::optional<double> cached_normal_;
};

// The AVX2 kernel of torch's NormalFill16<float> with avx_mathfun's cephes log and sincos (AVX-512 machines
// run the same AVX2 kernel). PyTorch's release builds are compiled by GCC, which fuses several mul/add pairs
// of those polynomials into FMAs; the fused pairs below are the ones found in libtorch_cpu.so (torch 2.15),
// and everything else is kept as separate roundings. Any change here breaks bit-exactness.
__m256 cephes_log(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 invalid = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LE_OS);
  x = _mm256_max_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x00800000)));  // smallest normal
  const __m256i biased_exponent = _mm256_srli_epi32(_mm256_castps_si256(x), 23);
  // mantissa in [0.5, 1)
  x = _mm256_or_ps(_mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(~0x7f800000))), half);
  __m256 exponent = _mm256_add_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(biased_exponent, _mm256_set1_epi32(0x7f))), one);
  // mantissa < sqrt(1/2): use 2 * mantissa - 1 and one less in the exponent
  const __m256 below_sqrt_half = _mm256_cmp_ps(x, _mm256_set1_ps(0.707106781186547524f), _CMP_LT_OS);
  const __m256 doubled_part = _mm256_and_ps(x, below_sqrt_half);
  x = _mm256_sub_ps(x, one);
  exponent = _mm256_sub_ps(exponent, _mm256_and_ps(one, below_sqrt_half));
  x = _mm256_add_ps(x, doubled_part);
  const __m256 z = _mm256_mul_ps(x, x);
  static constexpr float kLogPolynomial[] = {7.0376836292E-2f,  -1.1514610310E-1f, 1.1676998740E-1f,
                                             -1.2420140846E-1f, +1.4249322787E-1f, -1.6668057665E-1f,
                                             +2.0000714765E-1f, -2.4999993993E-1f, +3.3333331174E-1f};
  __m256 y = _mm256_set1_ps(kLogPolynomial[0]);
  for (int k = 1; k < 9; ++k) y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(kLogPolynomial[k]));
  y = _mm256_mul_ps(y, x);
  y = _mm256_fmadd_ps(y, z, _mm256_mul_ps(exponent, _mm256_set1_ps(-2.12194440e-4f)));
  y = _mm256_fnmadd_ps(z, half, y);
  x = _mm256_add_ps(x, y);
  x = _mm256_fmadd_ps(exponent, _mm256_set1_ps(0.693359375f), x);
  return _mm256_or_ps(x, invalid);  // NaN for x <= 0
}

void cephes_sincos(__m256 x, __m256* sine, __m256* cosine) {
  const __m256 sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(int(0x80000000u)));
  __m256 sine_sign = _mm256_and_ps(x, sign_mask);
  x = _mm256_andnot_ps(sign_mask, x);
  // octant j = (int(x * 4/pi) + 1) & ~1
  __m256i octant = _mm256_cvttps_epi32(_mm256_mul_ps(x, _mm256_set1_ps(1.27323954473516f)));
  octant = _mm256_and_si256(_mm256_add_epi32(octant, _mm256_set1_epi32(1)), _mm256_set1_epi32(~1));
  const __m256 y_octant = _mm256_cvtepi32_ps(octant);
  const __m256 sine_swap = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_and_si256(octant, _mm256_set1_epi32(4)), 29));
  const __m256 use_sine_polynomial =
      _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(octant, _mm256_set1_epi32(2)), _mm256_setzero_si256()));
  // x - j * pi/4 in three pieces (cephes' extended-precision reduction)
  x = _mm256_fmadd_ps(y_octant, _mm256_set1_ps(-0.78515625f), x);
  x = _mm256_fmadd_ps(y_octant, _mm256_set1_ps(-2.4187564849853515625e-4f), x);
  x = _mm256_fmadd_ps(y_octant, _mm256_set1_ps(-3.77489497744594108e-8f), x);
  const __m256 cosine_sign = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_andnot_si256(_mm256_sub_epi32(octant, _mm256_set1_epi32(2)), _mm256_set1_epi32(4)), 29));
  sine_sign = _mm256_xor_ps(sine_sign, sine_swap);

  const __m256 z = _mm256_mul_ps(x, x);
  // cosine polynomial on [-pi/4, pi/4]
  __m256 cos_poly =
      _mm256_fmadd_ps(_mm256_set1_ps(2.443315711809948E-005f), z, _mm256_set1_ps(-1.388731625493765E-003f));
  cos_poly = _mm256_fmadd_ps(cos_poly, z, _mm256_set1_ps(4.166664568298827E-002f));
  cos_poly = _mm256_mul_ps(cos_poly, z);
  cos_poly = _mm256_fmsub_ps(cos_poly, z, _mm256_mul_ps(z, _mm256_set1_ps(0.5f)));
  cos_poly = _mm256_add_ps(cos_poly, _mm256_set1_ps(1.0f));
  // sine polynomial on [-pi/4, pi/4]
  __m256 sin_poly = _mm256_fmadd_ps(_mm256_set1_ps(-1.9515295891E-4f), z, _mm256_set1_ps(8.3321608736E-3f));
  sin_poly = _mm256_fmadd_ps(sin_poly, z, _mm256_set1_ps(-1.6666654611E-1f));
  sin_poly = _mm256_mul_ps(sin_poly, z);
  sin_poly = _mm256_fmadd_ps(sin_poly, x, x);

  const __m256 sine_from_sin = _mm256_and_ps(use_sine_polynomial, sin_poly);
  const __m256 sine_from_cos = _mm256_andnot_ps(use_sine_polynomial, cos_poly);
  const __m256 cosine_value =
      _mm256_add_ps(_mm256_sub_ps(sin_poly, sine_from_sin), _mm256_sub_ps(cos_poly, sine_from_cos));
  *sine = _mm256_xor_ps(_mm256_add_ps(sine_from_cos, sine_from_sin), sine_sign);
  *cosine = _mm256_xor_ps(cosine_value, cosine_sign);
}

// 16 uniforms in [0, 1) -> 16 normals: data[j] = r_j cos(theta_j), data[j + 8] = r_j sin(theta_j) with
// r_j = sqrt(-2 log(1 - data[j])), theta_j = 2 pi data[j + 8].
void box_muller_16(float* data) {
  const __m256 u1 = _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_loadu_ps(data));  // (0, 1] for the log
  const __m256 u2 = _mm256_loadu_ps(data + 8);
  const __m256 radius = _mm256_sqrt_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0f), cephes_log(u1)));
  const __m256 theta = _mm256_mul_ps(_mm256_set1_ps(float(2.0 * std::numbers::pi)), u2);
  __m256 sine, cosine;
  cephes_sincos(theta, &sine, &cosine);
  // * std + mean with std = 1, mean = 0 (an FMA in torch; it turns -0 into +0)
  const __m256 std_v = _mm256_set1_ps(1.0f), mean_v = _mm256_setzero_ps();
  _mm256_storeu_ps(data, _mm256_fmadd_ps(_mm256_mul_ps(radius, cosine), std_v, mean_v));
  _mm256_storeu_ps(data + 8, _mm256_fmadd_ps(_mm256_mul_ps(radius, sine), std_v, mean_v));
}

void randn_cpu(uint64_t seed, int64_t numel, DType dtype, void* out) {
  CpuGenerator generator(seed);
  if (numel < 16) {
    // torch's serial kernel: one at::normal_distribution<double> sample per element, cast to the dtype.
    for (int64_t i = 0; i < numel; ++i) store(out, dtype, i, float(generator.normal_double() * 1.0 + 0.0));
    return;
  }
  if (dtype == DType::F32) {
    // normal_fill for float: uniforms for every element first, then Box-Muller in chunks of 16; a partial
    // last chunk is redrawn as 16 fresh uniforms over the last 16 elements.
    float* data = static_cast<float*>(out);
    for (int64_t i = 0; i < numel; ++i) data[i] = generator.uniform_float();
    for (int64_t i = 0; i + 16 <= numel; i += 16) box_muller_16(data + i);
    if (numel % 16 != 0) {
      float* tail = data + numel - 16;
      for (int i = 0; i < 16; ++i) tail[i] = generator.uniform_float();
      box_muller_16(tail);
    }
    return;
  }
  // normal_fill for bfloat16/float16: each chunk of 16 is drawn and transformed in float, then rounded. Only
  // whole chunks draw uniforms before the tail, so for numel % 16 != 0 the tail differs from
  // randn(float32).to(dtype), whose first pass draws every element.
  float chunk[16];
  auto fill_chunk = [&](int64_t begin) {
    for (float& value : chunk) value = generator.uniform_float();
    box_muller_16(chunk);
    for (int i = 0; i < 16; ++i) store(out, dtype, begin + i, chunk[i]);
  };
  for (int64_t i = 0; i + 16 <= numel; i += 16) fill_chunk(i);
  if (numel % 16 != 0) fill_chunk(numel - 16);
}

// ---------------------------------------------------------------------------------------------------------
// CUDA generator (curand Philox4x32-10, PyTorch's launch layout). See the header: not verified on a GPU.

constexpr uint32_t kPhiloxMultiplier0 = 0xD2511F53u, kPhiloxMultiplier1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxWeyl0 = 0x9E3779B9u, kPhiloxWeyl1 = 0xBB67AE85u;
constexpr int64_t kCudaBlockSize = 256;  // block_size_bound in calc_execution_policy
constexpr int kUnroll = 4;               // curand_normal4 returns a float4 of float accumulators

// curand's _curand_box_muller(x, y) as compiled for the host: sinf/cosf/logf here, __sincosf and CUDA's logf
// on the device (the source of the remaining GPU differences). nvcc fuses the uniform's mul+add into an FMA.
struct NormalPair {
  float sine, cosine;
};
NormalPair curand_box_muller(uint32_t x, uint32_t y) {
  constexpr float two_pow_minus_32 = 2.3283064e-10f;
  constexpr float two_pow_minus_32_two_pi = 2.3283064e-10f * 6.2831855f;
  const float u = std::fma(float(x), two_pow_minus_32, two_pow_minus_32 / 2.0f);
  const float v = std::fma(float(y), two_pow_minus_32_two_pi, two_pow_minus_32_two_pi / 2.0f);
  const float s = std::sqrt(-2.0f * std::log(u));
  return {std::sin(v) * s, std::cos(v) * s};
}

// distribution_nullary_kernel's layout on a generator at `philox_offset`: thread t's round-r curand4 (the
// Philox block at counter {philox_offset / 4 + r, t}: curand_init(seed, t, philox_offset)) is turned into four
// values by `draw4`, and its value i written at element t + r * threads * 4 + i * threads.
template <typename Draw4, typename Write>
void cuda_nullary_layout(uint64_t seed, uint64_t philox_offset, int64_t numel, const CudaDeviceShape& cuda,
                         Draw4 draw4, Write write) {
  const CudaNormalLaunch launch = cuda_normal_launch(numel, cuda);
  const int64_t threads = launch.blocks * launch.threads_per_block;
  const PhiloxKey key = {uint32_t(seed), uint32_t(seed >> 32)};
  for (int64_t thread = 0; thread < threads; ++thread) {
    for (int64_t round = 0; round < launch.rounds; ++round) {
      const int64_t first = thread + round * threads * kUnroll;
      if (first >= numel) break;
      const uint64_t block = philox_offset / 4 + uint64_t(round);
      const std::array<float, kUnroll> values = draw4(philox4x32_10(
          {uint32_t(block), uint32_t(block >> 32), uint32_t(thread), uint32_t(uint64_t(thread) >> 32)}, key));
      for (int component = 0; component < kUnroll; ++component) {
        const int64_t index = first + component * threads;
        if (index < numel) write(index, values[component]);
      }
    }
  }
}

void randn_cuda(uint64_t seed, int64_t numel, DType dtype, void* out, const CudaDeviceShape& cuda) {
  // PyTorch splits a tensor that needs 64-bit indexing into several launches, each advancing the offset.
  K5_CHECK(numel * int64_t(dtype_size(dtype)) <= std::numeric_limits<int32_t>::max(), "torch_randn(cuda): ", numel,
           " elements need 64-bit indexing, which PyTorch splits into several "
           "launches; k5 does not reproduce that");
  // A fresh generator has philox offset 0. curand_normal4 = two Box-Muller pairs, sine first.
  cuda_nullary_layout(
      seed, 0, numel, cuda,
      [](const PhiloxCounter& bits) {
        const NormalPair first = curand_box_muller(bits[0], bits[1]);
        const NormalPair second = curand_box_muller(bits[2], bits[3]);
        return std::array<float, kUnroll>{first.sine, first.cosine, second.sine, second.cosine};
      },
      // transformation::normal in float (rand * std + mean), then static_cast to the dtype
      [&](int64_t index, float normal) { store(out, dtype, index, std::fma(normal, 1.0f, 0.0f)); });
}

// curand_uniform4 (each word to (0, 1], the mul+add fused by nvcc) and transformation::exponential as
// compiled for CUDA with lambda 1: -log(u), or 2^-24 where u >= 1 - 2^-24 (never 0).
std::vector<float> exponential_cuda(uint64_t seed, uint64_t philox_offset, int64_t numel,
                                    const CudaDeviceShape& cuda) {
  constexpr float two_pow_minus_32 = 2.3283064e-10f;
  constexpr float half_epsilon = std::numeric_limits<float>::epsilon() / 2;
  std::vector<float> q(static_cast<size_t>(numel));
  cuda_nullary_layout(
      seed, philox_offset, numel, cuda,
      [&](const PhiloxCounter& bits) {
        std::array<float, kUnroll> values;
        for (int i = 0; i < kUnroll; ++i) {
          const float u = std::fma(float(bits[size_t(i)]), two_pow_minus_32, two_pow_minus_32 / 2.0f);
          const float log = u >= 1.0f - half_epsilon ? -half_epsilon : std::log(u);
          values[size_t(i)] = -1.0f * log;
        }
        return values;
      },
      [&](int64_t index, float value) { q[size_t(index)] = value; });
  return q;
}

}  // namespace

PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += kPhiloxWeyl0;
      key[1] += kPhiloxWeyl1;
    }
    const uint64_t product0 = uint64_t(kPhiloxMultiplier0) * counter[0];
    const uint64_t product1 = uint64_t(kPhiloxMultiplier1) * counter[2];
    counter = {uint32_t(product1 >> 32) ^ counter[1] ^ key[0], uint32_t(product1),
               uint32_t(product0 >> 32) ^ counter[3] ^ key[1], uint32_t(product0)};
  }
  return counter;
}

CudaNormalLaunch cuda_normal_launch(int64_t numel, const CudaDeviceShape& cuda) {
  K5_CHECK(cuda.multiprocessors > 0 && cuda.max_threads_per_multiprocessor >= kCudaBlockSize,
           "CUDA device shape: need multiprocessors > 0 and max_threads_per_multiprocessor >= ", kCudaBlockSize,
           ", got ", cuda.multiprocessors, " and ", cuda.max_threads_per_multiprocessor);
  CudaNormalLaunch launch;
  if (numel <= 0) return launch;
  const int64_t blocks_per_multiprocessor = cuda.max_threads_per_multiprocessor / kCudaBlockSize;
  launch.blocks = std::min((numel + kCudaBlockSize - 1) / kCudaBlockSize,
                           int64_t(cuda.multiprocessors) * blocks_per_multiprocessor);
  const int64_t per_round = launch.blocks * kCudaBlockSize * kUnroll;
  launch.rounds = (numel - 1) / per_round + 1;
  launch.philox_offset_increment = uint64_t(launch.rounds) * 4;  // max_generator_offsets_per_curand_call
  return launch;
}

Tensor torch_randn(RngDevice device, uint64_t seed, const Shape& shape, DType dtype, const CudaDeviceShape& cuda) {
  K5_CHECK(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16,
           "torch_randn: dtype must be F32, BF16 or F16, got ", dtype_name(dtype));
  for (int64_t size : shape) K5_CHECK(size >= 0, "torch_randn: negative size in shape ", shape_string(shape));
  Tensor result = Tensor::empty(dtype, shape);
  const int64_t numel = result.numel();
  if (numel == 0) return result;
  if (device == RngDevice::cpu)
    randn_cpu(seed, numel, dtype, result.raw());
  else
    randn_cuda(seed, numel, dtype, result.raw(), cuda);
  return result;
}

class TorchMultinomial::CpuState {
 public:
  explicit CpuState(uint64_t seed) : generator(seed) {}
  CpuGenerator generator;
};

TorchMultinomial::TorchMultinomial(RngDevice device, uint64_t seed, const CudaDeviceShape& cuda)
    : device_(device), seed_(seed), cuda_(cuda) {
  if (device == RngDevice::cpu) cpu_ = std::make_unique<CpuState>(seed);
}

TorchMultinomial::~TorchMultinomial() = default;

std::vector<float> TorchMultinomial::exponential(int64_t n) {
  K5_CHECK(n >= 0, "exponential: negative count ", n);
  if (device_ == RngDevice::cuda) {
    std::vector<float> q = exponential_cuda(seed_, philox_offset_, n, cuda_);
    philox_offset_ += cuda_normal_launch(n, cuda_).philox_offset_increment;
    return q;
  }
  // at::exponential_distribution<double>(1): -1 / lambda * log1p(-u), then static_cast<float>.
  std::vector<float> q(static_cast<size_t>(n));
  for (float& value : q) value = float(-std::log1p(-cpu_->generator.uniform_double()));
  return q;
}

int64_t TorchMultinomial::sample(std::span<const float> probs) {
  K5_CHECK(!probs.empty(), "multinomial: no probabilities");
  const std::vector<float> q = exponential(int64_t(probs.size()));
  int64_t best = -1;
  float best_ratio = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    K5_CHECK(probs[i] >= 0 && std::isfinite(probs[i]), "multinomial: probability ", i, " is ", probs[i]);
    const float ratio = probs[i] / q[i];
    if (best < 0 || ratio > best_ratio) {
      best = int64_t(i);
      best_ratio = ratio;
    }
  }
  K5_CHECK(best_ratio > 0, "multinomial: the probabilities sum to zero");
  return best;
}

RngDevice parse_rng_device(const std::string& name) {
  if (name == "cpu") return RngDevice::cpu;
  K5_CHECK(name == "cuda", "unknown RNG device '", name, "': expected cpu or cuda");
  return RngDevice::cuda;
}

}  // namespace k5
