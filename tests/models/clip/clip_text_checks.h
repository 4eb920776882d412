// The CLIP text model against transformers goldens (tests/golden/text_encoders, tools/golden/text_encoders.py),
// shared by the CPU test (clip_text_model_test.cpp) and the GPU test (backends/cuda/text_encoders_test.cpp):
// each takes the Context and a model loaded on its device.
#pragma once

#include <gtest/gtest.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/clip/clip_text_model.h"
#include "models/qwen25vl/token_inputs.h"
#include "support/compare.h"
#include "support/model_folder.h"

namespace k5::test {

inline std::string clip_text_golden(const std::string& name) {
  return source_path("tests/golden/text_encoders/" + name);
}

// The tiny model with the config of golden `variant`: clip_tiny (the legacy EOS rule, argmax of the ids) or
// clip_tiny_eos (eos_token_id).
inline ClipTextModel load_tiny_clip(Context& ctx, const std::string& variant = "clip_tiny",
                                    Device device = Device::CPU) {
  return ClipTextModel::load(ctx, clip_text_golden("clip_tiny.safetensors"), clip_text_golden(variant + "_config.json"),
                             device);
}

// The hidden states and the pooled output of golden `variant`'s inputs; both come back to the host.
inline void check_clip_matches_transformers(Context& ctx, const ClipTextModel& model, const std::string& variant,
                                            double tolerance) {
  const TokenInputs inputs = read_token_inputs(clip_text_golden(variant + "_io.safetensors"));
  const auto io = SafetensorsFile::open(clip_text_golden(variant + "_io.safetensors"));
  const ClipTextOutput out = model.forward(ctx, inputs.input_ids, inputs.attention_mask);
  EXPECT_EQ(out.last_hidden_state.device(), Device::CPU);
  EXPECT_EQ(out.pooler_output.device(), Device::CPU);
  EXPECT_LE(relative_l2(out.last_hidden_state.unsqueeze(0), io->tensor("last_hidden_state")), tolerance);
  EXPECT_LE(relative_l2(out.pooler_output.unsqueeze(0), io->tensor("pooler_output")), tolerance);
}

// Causal attention: the EOS state never sees the padded keys, so the mask-free run pools the same.
inline void check_clip_pooler_ignores_padding_mask(Context& ctx, const ClipTextModel& model, const std::string& variant,
                                                   double tolerance) {
  const TokenInputs inputs = read_token_inputs(clip_text_golden(variant + "_io.safetensors"));
  const Tensor expected = SafetensorsFile::open(clip_text_golden(variant + "_io.safetensors"))->tensor("pooler_output");
  EXPECT_LE(relative_l2(model.forward(ctx, inputs.input_ids).pooler_output.unsqueeze(0), expected), tolerance);
}

inline void check_clip_rejects_bad_inputs(Context& ctx, const ClipTextModel& model) {
  EXPECT_THROW(model.forward(ctx, std::vector<int32_t>(78, 1)), Error);  // longer than max_position_embeddings
  EXPECT_THROW(model.forward(ctx, {1, 5000}), Error);                    // outside the vocabulary
  EXPECT_THROW(model.forward(ctx, {1, 2}, {1}), Error);
}

// `k5 forward clip` on the tiny model and inputs file `inputs`, writing `output`.
inline std::string forward_clip_arguments(const std::string& inputs, const std::string& output) {
  return "forward clip --model-dir " + clip_text_golden("clip_tiny.safetensors") + " --config " +
         clip_text_golden("clip_tiny_config.json") + " --inputs " + inputs + " --output " + output;
}

inline void check_forward_clip_cli(const K5Cli& cli) {
  const std::string out = cli.path("clip.safetensors");
  ASSERT_EQ(cli.run(forward_clip_arguments(clip_text_golden("clip_tiny_io.safetensors"), out) + " --precision fp32"), 0)
      << cli.err();
  const auto io = SafetensorsFile::open(clip_text_golden("clip_tiny_io.safetensors"));
  const auto result = SafetensorsFile::open(out);
  EXPECT_LE(relative_l2(result->tensor("pooler_output"), io->tensor("pooler_output")), 1e-4);
  EXPECT_LE(relative_l2(result->tensor("last_hidden_state"), io->tensor("last_hidden_state")), 1e-4);
}

}  // namespace k5::test
