// torch-compatible randn and multinomial (src/pipelines/torch_random): the CPU generator bit for bit against
// torch (tools/golden/torch_random.py), Philox4x32-10 against the Random123 known-answer vectors, and the CUDA
// layout's invariants. The CUDA values against torch on a GPU: tests/backends/cuda/torch_random_golden_test.cpp.
#include "pipelines/torch_random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "io/safetensors.h"
#include "support/compare.h"

namespace k5 {
namespace {

struct GoldenCase {
  uint64_t seed = 0;
  DType dtype = DType::F32;
  Shape shape;
};

// "seed=42,dtype=bfloat16,shape=3x8x12x16"
GoldenCase parse_case(const std::string& name) {
  GoldenCase parsed;
  std::istringstream fields(name);
  std::string field;
  while (std::getline(fields, field, ',')) {
    const auto equals = field.find('=');
    const std::string key = field.substr(0, equals), value = field.substr(equals + 1);
    if (key == "seed") {
      parsed.seed = std::stoull(value);
    } else if (key == "dtype") {
      parsed.dtype = value == "float32" ? DType::F32 : value == "bfloat16" ? DType::BF16 : DType::F16;
      EXPECT_TRUE(value == "float32" || value == "bfloat16" || value == "float16") << name;
    } else if (key == "shape") {
      std::istringstream sizes(value);
      std::string size;
      while (std::getline(sizes, size, 'x')) parsed.shape.push_back(std::stoll(size));
    }
  }
  return parsed;
}

TEST(TorchRandom, CpuMatchesTorchBitForBit) {
  const auto file = SafetensorsFile::open(test::source_path("tests/golden/torch_random/cpu.safetensors"));
  ASSERT_GE(file->tensors().size(), 100u);
  for (const auto& info : file->tensors()) {
    const GoldenCase golden = parse_case(info.name);
    const Tensor expected = file->tensor(info.name);
    const Tensor actual = torch_randn(RngDevice::cpu, golden.seed, golden.shape, golden.dtype);
    ASSERT_EQ(actual.dtype(), expected.dtype()) << info.name;
    ASSERT_EQ(actual.shape(), expected.shape()) << info.name;
    const size_t element = dtype_size(actual.dtype());
    int64_t mismatches = 0, first = -1;
    for (int64_t i = 0; i < actual.numel(); ++i) {
      if (std::memcmp(static_cast<const char*>(actual.raw()) + i * element,
                      static_cast<const char*>(expected.raw()) + i * element, element) != 0) {
        if (first < 0) first = i;
        ++mismatches;
      }
    }
    if (mismatches != 0) {
      const auto a = actual.to_f32_vector(), e = expected.to_f32_vector();
      ADD_FAILURE() << info.name << ": " << mismatches << " of " << actual.numel() << " differ; first at " << first
                    << ": " << a[first] << " vs torch " << e[first];
    }
  }
}

TEST(TorchRandom, CpuReducedPrecisionTailDiffersFromRoundedFloat) {
  // 33 elements: whole chunks match randn(float32).to(bf16), the redrawn tail does not (torch's quirk).
  const Tensor as_float = torch_randn(RngDevice::cpu, 7, {33}, DType::F32).to(DType::BF16);
  const Tensor as_bf16 = torch_randn(RngDevice::cpu, 7, {33}, DType::BF16);
  const uint16_t* a = as_float.data<uint16_t>();
  const uint16_t* b = as_bf16.data<uint16_t>();
  for (int i = 0; i < 17; ++i) EXPECT_EQ(a[i], b[i]) << i;
  int tail_differences = 0;
  for (int i = 17; i < 33; ++i) tail_differences += a[i] != b[i];
  EXPECT_GT(tail_differences, 8);
}

TEST(TorchRandom, PhiloxKnownAnswers) {
  // Random123 kat_vectors, "philox4x32 10" lines: counter, key -> output.
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(TorchRandom, CudaLaunchLayout) {
  // Kandinsky 5 video latent 31x64x96x16 on an H100/H200: 132 SMs x 8 blocks of 256 threads, 3 rounds.
  const CudaNormalLaunch video = cuda_normal_launch(31 * 64 * 96 * 16);
  EXPECT_EQ(video.blocks, 1056);
  EXPECT_EQ(video.threads_per_block, 256);
  EXPECT_EQ(video.rounds, 3);
  EXPECT_EQ(video.philox_offset_increment, 12u);
  const CudaNormalLaunch tiny = cuda_normal_launch(7);
  EXPECT_EQ(tiny.blocks, 1);
  EXPECT_EQ(tiny.rounds, 1);
  EXPECT_EQ(tiny.philox_offset_increment, 4u);
  const CudaNormalLaunch a100 = cuda_normal_launch(1 << 22, {108, 2048});
  EXPECT_EQ(a100.blocks, 864);
  EXPECT_EQ(a100.rounds, 5);  // ceil(4194304 / (864 * 256 * 4))
  EXPECT_THROW(cuda_normal_launch(16, {0, 2048}), Error);
}

TEST(TorchRandom, CudaShapeDtypeAndDeterminism) {
  const Shape shape = {2, 3, 5, 16};
  const Tensor a = torch_randn(RngDevice::cuda, 42, shape, DType::F32);
  const Tensor b = torch_randn(RngDevice::cuda, 42, shape, DType::F32);
  const Tensor other_seed = torch_randn(RngDevice::cuda, 43, shape, DType::F32);
  ASSERT_EQ(a.shape(), shape);
  ASSERT_EQ(a.dtype(), DType::F32);
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.bytes()), 0);
  EXPECT_NE(std::memcmp(a.raw(), other_seed.raw(), a.bytes()), 0);
  // bfloat16 / float16 on CUDA are computed in float and rounded once.
  for (DType dtype : {DType::BF16, DType::F16}) {
    const Tensor reduced = torch_randn(RngDevice::cuda, 42, shape, dtype);
    ASSERT_EQ(reduced.dtype(), dtype);
    const Tensor rounded = a.to(dtype);
    EXPECT_EQ(std::memcmp(reduced.raw(), rounded.raw(), reduced.bytes()), 0) << dtype_name(dtype);
  }
  // While numel fits in one round of the full grid, element i is thread i's first sample, whatever numel is.
  const auto small = torch_randn(RngDevice::cuda, 42, {7}, DType::F32).to_f32_vector();
  const auto large = torch_randn(RngDevice::cuda, 42, {1000}, DType::F32).to_f32_vector();
  for (int i = 0; i < 7; ++i) EXPECT_EQ(small[i], large[i]) << i;
}

TEST(TorchRandom, CudaMatchesPublishedTorchPrintout) {
  // torch.manual_seed(42); torch.randn(2, 5, device="cuda") as printed (4 decimals) in FlashInfer's
  // logits_processor docstring, and a 19-element printout of the same stream in another public project.
  // Only 4 decimals: this checks the Philox stream, seeding and element layout, not the last bits.
  const float printed[19] = {0.1940f,  2.1614f, -0.1721f, 0.8491f,  -1.9244f, 0.6530f,  -0.6494f,
                             -0.8175f, 0.5280f, -1.2753f, -1.6621f, -0.3033f, -0.0926f, 0.1992f,
                             -1.1204f, 1.8577f, -0.7145f, 0.6881f,  0.7968f};
  const auto values = torch_randn(RngDevice::cuda, 42, {19}, DType::F32).to_f32_vector();
  for (int i = 0; i < 19; ++i) EXPECT_NEAR(values[i], printed[i], 5.1e-5) << i;
}

TEST(TorchRandom, CudaSamplesLookNormal) {
  const auto values = torch_randn(RngDevice::cuda, 1137, {300000}, DType::F32).to_f32_vector();
  double sum = 0, square = 0;
  for (float v : values) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    square += double(v) * v;
  }
  const double mean = sum / double(values.size());
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(square / double(values.size()) - mean * mean, 1.0, 0.01);
}

TEST(TorchRandom, BadArguments) {
  EXPECT_EQ(parse_rng_device("cpu"), RngDevice::cpu);
  EXPECT_EQ(parse_rng_device("cuda"), RngDevice::cuda);
  try {
    parse_rng_device("gpu");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("cpu or cuda"), std::string::npos) << error.what();
  }
  EXPECT_THROW(torch_randn(RngDevice::cpu, 0, {4}, DType::I32), Error);
  EXPECT_THROW(torch_randn(RngDevice::cpu, 0, {-1, 4}, DType::F32), Error);
  EXPECT_EQ(torch_randn(RngDevice::cpu, 0, {0, 4}, DType::F32).numel(), 0);
}

TEST(TorchMultinomial, CpuMatchesTorchBitForBit) {
  // One generator per seed, used in the golden's order: three exponential_ calls, then one multinomial per row.
  const auto file = SafetensorsFile::open(test::source_path("tests/golden/torch_random/multinomial.safetensors"));
  for (const uint64_t seed : {uint64_t(0), uint64_t(42), ~uint64_t(0)}) {
    const std::string prefix = "seed=" + std::to_string(seed) + ",";
    TorchMultinomial generator(RngDevice::cpu, seed);
    for (const int64_t n : {5, 16, 1000}) {
      const std::vector<float> expected = file->tensor(prefix + "exponential=" + std::to_string(n)).to_f32_vector();
      const std::vector<float> actual = generator.exponential(n);
      ASSERT_EQ(actual.size(), expected.size());
      EXPECT_EQ(std::memcmp(actual.data(), expected.data(), actual.size() * sizeof(float)), 0) << prefix << n;
    }
    const Tensor probs = file->tensor(prefix + "probs");
    const Tensor ids = file->tensor(prefix + "multinomial");
    ASSERT_EQ(ids.numel(), probs.size(0));
    for (int64_t row = 0; row < probs.size(0); ++row) {
      const std::vector<float> p = probs.select(0, row).to_f32_vector();
      EXPECT_EQ(generator.sample(p), ids.data<int64_t>()[row]) << prefix << "row " << row;
    }
  }
}

TEST(TorchMultinomial, DrawsFollowTheProbabilities) {
  const std::vector<float> probs = {0.5f, 0.0f, 0.3f, 0.2f};
  for (const RngDevice device : {RngDevice::cpu, RngDevice::cuda}) {
    TorchMultinomial generator(device, 1137);
    std::vector<int> counts(probs.size());
    const int draws = 20000;
    for (int i = 0; i < draws; ++i) ++counts[size_t(generator.sample(probs))];
    EXPECT_EQ(counts[1], 0);
    for (size_t i = 0; i < probs.size(); ++i) EXPECT_NEAR(double(counts[i]) / draws, probs[i], 0.015) << i;
  }
}

TEST(TorchMultinomial, CudaStreamAdvancesByPhiloxRounds) {
  // Each call starts where the previous one left the Philox offset (4 per round of the launch), so a second
  // draw differs from the first, and a fresh generator repeats the first.
  TorchMultinomial a(RngDevice::cuda, 42), b(RngDevice::cuda, 42);
  const std::vector<float> first = a.exponential(1000), second = a.exponential(1000);
  EXPECT_EQ(b.exponential(1000), first);
  EXPECT_NE(first, second);
  // While n fits one round of the grid, element i is thread i's first value whatever n is.
  TorchMultinomial c(RngDevice::cuda, 42);
  const std::vector<float> small = c.exponential(7);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(small[size_t(i)], first[size_t(i)]) << i;
  double sum = 0;
  for (float q : b.exponential(300000)) {
    ASSERT_GT(q, 0.0f);
    sum += q;
  }
  EXPECT_NEAR(sum / 300000, 1.0, 0.01);
}

TEST(TorchMultinomial, BadProbabilities) {
  TorchMultinomial generator(RngDevice::cpu, 0);
  EXPECT_THROW(generator.sample(std::vector<float>{}), Error);
  EXPECT_THROW(generator.sample(std::vector<float>{0.5f, -0.1f}), Error);
  EXPECT_THROW(generator.sample(std::vector<float>{0.0f, 0.0f}), Error);
  EXPECT_THROW(generator.sample(std::vector<float>{0.5f, std::nanf("")}), Error);
}

}  // namespace
}  // namespace k5
