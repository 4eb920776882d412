#include "models/crossdit/random_weights.h"

#include <cmath>
#include <random>

#include "core/error.h"
#include "models/crossdit/crossdit_weights.h"

namespace k5 {

std::vector<std::pair<std::string, Tensor>> random_crossdit_weights(const DitParams& params, DType dtype,
                                                                    uint64_t seed, ThreadPool& pool) {
  K5_CHECK(dtype == DType::BF16 || dtype == DType::F32, "random CrossDiT weights: dtype must be BF16 or F32");
  std::vector<std::pair<std::string, Tensor>> tensors;
  uint64_t index = 0;
  for (const auto& [name, shape] : crossdit_parameter_shapes(params)) {
    Tensor t = Tensor::empty(dtype, shape);
    const int64_t n = t.numel();
    const bool matrix = shape.size() == 2;
    const bool norm = name.find("norm.weight") != std::string::npos;
    const float std_dev = matrix ? 1.0f / std::sqrt(float(shape[1])) : (norm ? 0.1f : 0.02f);
    const float mean = norm ? 1.0f : 0.0f;
    const uint64_t tensor_seed = seed * 1000003ULL + index++;
    pool.parallel_for(0, (n + 65535) / 65536, 1, [&](int64_t begin, int64_t end) {
      for (int64_t chunk = begin; chunk < end; ++chunk) {
        std::mt19937_64 rng(tensor_seed * 7919ULL + uint64_t(chunk));
        std::normal_distribution<float> normal(mean, std_dev);
        const int64_t stop = std::min(n, (chunk + 1) * 65536);
        for (int64_t i = chunk * 65536; i < stop; ++i) {
          const float v = normal(rng);
          if (dtype == DType::BF16)
            t.data<uint16_t>()[i] = f32_to_bf16(v);
          else
            t.data<float>()[i] = v;
        }
      }
    });
    tensors.push_back({name, std::move(t)});
  }
  return tensors;
}

}  // namespace k5
