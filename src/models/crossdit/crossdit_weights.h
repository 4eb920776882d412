// CrossDiT (official DiffusionTransformer3D) parameters: the state-dict layout and its loading.
// The official key names and diffusers' Kandinsky5Transformer3DModel keys are the same names (diffusers kept
// the module tree); a leading "transformer." or "model." prefix is accepted and stripped.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "io/kandinsky_config.h"
#include "io/safetensors.h"
#include "models/crossdit/lora.h"
#include "ops/linear_layer.h"

namespace k5 {

// Linear layers (ops::LinearLayer): the GEMM layers' weights BF16 in bf16 mode, F32 in fp32 mode, int8 in the
// blocks when loaded with int8 weights; F32/BF16 for the matrix-vector layers (modulation, time embedding).
struct AttentionWeights {
  ops::LinearLayer to_query, to_key, to_value, out_layer;
  Tensor query_norm, key_norm;  // RMSNorm weights [head_dim] F32
};

struct FeedForwardWeights {
  ops::LinearLayer in_layer, out_layer;  // no biases
};

struct EncoderBlockWeights {
  ops::LinearLayer modulation;  // td -> 6d
  AttentionWeights self_attention;
  FeedForwardWeights feed_forward;
};

struct DecoderBlockWeights {
  ops::LinearLayer modulation;  // td -> 9d
  AttentionWeights self_attention, cross_attention;
  FeedForwardWeights feed_forward;
};

struct CrossDitWeights {
  ops::LinearLayer time_in, time_out;       // d -> td, td -> td (fp32 matvec)
  ops::LinearLayer text_in;                 // in_text_dim -> d
  Tensor text_norm_weight, text_norm_bias;  // [d]
  ops::LinearLayer pooled_in;               // in_text_dim2 -> td
  Tensor pooled_norm_weight, pooled_norm_bias;  // [td]
  ops::LinearLayer visual_in;                   // prod(patch) * Cin -> d
  std::vector<EncoderBlockWeights> text_blocks;
  std::vector<DecoderBlockWeights> visual_blocks;
  ops::LinearLayer out_modulation;  // td -> 2d
  ops::LinearLayer out_linear;      // d -> prod(patch) * out_visual_dim
};

// Every parameter of the official state dict with its shape, in module order.
std::vector<std::pair<std::string, Shape>> crossdit_parameter_shapes(const DitParams& params);

// Loads and validates a checkpoint: every expected key present with its shape, no unknown keys. GEMM weights
// become F32 (fp32) or BF16 (bf16; zero-copy when the file is BF16); modulation / time-embedding weights stay
// as stored when F32/BF16 (they run as float32 matrix-vector products; F32 when an adapter changes them);
// vectors become F32. With `int8_weights` the GEMM layers of the blocks (attention and feed-forward, ~85% of
// the parameters) are quantised to int8 per output channel (ops/linear_int8.h) and their mapped pages
// released; the embeddings, the output layer and the modulation keep their precision. On Device::CUDA every
// tensor is uploaded once, the modulation / time-embedding weights as F32 (the GPU runs those products as
// float32 GEMMs; a BF16-weight kernel would halve their memory). LoRA adapters (lora.h) are merged into the
// weights they adapt before that conversion.
CrossDitWeights load_crossdit_weights(const Checkpoint& checkpoint, const DitParams& params, Precision precision,
                                      Device device = Device::CPU, const std::vector<LoraAdapter>& adapters = {},
                                      bool int8_weights = false);

}  // namespace k5
