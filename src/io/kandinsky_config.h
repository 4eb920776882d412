// The official Kandinsky 5 inference configs (../shared/k5-official/configs/*.yaml), read as they are.
// A missing or ill-typed key is an error naming the file and the key path ("model.dit_params.model_dim").
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace k5 {

struct DitParams {
  int64_t in_visual_dim = 16;
  int64_t out_visual_dim = 16;
  int64_t time_dim = 512;
  std::array<int64_t, 3> patch_size{1, 2, 2};
  int64_t model_dim = 0;
  int64_t ff_dim = 0;
  int64_t num_text_blocks = 0;
  int64_t num_visual_blocks = 0;
  std::array<int64_t, 3> axes_dims{0, 0, 0};
  bool visual_cond = false;          // I2V-capable video models: concat(x, first-frame cond, mask)
  std::string instruct_type;         // "channel" for image editing, else empty
  int64_t in_text_dim = 3584;        // Qwen hidden size (default when the config omits it)
  int64_t in_text_dim2 = 768;        // CLIP pooled size

  int64_t head_dim() const { return axes_dims[0] + axes_dims[1] + axes_dims[2]; }
  int64_t num_heads() const { return model_dim / head_dim(); }
  // Channels of the DiT input latent: 2 * in_visual_dim + 1 with visual_cond or channel instructions.
  int64_t input_channels() const {
    return (visual_cond || instruct_type == "channel") ? 2 * in_visual_dim + 1 : in_visual_dim;
  }
};

struct AttentionConfig {
  std::string type = "flash";  // "flash" (dense) or "nabla"
  bool causal = false;
  bool local = false;
  bool glob = false;
  int64_t window = 3;
  // NABLA (type == "nabla")
  double P = 0.9;
  int64_t wT = 11, wH = 3, wW = 3;
  bool add_sta = true;
  std::string method = "topcdf";
  bool chunk = false;  // attention.chunk (Pro configs); false when absent
};

struct ComponentPath {
  std::string checkpoint_path;
  std::string name;  // vae: "hunyuan" | "flux"
};

struct TextEmbedderConfig {
  int64_t qwen_emb_size = 3584;
  std::string qwen_checkpoint_path;
  int64_t qwen_max_length = 256;
  int64_t clip_emb_size = 768;
  std::string clip_checkpoint_path;
  int64_t clip_max_length = 77;
};

struct KandinskyConfig {
  std::string source;                           // path the config was read from
  std::array<double, 3> scale_factor{1, 1, 1};  // metrics.scale_factor: RoPE (t, h, w) divisors
  std::optional<double> scheduler_scale;        // metrics.scheduler_scale (video configs only)
  int64_t resolution = 512;                     // metrics.resolution
  std::string checkpoint_path;                  // model.checkpoint_path
  int64_t num_steps = 50;
  double guidance_weight = 5.0;
  DitParams dit;
  AttentionConfig attention;
  ComponentPath vae;
  TextEmbedderConfig text_embedder;
  std::vector<double> mag_ratios;  // magcache.mag_ratios (empty when absent)

  bool is_video() const { return vae.name == "hunyuan"; }
};

KandinskyConfig load_kandinsky_config(const std::string& path);

}  // namespace k5
