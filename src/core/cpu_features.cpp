#include "core/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace k5 {

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures detected;
    __builtin_cpu_init();
    detected.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    detected.avx512_bf16 = detected.avx512 && __builtin_cpu_supports("avx512bf16");
    const char* forced = std::getenv("K5_CPU");
    if (forced && std::strcmp(forced, "avx2") == 0) detected = CpuFeatures{};
    return detected;
  }();
  return features;
}

std::string CpuFeatures::describe() const {
  if (avx512_bf16) return "avx512+bf16";
  if (avx512) return "avx512";
  return "avx2";
}

}  // namespace k5
