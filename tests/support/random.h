// Random test inputs: normal values from a seeded mt19937, in order, so a seed gives the same tensor everywhere.
#pragma once

#include <random>

#include "core/tensor.h"

namespace k5::test {

inline Tensor random_tensor(Shape shape, uint32_t seed, float scale = 1.0f, DType dtype = DType::F32) {
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(generator);
  return dtype == DType::F32 ? t : t.to(dtype);
}

}  // namespace k5::test
