// The Qwen2.5-VL language model against transformers goldens (tests/golden/text_encoders,
// tools/golden/text_encoders.py), shared by the CPU test (qwen_text_model_test.cpp) and the GPU test
// (backends/cuda/text_encoders_test.cpp): each takes the Context and a model loaded on its device.
#pragma once

#include <gtest/gtest.h>

#include <optional>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/qwen25vl/qwen_text_model.h"
#include "models/qwen25vl/token_inputs.h"
#include "support/compare.h"
#include "support/model_folder.h"

namespace k5::test {

inline std::string qwen_text_golden(const std::string& name) {
  return source_path("tests/golden/text_encoders/" + name);
}

// The tiny model (hidden 64, 2 layers, GQA 4/2) with config `config` (either config layout).
inline QwenTextModel load_tiny_qwen(Context& ctx, const std::string& config = "qwen_tiny_config.json",
                                    std::optional<QwenWeights> weights = std::nullopt, Device device = Device::CPU) {
  return QwenTextModel::load(ctx, qwen_text_golden("qwen_tiny.safetensors"), qwen_text_golden(config), weights, false,
                             device);
}

// Relative L2 error of the hidden states of golden inputs `io` against transformers', every position (padded
// rows too: transformers computes them); they come back to the host as [L, hidden].
inline double qwen_hidden_error(Context& ctx, const QwenTextModel& model,
                                const std::string& io = "qwen_tiny_io.safetensors") {
  const TokenInputs inputs = read_token_inputs(qwen_text_golden(io));
  const Tensor expected = SafetensorsFile::open(qwen_text_golden(io))->tensor("hidden_states");
  const Tensor hidden = model.forward(ctx, inputs.input_ids, inputs.attention_mask);
  EXPECT_EQ(hidden.device(), Device::CPU);
  EXPECT_EQ(hidden.shape(), Shape({expected.size(1), expected.size(2)}));
  return relative_l2(hidden.unsqueeze(0), expected);
}

inline void check_qwen_rejects_bad_inputs(Context& ctx, const QwenTextModel& model) {
  EXPECT_THROW(model.forward(ctx, {1, 2, 1000}), Error);       // id outside the vocabulary
  EXPECT_THROW(model.forward(ctx, {1, 2, 3}, {1, 1}), Error);  // mask length
  EXPECT_THROW(model.forward(ctx, {}), Error);
}

// `k5 forward qwen` on the tiny model and inputs file `inputs`, writing `output`.
inline std::string forward_qwen_arguments(const std::string& inputs, const std::string& output) {
  return "forward qwen --model-dir " + qwen_text_golden("qwen_tiny.safetensors") + " --config " +
         qwen_text_golden("qwen_tiny_config.json") + " --inputs " + inputs + " --output " + output;
}

inline void check_forward_qwen_cli(const K5Cli& cli) {
  const std::string out = cli.path("qwen.safetensors");
  ASSERT_EQ(cli.run(forward_qwen_arguments(qwen_text_golden("qwen_tiny_io.safetensors"), out) + " --precision fp32"), 0)
      << cli.err();
  EXPECT_LE(relative_l2(SafetensorsFile::open(out)->tensor("hidden_states"),
                        SafetensorsFile::open(qwen_text_golden("qwen_tiny_io.safetensors"))->tensor("hidden_states")),
            1e-4);
}

}  // namespace k5::test
