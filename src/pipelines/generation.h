// End-to-end generation as the official pipelines run it (t2v_pipeline.py, i2v_pipeline.py, t2i_pipeline.py,
// i2i_pipeline.py over generation_utils.generate_sample*): text conditioning -> seeded noise -> the sampling
// loop -> (I2V first-frame normalisation) -> VAE decode -> uint8 frames.
//
// `plan_generation` settles and checks every setting against the config before anything heavy is loaded;
// `generate` then runs the stages, loading each model only for its stage (the text encoders are released
// before the DiT is loaded, the DiT before the VAE decoder), or keeping them loaded in a ModelCache.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "io/image_file.h"
#include "io/kandinsky_config.h"
#include "models/bpe/kandinsky_prompt.h"
#include "models/crossdit/lora.h"
#include "pipelines/model_cache.h"
#include "pipelines/model_files.h"
#include "pipelines/torch_random.h"

namespace k5 {

enum class GenerationMode { t2v, i2v, t2i, i2i };
const char* generation_mode_name(GenerationMode mode);  // "text-to-video", ...

// Which models load with int8 weight-only layers (per-output-channel scales, quantised at load; about half the
// memory of BF16 weights, ~1% relative error per layer): the DiT's block GEMM layers, the Qwen2.5-VL language
// model's projections.
struct Int8Weights {
  bool dit = false;
  bool text_encoder = false;
  bool any() const { return dit || text_encoder; }
};
// From "dit", "text-encoder", "all" and "none", each part alone or a comma-separated list ("dit,text-encoder");
// a one-line error naming the choices for anything else.
Int8Weights parse_int8_weights(const std::vector<std::string>& parts);
std::string int8_weights_name(const Int8Weights& weights);  // "dit", "text-encoder", "dit,text-encoder", "none"

// What the user asked for; zero / empty / nullopt = the official default.
struct GenerationRequest {
  std::string prompt;
  std::optional<std::string> negative_prompt;
  int width = 0, height = 0;     // pixels
  int duration = 0, frames = 0;  // video: seconds, or video frames (4k + 1)
  int steps = 0;
  std::optional<double> guidance, scheduler_scale;
  uint64_t seed = 0;
  RngDevice rng = RngDevice::cuda;
  std::string init_image;       // I2V first frame / I2I source image
  bool magcache = false;
  bool text_only_edit = false;  // I2I text conditioning without the source image (differs from official)
  bool expand_prompt = true;    // the official default: Qwen2.5-VL rewrites the prompt first
  std::optional<bool> vae_by_frames;  // decode video tiles frame by frame; nullopt: when memory asks for it
  std::vector<std::string> loras;     // DiT LoRA adapters, "PATH[:MULTIPLIER]" (models/crossdit/lora.h)
  Int8Weights int8_weights;
};

// The settled settings.
struct GenerationPlan {
  GenerationMode mode = GenerationMode::t2v;
  int width = 0, height = 0;
  int frames = 1;         // video frames (1 for images)
  int latent_frames = 1;  // (frames - 1) / 4 + 1
  int steps = 0;
  double guidance = 1.0, scheduler_scale = 1.0;
  std::string prompt, negative_prompt;
  PromptContent content = PromptContent::video;
  uint64_t seed = 0;
  RngDevice rng = RngDevice::cuda;
  bool magcache = false;
  bool text_only_edit = false;
  bool expand_prompt = true;
  std::optional<bool> vae_by_frames;
  std::optional<Image> init_image;      // as the pipeline uses it (I2V resized, I2I resized and cropped)
  std::optional<Image> original_image;  // as read (prompt expansion sees this one)
  std::vector<LoraAdapter> loras;       // read and checked against the DiT; merged when it loads
  Int8Weights int8_weights;

  bool cfg() const;
  bool is_video() const { return mode == GenerationMode::t2v || mode == GenerationMode::i2v; }
};

// The official (height, width) pairs for a config: resolution 512 -> the SD list, 1024 -> the HD list; other
// resolutions (tiny test models) get the SD list scaled by resolution / 512 below 1024, else the HD list
// scaled by resolution / 1024.
std::vector<std::pair<int, int>> allowed_sizes(const KandinskyConfig& config);

// Settles defaults and rejects impossible settings with one line listing the valid choices. Reads the init
// image (cheap) to size I2V / I2I.
GenerationPlan plan_generation(const KandinskyConfig& config, const GenerationRequest& request);

struct GenerationEvent {
  std::string stage;  // "load", "expand", "text", "image", "denoise", "decode"
  int done = 0, total = 0;
  std::string detail;  // the model loading ("dit NAME"), MagCache skips
};
// Called at the start of each stage (done = 0) and after each unit of work; may throw to stop the run.
using GenerationObserver = std::function<void(const GenerationEvent&)>;

struct GenerationResult {
  std::string expanded_prompt;  // the prompt the model was conditioned on when expansion ran, else empty
  Tensor latents;             // [T, H / 8, W / 8, 16] F32: the sampled latents the VAE decodes
  std::vector<Image> frames;  // RGB8, `frames` of them (one for images)
};

// Loads each model for its stage and releases it after (`k5 generate`).
GenerationResult generate(Context& ctx, const ModelFiles& files, const GenerationPlan& plan,
                          const GenerationObserver& observer = {});
// Takes the models from `models`, which keeps them loaded as its policy says (k5 serve, the C API).
GenerationResult generate(Context& ctx, const ModelFiles& files, const GenerationPlan& plan, ModelCache& models,
                          const GenerationObserver& observer = {});

}  // namespace k5
