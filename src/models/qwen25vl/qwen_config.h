// The language-model part of a Qwen2.5-VL config.json (Hugging Face). Text parameters sit at the top level
// in the released files and under "text_config" in files written by transformers 5; both are read.
#pragma once

#include <string>
#include <vector>

namespace k5 {

struct QwenTextConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads
  int64_t vocab_size = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 1e6;
  // M-RoPE split of the rotary frequencies into (temporal, height, width) sections. Text-only input has
  // equal positions in all three, so it reduces to ordinary 1D RoPE; kept for validation and vision input.
  std::vector<int64_t> mrope_section;

  static QwenTextConfig from_json_file(const std::string& path);
};

}  // namespace k5
