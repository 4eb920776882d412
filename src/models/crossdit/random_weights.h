// A random-weight CrossDiT in the official key layout, for smoke tests, benchmarks and demos where no
// checkpoint is at hand: weights ~ N(0, 1/fan_in), norm weights ~ N(1, 0.1), biases ~ N(0, 0.02).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "io/kandinsky_config.h"

namespace k5 {

// Every parameter of crossdit_parameter_shapes(params), in that order, as `dtype` (BF16 or F32). Chunks of
// 65,536 values come from their own seeded generators, so the result is the same for any thread count.
std::vector<std::pair<std::string, Tensor>> random_crossdit_weights(const DitParams& params, DType dtype,
                                                                    uint64_t seed, ThreadPool& pool);

}  // namespace k5
