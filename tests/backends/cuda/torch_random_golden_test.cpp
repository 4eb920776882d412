// k5's CPU reproduction of torch's CUDA generator (src/pipelines/torch_random: `--rng cuda`) against what torch
// gives on a GPU: tools/golden/torch_random_cuda.py writes the values on the GPU machine and
// K5_TORCH_CUDA_GOLDEN names that file; without it these tests skip. No k5 GPU code runs here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "io/safetensors.h"
#include "pipelines/torch_random.h"
#include "support/compare.h"

namespace k5::test {
namespace {

// The seed in a name such as "randn,seed=42,dtype=float32,shape=19".
uint64_t seed_of(const std::string& name) {
  const size_t at = name.find("seed=") + 5;
  return std::stoull(name.substr(at, name.find(',', at) - at));
}

class CudaGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* path = std::getenv("K5_TORCH_CUDA_GOLDEN");
    if (path == nullptr) GTEST_SKIP() << "K5_TORCH_CUDA_GOLDEN is not set (values from torch on a GPU)";
    file_ = SafetensorsFile::open(path);
    const auto& metadata = file_->metadata();
    device_.multiprocessors = std::stoi(metadata.at("multiprocessors"));
    device_.max_threads_per_multiprocessor = std::stoi(metadata.at("max_threads_per_multiprocessor"));
  }
  std::shared_ptr<SafetensorsFile> file_;
  CudaDeviceShape device_;
};

TEST_F(CudaGolden, RandnMatchesTorch) {
  // Box-Muller on the GPU uses __sincosf and CUDA's logf: most values equal, the rest within a few ulps.
  int cases = 0;
  for (const auto& info : file_->tensors()) {
    if (info.name.rfind("randn,", 0) != 0) continue;
    ++cases;
    const Tensor expected = file_->tensor(info.name);
    const Tensor actual = torch_randn(RngDevice::cuda, seed_of(info.name), expected.shape(), expected.dtype(), device_);
    const std::vector<float> a = actual.to_f32_vector(), e = expected.to_f32_vector();
    ASSERT_EQ(a.size(), e.size()) << info.name;
    int64_t equal = 0;
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      equal += a[i] == e[i];
      worst = std::max(worst, double(std::abs(a[i] - e[i])) / std::max(1.0, double(std::abs(e[i]))));
    }
    const double equal_fraction = double(equal) / double(a.size());
    std::printf("%s: %.6f equal, worst relative difference %.3g\n", info.name.c_str(), equal_fraction, worst);
    const bool f32 = expected.dtype() == DType::F32;
    EXPECT_LE(worst, f32 ? 1e-5 : 1e-2) << info.name;
    EXPECT_GE(equal_fraction, f32 ? 0.5 : 0.99) << info.name;
  }
  EXPECT_GT(cases, 0);
}

TEST_F(CudaGolden, ExponentialAndMultinomialMatchTorch) {
  for (const uint64_t seed : {uint64_t(0), uint64_t(42)}) {
    const std::string prefix = "seed=" + std::to_string(seed) + ",";
    TorchMultinomial generator(RngDevice::cuda, seed, device_);
    for (const int64_t n : {5, 16, 1000, 152064}) {
      const std::vector<float> expected = file_->tensor(prefix + "exponential=" + std::to_string(n)).to_f32_vector();
      EXPECT_LE(relative_l2(generator.exponential(n), expected), 1e-6) << prefix << n;
    }
    const Tensor probs = file_->tensor(prefix + "probs");
    const Tensor ids = file_->tensor(prefix + "multinomial");
    for (int64_t row = 0; row < probs.size(0); ++row)
      EXPECT_EQ(generator.sample(probs.select(0, row).to_f32_vector()), ids.data<int64_t>()[row]) << prefix << row;
  }
}

}  // namespace
}  // namespace k5::test
