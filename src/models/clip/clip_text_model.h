// The CLIP text transformer (transformers CLIPTextModel, e.g. openai/clip-vit-large-patch14's text tower):
// token + position embeddings, pre-LayerNorm encoder layers with causal self-attention (plus the padding
// mask when one is given) and a quick_gelu MLP, final LayerNorm. pooler_output is the final state at the
// EOS position: argmax(input_ids) when the config's eos_token_id is the legacy 2 (the released config),
// else the first position holding eos_token_id (position 0 when there is none), as transformers does.
// With causal attention the pooled state never sees padding, so the padding mask only changes the states
// of padded positions.
//
// Devices: loaded with Device::CUDA, the weights are uploaded once and the layers run on the GPU; the token
// embedding table stays on the host (rows looked up there and uploaded); the outputs are host tensors.
#pragma once

#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"

namespace k5 {

class Checkpoint;

struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 8;
  int64_t max_position_embeddings = 77;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // or "gelu"
  int64_t eos_token_id = 2;

  // A CLIPTextConfig file, or a CLIPConfig file (its "text_config" is used). Absent fields take
  // transformers' defaults.
  static ClipTextConfig from_json_file(const std::string& path);
};

struct ClipTextOutput {
  Tensor last_hidden_state;  // F32 [L, hidden_size], host
  Tensor pooler_output;      // F32 [hidden_size], host
};

class ClipTextModel {
 public:
  // Keys text_model.* (or without the prefix); vision_model.*, text_projection, logit_scale are ignored.
  // fp32 precision converts weights to float32; bf16 keeps (or makes) BF16 projection weights. `device`:
  // where the weights and activations live.
  static ClipTextModel load(Context& ctx, const std::string& checkpoint_path, const std::string& config_path = "",
                            Device device = Device::CPU);
  static ClipTextModel load(Context& ctx, const Checkpoint& checkpoint, const ClipTextConfig& config,
                            Device device = Device::CPU);

  // input_ids [L <= max_position_embeddings]; attention_mask [L] (1 = real; empty = all real).
  ClipTextOutput forward(Context& ctx, const std::vector<int32_t>& input_ids,
                         const std::vector<uint8_t>& attention_mask = {}) const;

  const ClipTextConfig& config() const { return config_; }
  Device device() const { return device_; }

 private:
  struct Linear {
    Tensor weight, bias;
  };
  struct Layer {
    Tensor layer_norm1_weight, layer_norm1_bias, layer_norm2_weight, layer_norm2_bias;
    Linear q_proj, k_proj, v_proj, out_proj, fc1, fc2;
  };

  ClipTextConfig config_;
  Device device_ = Device::CPU;
  Tensor token_embedding_;     // [vocab, D] as stored, on the host
  Tensor position_embedding_;  // F32 [max_position, D]
  std::vector<Layer> layers_;
  Tensor final_layer_norm_weight_, final_layer_norm_bias_;
};

}  // namespace k5
