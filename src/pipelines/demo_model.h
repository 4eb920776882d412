// The demo model: a tiny Kandinsky 5 model folder with random, deterministic weights in the official
// layout (download_models.py + the repository's configs/), so `k5 generate` runs every mode in seconds
// before trained weights exist. Its pictures are meaningless.
//
//   DIR/README.txt
//   DIR/configs/k5_tiny_{t2v_5s,i2v_5s,t2i,i2i}.yaml            official YAML format, resolution 128
//   DIR/weights/model/kandinsky5tiny_{t2v_5s,i2v_5s,t2i,i2i}.safetensors   CrossDiT, BF16, d 128, 2+2 blocks
//   DIR/weights/vae/           HunyuanVideo causal 3D VAE (diffusers), 16 latent channels, 4x time, 8x space
//   DIR/weights/flux/vae/      FLUX VAE (diffusers AutoencoderKL), 16 latent channels, 8x space
//   DIR/weights/text_encoder/  Qwen2.5-VL (hidden 64, vision tower 32) + a tiny byte-level BPE tokenizer.json
//   DIR/weights/text_encoder2/ CLIP text model (hidden 32) + byte-level vocab.json / merges.txt
//
// The tiny Qwen tokenizer holds the real Qwen2.5 merges that the Kandinsky template texts use (and nothing
// else), so every template prefix splits into exactly the tokens the real tokenizer gives, and the official
// crop_start values drop the same tokens; other text falls back to bytes.
#pragma once

#include <cstdint>
#include <string>

namespace k5 {

// Writes the folder (creating it); each file appears whole (atomic rename). Same seed, same bytes.
// full_size: instead, Video Lite T2V 5 s at the released sizes (configs/k5_lite_t2v_5s_sft_sd.yaml, ~21 GB), with the
// same tiny tokenizers, for timing and memory runs.
void write_demo_model(const std::string& dir, uint64_t seed = 5, bool full_size = false);

// Sizes of the demo text encoders: the configs' in_text_dim / in_text_dim2.
inline constexpr int64_t kDemoQwenHiddenSize = 64;
inline constexpr int64_t kDemoClipHiddenSize = 32;

}  // namespace k5
