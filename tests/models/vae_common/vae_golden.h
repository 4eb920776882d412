// The VAE goldens (tests/golden/vae, tools/golden/vae.py: tiny random-weight configs), shared by the CPU tests
// (tests/models/vae_*) and the GPU test (backends/cuda/vae_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "io/safetensors.h"
#include "support/compare.h"

namespace k5::test {

constexpr double kVaeTolerance = 1e-4;  // fp32 relative L2

// The config, weights and cases of golden VAE `vae` (hunyuan, flux).
template <typename Config>
struct VaeGolden {
  explicit VaeGolden(const std::string& vae)
      : config(Config::from_json_file(source_path("tests/golden/vae/" + vae + "_config.json"))),
        weights(Checkpoint::open(source_path("tests/golden/vae/" + vae + "_weights.safetensors"))),
        cases(SafetensorsFile::open(source_path("tests/golden/vae/" + vae + "_cases.safetensors"))) {}
  Config config;
  Checkpoint weights;
  std::shared_ptr<SafetensorsFile> cases;

  // Item 0 of a golden [1, ...] tensor as a contiguous F32 host tensor.
  Tensor item(const std::string& name) const {
    const Tensor stored = cases->tensor(name);
    Tensor item = Tensor::empty(DType::F32, Shape(stored.shape().begin() + 1, stored.shape().end()));
    item.copy_from(stored.select(0, 0));
    return item;
  }
};

// A result back on the host within kVaeTolerance of the golden; the error is printed.
inline void expect_vae_golden(const Tensor& actual, const Tensor& expected, const std::string& what) {
  EXPECT_EQ(actual.device(), Device::CPU) << what << ": results come back to the host";
  const double error = relative_l2(actual, expected);
  std::printf("  %s: relative L2 %.3g (shape %s)\n", what.c_str(), error, shape_string(expected.shape()).c_str());
  EXPECT_LE(error, kVaeTolerance) << what;
}

}  // namespace k5::test
