// The CrossDiT forward against the official goldens (tests/golden/crossdit, tools/golden/crossdit.py), shared
// by the CPU test (crossdit_test.cpp) and the GPU test (backends/cuda/crossdit_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include "io/kandinsky_config.h"
#include "models/crossdit/crossdit.h"
#include "models/crossdit/dit_inputs.h"
#include "support/compare.h"
#include "support/context.h"

namespace k5::test {

inline std::string crossdit_golden(const std::string& name) { return source_path("tests/golden/crossdit/" + name); }

// A golden forward: <name>.yaml (the config), <name>.safetensors (the inputs and the official velocity) and
// the weights file it ran with.
struct DitCase {
  const char* name;
  const char* weights;
};
constexpr DitCase kDenseT2vCond{"t2v_cond", "weights_cond.safetensors"};  // visual cond, padded text mask
constexpr DitCase kT2iNonSquare{"t2i", "weights_plain.safetensors"};
constexpr DitCase kNablaOfficialWindows{"nabla_p90", "weights_plain.safetensors"};
constexpr DitCase kNablaSparse{"nabla_sparse", "weights_plain.safetensors"};

// A case's golden file: its inputs and the official velocity.
inline DitInputFile dit_case_file(const DitCase& c) {
  return DitInputFile(crossdit_golden(std::string(c.name) + ".safetensors"),
                      {"x", "text_embed", "pooled_text_embed", "time", "attention_mask", "velocity"});
}

// The velocity of the case's DiT loaded on `device` (from `weights_path` when given, else the case's golden
// weights), with `loras` ("PATH[:MULTIPLIER]" each) merged into its weights; it comes back to the host.
inline Tensor dit_velocity(const DitCase& c, Precision precision, Device device, const std::string& weights_path = "",
                           const std::vector<std::string>& loras = {}, bool int8_weights = false) {
  Context ctx = make_context(precision, device);
  const KandinskyConfig config = load_kandinsky_config(crossdit_golden(std::string(c.name) + ".yaml"));
  const CrossDit dit =
      CrossDit::load(config, weights_path.empty() ? crossdit_golden(c.weights) : weights_path, precision,
                     DitAttention::automatic, device, load_loras(ctx, loras, config.dit), int8_weights);
  const Tensor velocity = dit.forward(ctx, read_dit_inputs(dit_case_file(c)));
  EXPECT_EQ(velocity.device(), Device::CPU);
  return velocity;
}

// Relative L2 error of that velocity (no adapters) against the official one.
inline double dit_error(const DitCase& c, Precision precision, Device device, const std::string& weights_path = "") {
  return relative_l2(dit_velocity(c, precision, device, weights_path), dit_case_file(c).float_tensor("velocity"));
}

// Int8 weights (tools/golden/dit_int8.py): the case's velocity with the blocks' GEMM weights quantised as k5
// quantises them, from the official code on the dequantised weights.
inline double int8_error(const DitCase& c, Precision precision, Device device) {
  return relative_l2(dit_velocity(c, precision, device, "", {}, /*int8_weights=*/true),
                     SafetensorsFile::open(crossdit_golden("int8.safetensors"))->tensor(c.name));
}

// LoRA goldens (tools/golden/lora.py): adapters a and b on the t2i case; `expected` names the velocity.
inline std::string lora_golden(const std::string& name) { return source_path("tests/golden/lora/" + name); }
inline double lora_error(const std::vector<std::string>& loras, const std::string& expected, Precision precision,
                         Device device) {
  return relative_l2(dit_velocity(kT2iNonSquare, precision, device, "", loras),
                     SafetensorsFile::open(lora_golden("velocity.safetensors"))->tensor(expected));
}

}  // namespace k5::test
