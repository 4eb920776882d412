// Which CPU kernels this machine can run. Chosen once at start-up; K5_CPU=avx2 forces the baseline path
// (used by the tests to cover both paths on an AVX-512 machine).
#pragma once

#include <string>

namespace k5 {

struct CpuFeatures {
  bool avx512 = false;       // AVX-512 F/BW/VL/DQ
  bool avx512_bf16 = false;  // VDPBF16PS
  std::string describe() const;
};

const CpuFeatures& cpu_features();

}  // namespace k5
