// Numeric comparison helpers shared by the tests.
#pragma once

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace k5::test {

// ||a - b|| / max(||b||, tiny): the relative L2 error of `actual` against `expected`.
inline double relative_l2(const std::vector<float>& actual, const std::vector<float>& expected) {
  double difference = 0, norm = 0;
  const size_t n = std::min(actual.size(), expected.size());
  for (size_t i = 0; i < n; ++i) {
    const double delta = double(actual[i]) - double(expected[i]);
    difference += delta * delta;
    norm += double(expected[i]) * double(expected[i]);
  }
  if (actual.size() != expected.size()) return INFINITY;
  return std::sqrt(difference) / std::max(std::sqrt(norm), 1e-30);
}

inline double relative_l2(const Tensor& actual, const Tensor& expected) {
  if (actual.shape() != expected.shape()) return INFINITY;
  return relative_l2(actual.to_f32_vector(), expected.to_f32_vector());
}

// Where tests find files: the source tree (goldens) and ../shared (official configs, tokenizers).
// The repository root: K5_SOURCE_DIR from the environment (the test programs run from another checkout, e.g.
// on the GPU machine), else where they were built from.
inline std::string source_path(const std::string& relative) {
  const char* root = std::getenv("K5_SOURCE_DIR");
  return std::string(root ? root : K5_SOURCE_DIR) + "/" + relative;
}
std::string shared_path(const std::string& relative);

}  // namespace k5::test
