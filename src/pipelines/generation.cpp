#include "pipelines/generation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/system_memory.h"
#include "io/image_file.h"
#include "io/safetensors.h"
#include "models/crossdit/crossdit.h"
#include "models/vae_flux/flux_vae.h"
#include "models/vae_hunyuan/hunyuan_vae.h"
#include "ops/elementwise.h"
#include "pipelines/image_resize.h"
#include "pipelines/prompt_expansion.h"
#include "pipelines/sampler.h"
#include "pipelines/text_conditioning.h"

namespace k5 {

const char* generation_mode_name(GenerationMode mode) {
  switch (mode) {
    case GenerationMode::t2v: return "text-to-video";
    case GenerationMode::i2v: return "image-to-video";
    case GenerationMode::t2i: return "text-to-image";
    case GenerationMode::i2i: return "image editing";
  }
  return "?";
}

bool GenerationPlan::cfg() const { return std::abs(guidance - 1.0) > 1e-6; }

namespace {

constexpr int kLatentChannels = 16;

// t2v_pipeline.py RESOLUTIONS (height, width).
const std::vector<std::pair<int, int>> kStandardSizes{{512, 512}, {512, 768}, {768, 512}};
const std::vector<std::pair<int, int>> kHighSizes{{1024, 1024}, {640, 1408}, {1408, 640}, {768, 1280},
                                                  {1280, 768},  {896, 1152}, {1152, 896}};

std::string sizes_string(const std::vector<std::pair<int, int>>& sizes) {
  std::string out;
  for (const auto& [h, w] : sizes) out += (out.empty() ? "" : ", ") + std::to_string(w) + "x" + std::to_string(h);
  return out;
}

// The 10 s checkpoints are trained on 10 s clips; everything else on 5 s.
int default_duration(const KandinskyConfig& config) {
  const std::string name = std::filesystem::path(config.checkpoint_path).stem().string() + " " +
                           std::filesystem::path(config.source).stem().string();
  return name.find("10s") != std::string::npos ? 10 : 5;
}

// I2V input sizing (i2v_pipeline.py): max_area 512*768 and divisibility 16 at resolution 512, else
// 1024*1024 and 128 (scaled with the resolution for tiny models).
std::pair<int64_t, int> i2v_area_and_divisibility(const KandinskyConfig& config) {
  const int64_t r = config.resolution;
  if (r < 1024) return {r * r * 3 / 2, 16};
  return {r * r, int(128 * r / 1024)};
}

}  // namespace

std::vector<std::pair<int, int>> allowed_sizes(const KandinskyConfig& config) {
  const int r = int(config.resolution);
  if (r == 512) return kStandardSizes;
  if (r == 1024) return kHighSizes;
  const auto& base = r < 1024 ? kStandardSizes : kHighSizes;
  const int base_resolution = r < 1024 ? 512 : 1024;
  std::vector<std::pair<int, int>> sizes;
  for (const auto& [h, w] : base) sizes.emplace_back(h * r / base_resolution, w * r / base_resolution);
  return sizes;
}

GenerationPlan plan_generation(const KandinskyConfig& config, const GenerationRequest& r) {
  GenerationPlan plan;
  const bool video = config.is_video();
  const bool edit = config.dit.instruct_type == "channel";
  const bool has_image = !r.init_image.empty();
  plan.mode = video ? (has_image ? GenerationMode::i2v : GenerationMode::t2v)
                    : (edit ? GenerationMode::i2i : GenerationMode::t2i);
  const std::string model = std::filesystem::path(config.source).stem().string();

  // Prompt.
  K5_CHECK(!r.prompt.empty(), "--prompt is empty");
  plan.prompt = r.prompt;
  switch (plan.mode) {
    case GenerationMode::t2v:
    case GenerationMode::i2v: plan.content = PromptContent::video; break;  // generate_sample_i2v encodes "video"
    case GenerationMode::t2i: plan.content = PromptContent::image; break;
    case GenerationMode::i2i: plan.content = PromptContent::image_edit; break;
  }
  plan.negative_prompt = r.negative_prompt ? *r.negative_prompt : default_negative_prompt(plan.content);

  // Input image.
  if (has_image) {
    K5_CHECK(plan.mode == GenerationMode::i2v || plan.mode == GenerationMode::i2i, "--init-img: ", model,
             " is a ", generation_mode_name(plan.mode), " model and takes no input image");
    K5_CHECK(plan.mode != GenerationMode::i2v || config.dit.visual_cond, "--init-img: ", model,
             " has no visual_cond: it cannot start a video from an image");
    plan.init_image = read_image(r.init_image);
    plan.original_image = plan.init_image;
  }
  if (plan.mode == GenerationMode::i2i) {
    K5_CHECK(has_image || (r.width > 0 && r.height > 0), "image editing needs --init-img (or -W and -H to edit nothing)");
    plan.text_only_edit = r.text_only_edit || !has_image;
  }

  // Size.
  K5_CHECK((r.width > 0) == (r.height > 0), "give both -W and -H, or neither");
  const auto sizes = allowed_sizes(config);
  if (plan.mode == GenerationMode::i2v) {
    K5_CHECK(r.width == 0, "image-to-video takes its size from the input image (as the official pipeline); drop -W/-H");
    const auto [max_area, divisibility] = i2v_area_and_divisibility(config);
    // get_first_frame_from_image: the image is resized so its area is about max_area, sides multiples of
    // `divisibility`; the video takes that size.
    const int source_width = plan.init_image->width, source_height = plan.init_image->height;
    K5_CHECK(source_width >= 16 && source_height >= 16, "--init-img: ", r.init_image, " (", source_width, "x",
             source_height, ") is too small to start a video from");
    plan.init_image = resize_image(*plan.init_image, double(max_area), divisibility).image;
    K5_CHECK(plan.init_image->width >= 16 && plan.init_image->height >= 16, "--init-img: ", r.init_image, " (",
             source_width, "x", source_height, ") has an aspect ratio too extreme to size a video from");
    plan.height = plan.init_image->height;
    plan.width = plan.init_image->width;
  } else if (r.width > 0) {
    K5_CHECK(std::find(sizes.begin(), sizes.end(), std::pair<int, int>(r.height, r.width)) != sizes.end(),
             "size ", r.width, "x", r.height, " is not one ", model, " supports; choose one of (WxH) ", sizes_string(sizes));
    plan.height = r.height;
    plan.width = r.width;
  } else if (plan.mode == GenerationMode::i2i) {
    // i2i_pipeline.find_nearest: the listed size with the nearest aspect ratio (first on ties).
    const double aspect = double(plan.init_image->height) / double(plan.init_image->width);
    auto best = sizes.front();
    for (const auto& s : sizes)
      if (std::abs(double(s.first) / s.second - aspect) < std::abs(double(best.first) / best.second - aspect)) best = s;
    std::tie(plan.height, plan.width) = best;
  } else {
    // Pipeline defaults: video 768x512 (width x height) at resolution 512, images 1024x1024.
    std::tie(plan.height, plan.width) = config.resolution < 1024 && video ? sizes[1] : sizes[0];
  }
  // I2I: resize_video covers the size and crops the centre; the VAE and the text encoder both see that.
  if (plan.mode == GenerationMode::i2i && has_image)
    plan.init_image = resize_video(*plan.original_image, plan.height, plan.width);

  // Frames.
  if (video) {
    K5_CHECK(r.duration == 0 || r.frames == 0, "give --duration or --frames, not both");
    K5_CHECK(r.duration >= 0 && r.frames >= 0, "--duration and --frames must be positive");
    if (r.frames > 0) {
      K5_CHECK(r.frames % 4 == 1, "--frames ", r.frames,
               ": the video VAE makes 4k + 1 frames (e.g. 25, 49, 121 = 5 s, 241 = 10 s)");
      plan.frames = r.frames;
    } else {
      const int seconds = r.duration > 0 ? r.duration : default_duration(config);
      K5_CHECK(seconds <= 60, "--duration ", seconds, " s is longer than any Kandinsky 5 model was trained for");
      plan.frames = seconds * 24 + 1;  // latent frames seconds * 24 // 4 + 1
    }
    plan.latent_frames = (plan.frames - 1) / 4 + 1;
  } else {
    K5_CHECK(r.duration == 0 && r.frames == 0, model, " makes images: --duration / --frames do not apply");
  }

  // Sampling.
  K5_CHECK(r.steps >= 0, "--steps must be positive");
  plan.steps = r.steps > 0 ? r.steps : int(config.num_steps);
  K5_CHECK(plan.steps <= 1000, "--steps ", plan.steps, " is more than 1000");
  plan.guidance = r.guidance.value_or(config.guidance_weight);
  // Pipeline call defaults: 10 for video, 3 for images, unless the config's metrics give one.
  plan.scheduler_scale = r.scheduler_scale.value_or(config.scheduler_scale.value_or(video ? 10.0 : 3.0));
  K5_CHECK(plan.scheduler_scale > 0, "--scheduler-scale must be positive");
  plan.seed = r.seed;
  plan.rng = r.rng;
  plan.magcache = r.magcache;
  plan.vae_by_frames = r.vae_by_frames;
  // i2i_pipeline.expand_prompt needs the source image (without one the official call fails): none then.
  plan.expand_prompt = r.expand_prompt && (plan.mode != GenerationMode::i2i || has_image);
  K5_CHECK(!plan.magcache || !config.mag_ratios.empty(), "--magcache: ", model, " has no magcache.mag_ratios");
  for (const std::string& spec : r.loras) plan.loras.push_back(load_lora(parse_lora_spec(spec), config.dit));
  plan.int8_weights = r.int8_weights;
  return plan;
}

Int8Weights parse_int8_weights(const std::vector<std::string>& lists) {
  std::vector<std::string> parts;
  for (const std::string& list : lists) {
    std::stringstream items(list);
    for (std::string part; std::getline(items, part, ',');) parts.push_back(part);
  }
  Int8Weights weights;
  K5_CHECK(parts.size() <= 1 || std::find(parts.begin(), parts.end(), "none") == parts.end(),
           "--weights-int8: 'none' goes alone");
  for (const std::string& part : parts) {
    if (part == "dit" || part == "all") weights.dit = true;
    if (part == "text-encoder" || part == "all") weights.text_encoder = true;
    K5_CHECK(part == "dit" || part == "text-encoder" || part == "all" || part == "none", "--weights-int8 '", part,
             "': choose dit, text-encoder, all or none");
  }
  return weights;
}

std::string int8_weights_name(const Int8Weights& weights) {
  if (!weights.any()) return "none";
  if (!weights.text_encoder) return "dit";
  return weights.dit ? "dit,text-encoder" : "text-encoder";
}

namespace {

void notify(const GenerationObserver& observer, const std::string& stage, int done, int total,
            const std::string& detail = "") {
  if (observer) observer({stage, done, total, detail});
}

// RGB8 image -> [3, H, W] F32 in [-1, 1] (x / 127.5 - 1).
Tensor to_signed_unit(const Image& image, bool round_bf16) {
  Tensor out = Tensor::empty(DType::F32, {3, image.height, image.width});
  float* d = out.data<float>();
  const int64_t plane = int64_t(image.height) * image.width;
  for (int64_t i = 0; i < plane; ++i)
    for (int c = 0; c < 3; ++c) {
      float v = float(image.rgb[size_t(i * 3 + c)]) / 127.5f;
      if (round_bf16) v = bf16_to_f32(f32_to_bf16(v));
      v -= 1.0f;
      if (round_bf16) v = bf16_to_f32(f32_to_bf16(v));
      d[c * plane + i] = v;
    }
  return out;
}

// DiagonalGaussianDistribution.sample(): mean + exp(logvar / 2) * eps, logvar clamped to [-30, 20]; eps is
// drawn as the official run draws it (a fresh generator of the chosen kind seeded with the seed, in the
// VAE's dtype). moments [2C, ...] -> latent [C, ...] times the scaling factor.
Tensor sample_latent(const Tensor& moments, const Shape& eps_shape, DType eps_dtype, const GenerationPlan& plan,
                     double scaling_factor) {
  const int64_t C = moments.size(0) / 2, n = moments.numel() / 2;
  const Tensor eps = torch_randn(plan.rng, plan.seed, eps_shape, eps_dtype).to(DType::F32);
  K5_CHECK(eps.numel() == n, "internal: latent noise of ", eps.numel(), " values for ", n, " latents");
  Shape shape = moments.shape();
  shape[0] = C;
  Tensor latent = Tensor::empty(DType::F32, shape);
  const Tensor m = moments.contiguous();
  const float* mean = m.data<float>();
  const float* logvar = mean + n;
  const float* e = eps.data<float>();
  float* out = latent.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const float std_dev = std::exp(0.5f * std::clamp(logvar[i], -30.0f, 20.0f));
    out[i] = float((mean[i] + std_dev * e[i]) * scaling_factor);
  }
  return latent;
}

// On the GPU, logs the most device memory k5 held while one stage (one model) ran.
class GpuMemoryReport {
 public:
  GpuMemoryReport(Context& ctx, const char* stage) : ctx_(ctx), stage_(stage) {
    reset_peak_device_memory(ctx.device());
  }
  ~GpuMemoryReport() {
    if (ctx_.device() == Device::CUDA)
      ctx_.log().info(stage_, ": peak GPU memory ", double(device_memory(Device::CUDA).peak) / double(1 << 30), " GiB");
  }
  GpuMemoryReport(const GpuMemoryReport&) = delete;
  GpuMemoryReport& operator=(const GpuMemoryReport&) = delete;

 private:
  Context& ctx_;
  const char* stage_;
};

// I2V: the first frame's latent [1, h, w, C] (get_first_frame_from_image).
// `vae` has its encoder.
Tensor encode_first_frame(Context& ctx, const HunyuanVae& vae, const GenerationPlan& plan) {
  const Image& resized = *plan.init_image;  // resized by plan_generation
  const Tensor pixels = to_signed_unit(resized, false).reshape({3, 1, plan.height, plan.width});
  HunyuanTiling no_tiling;
  no_tiling.enabled = false;  // opt_tiling=False in the official call
  const Tensor moments = vae.encode_moments(ctx, pixels, no_tiling);  // [2C, 1, h, w]
  const int64_t h = moments.size(2), w = moments.size(3);
  const Tensor latent = sample_latent(moments, {1, kLatentChannels, 1, h, w}, DType::F16, plan,
                                      vae.config().scaling_factor);  // [C, 1, h, w]
  return latent.reshape({kLatentChannels, h, w}).permute({1, 2, 0}).contiguous().reshape({1, h, w, kLatentChannels});
}

// I2I: the source image's latent [1, h, w, C] (encode_video with the image VAE; resized by plan_generation).
Tensor encode_edit_image(Context& ctx, const FluxVae& vae, const GenerationPlan& plan) {
  const Image& cropped = *plan.init_image;
  const Tensor moments = vae.encode_moments(ctx, to_signed_unit(cropped, true), FluxTiling{});  // [2C, h, w]
  const int64_t h = moments.size(1), w = moments.size(2);
  const Tensor latent =
      sample_latent(moments, {1, kLatentChannels, h, w}, DType::BF16, plan, vae.config().scaling_factor);
  return latent.permute({1, 2, 0}).contiguous().reshape({1, h, w, kLatentChannels});
}

TextCondition as_condition(const PromptEmbedding& e) {
  TextCondition c;
  c.text_embed = e.text_embed;
  c.pooled_text_embed = e.pooled_text_embed;
  c.attention_mask = e.attention_mask.reshape({e.attention_mask.numel()});
  return c;
}

uint8_t to_pixel(float v) {
  // ((x.clamp(-1, 1) + 1) * 127.5).to(torch.uint8): truncation.
  return uint8_t(int((std::clamp(v, -1.0f, 1.0f) + 1.0f) * 127.5f));
}

std::vector<Image> to_frames(const Tensor& sample) {  // [3, F, H, W]
  const int64_t F = sample.size(1), H = sample.size(2), W = sample.size(3), plane = H * W;
  const Tensor s = sample.contiguous();
  const float* d = s.data<float>();
  std::vector<Image> frames(static_cast<size_t>(F));
  for (int64_t f = 0; f < F; ++f) {
    Image& image = frames[size_t(f)];
    image.width = int(W);
    image.height = int(H);
    image.rgb.resize(size_t(plane * 3));
    for (int64_t i = 0; i < plane; ++i)
      for (int64_t c = 0; c < 3; ++c) image.rgb[size_t(i * 3 + c)] = to_pixel(d[(c * F + f) * plane + i]);
  }
  return frames;
}

}  // namespace

GenerationResult generate(Context& ctx, const ModelFiles& files, const GenerationPlan& plan,
                          const GenerationObserver& observer) {
  ModelCache models(KeepModels::off);
  return generate(ctx, files, plan, models, observer);
}

GenerationResult generate(Context& ctx, const ModelFiles& files, const GenerationPlan& plan, ModelCache& models,
                          const GenerationObserver& observer) {
  const KandinskyConfig& config = files.config;
  const int64_t T = plan.latent_frames, h = plan.height / 8, w = plan.width / 8;
  auto& log = ctx.log();
  // Loading is a stage of its own (seconds to minutes: reading, int8 quantisation, the upload to the GPU); a model
  // kept loaded skips it.
  const ModelCache::LoadObserver loading = [&observer](const ModelCache::Loaded& model, bool loaded) {
    notify(observer, "load", loaded ? 1 : 0, 1, model.component + " " + model.name);
  };

  // Text: prompt expansion, the prompt and (with CFG) the negative prompt; then the encoders are released (unless
  // `models` keeps them).
  TextCondition positive, negative;
  GenerationResult result;
  {
    const GpuMemoryReport memory(ctx, "text encoders");
    const auto start = std::chrono::steady_clock::now();
    // Image editing: the official embedder reads the source image (as the VAE sees it) through the vision tower.
    const Image* source = plan.mode == GenerationMode::i2i && !plan.text_only_edit ? &*plan.init_image : nullptr;
    const bool expansion_image = plan.expand_prompt && plan.original_image.has_value();
    const int max_length = int(config.text_embedder.qwen_max_length);
    // Without an image, a prompt whose embedding `models` kept from an earlier generation (the default negative
    // prompt) is not encoded again; when every one is kept, the text encoders are not even loaded.
    const auto kept = [&](const std::string& text) {
      return source ? std::nullopt
                    : models.kept_prompt_embedding(ctx, files.text_encoders, plan.int8_weights.text_encoder, text,
                                                   plan.content, max_length);
    };
    const std::optional<PromptEmbedding> kept_prompt = plan.expand_prompt ? std::nullopt : kept(plan.prompt);
    const std::optional<PromptEmbedding> kept_negative = plan.cfg() ? kept(plan.negative_prompt) : std::nullopt;
    std::shared_ptr<const TextEncoders> loaded_encoders;
    if (plan.expand_prompt || !kept_prompt || (plan.cfg() && !kept_negative))
      loaded_encoders = models.text_encoders(ctx, files.text_encoders, plan.int8_weights.text_encoder,
                                             source != nullptr || expansion_image, plan.expand_prompt, loading);
    const auto encode = [&](const std::string& text, const std::optional<PromptEmbedding>& kept_embedding) {
      if (kept_embedding) return *kept_embedding;
      return source ? encode_prompt(ctx, *loaded_encoders, text, plan.content, max_length, source)
                    : models.prompt_embedding(ctx, *loaded_encoders, files.text_encoders,
                                              plan.int8_weights.text_encoder, text, plan.content, max_length);
    };
    std::string prompt = plan.prompt;
    if (plan.expand_prompt) {
      notify(observer, "expand", 0, 1);
      const ExpansionMode mode = plan.mode == GenerationMode::t2v   ? ExpansionMode::t2v
                                 : plan.mode == GenerationMode::i2v ? ExpansionMode::i2v
                                 : plan.mode == GenerationMode::t2i ? ExpansionMode::t2i
                                                                    : ExpansionMode::i2i;
      const Image* image = expansion_image ? &*plan.original_image : nullptr;
      prompt = expand_prompt(ctx, *loaded_encoders, expansion_generation_config(files.text_encoders), mode, plan.prompt,
                             image, plan.rng, plan.seed);
      K5_CHECK(!prompt.empty(), "prompt expansion produced an empty prompt");
      prompt = lora_triggers(plan.loras) + prompt;  // the official pipelines add the trigger here only
      result.expanded_prompt = prompt;
      notify(observer, "expand", 1, 1);
      log.info("expanded prompt: ", prompt);
    }
    notify(observer, "text", 0, plan.cfg() ? 2 : 1);
    const PromptEmbedding embedding = encode(prompt, kept_prompt);
    notify(observer, "text", 1, plan.cfg() ? 2 : 1);
    const std::vector<float> mask = embedding.attention_mask.to_f32_vector();
    if (!source && std::count(mask.begin(), mask.end(), 1.0f) == int64_t(mask.size()))
      log.warn("the prompt fills all ", max_length, " text tokens; the rest is cut, as the official encoder cuts it");
    positive = as_condition(embedding);
    if (plan.cfg()) {
      negative = as_condition(encode(plan.negative_prompt, kept_negative));
      notify(observer, "text", 2, 2);
    }
    log.info("text conditioning in ", seconds_since(start), " s");
  }

  // Input image latents.
  Tensor first_frame, edit_latent;
  if (plan.init_image) {
    const GpuMemoryReport memory(ctx, "image encoder");
    const auto start = std::chrono::steady_clock::now();
    // Kept models: the decoder too, which the decode stage will want.
    const bool decoder = models.keep() != KeepModels::off;
    if (plan.mode == GenerationMode::i2v) {
      const auto vae = models.hunyuan_vae(ctx, files.vae, true, decoder, loading);
      notify(observer, "image", 0, 1);
      first_frame = encode_first_frame(ctx, *vae, plan);
    } else {
      const auto vae = models.flux_vae(ctx, files.vae, true, decoder, loading);
      notify(observer, "image", 0, 1);
      edit_latent = encode_edit_image(ctx, *vae, plan);
    }
    notify(observer, "image", 1, 1);
    log.info("input image encoded in ", seconds_since(start), " s");
  }

  // Sampling.
  {
    const GpuMemoryReport memory(ctx, "DiT");
    const auto dit = models.dit(ctx, config, files.dit, plan.loras, plan.int8_weights.dit, loading);
    SampleRequest request;
    // generate_sample*: torch.randn([T, h, w, 16], generator seeded with the seed, dtype=bfloat16).
    request.noise = torch_randn(plan.rng, plan.seed, {T, h, w, kLatentChannels}, DType::BF16).to(DType::F32);
    request.positive = positive;
    request.negative = negative;
    request.first_frame = first_frame;
    request.edit_latent = edit_latent;
    request.steps = plan.steps;
    request.guidance = plan.guidance;
    request.scheduler_scale = plan.scheduler_scale;
    if (plan.magcache) request.mag_ratios = config.mag_ratios;
    request.on_step = [&](int step, int steps, int skipped) {
      notify(observer, "denoise", step, steps,
             plan.magcache ? "MagCache skipped " + std::to_string(skipped) + " evaluations" : "");
    };
    notify(observer, "denoise", 0, plan.steps);
    const auto sampling = std::chrono::steady_clock::now();
    result.latents = sample(ctx, *dit, request);
    log.info("sampling: ", plan.steps, " steps in ", seconds_since(sampling), " s");
  }
  if (first_frame.defined()) {
    // generate_sample_i2v: latents[:1] = the first-frame latent, then normalize_first_frame.
    result.latents.slice(0, 0, 1).copy_from(first_frame);
    normalize_first_frames(result.latents);
  }

  // Decode: latents / scaling_factor -> VAE -> clamp -> uint8.
  {
    const GpuMemoryReport memory(ctx, "VAE");
    const auto start = std::chrono::steady_clock::now();
    Tensor sample;
    if (config.is_video()) {
      const auto vae = models.hunyuan_vae(ctx, files.vae, false, true, loading);
      notify(observer, "decode", 0, 1);
      Tensor latents = result.latents.permute({3, 0, 1, 2}).contiguous();  // [C, T, h, w]
      ops::scale(ctx, latents, float(1.0 / vae->config().scaling_factor), latents);
      HunyuanTiling tiling = HunyuanTiling::official(plan.height, plan.width);
      tiling.by_frames = plan.vae_by_frames;
      sample = vae->decode(ctx, latents, tiling);
    } else {
      const auto vae = models.flux_vae(ctx, files.vae, false, true, loading);
      notify(observer, "decode", 0, 1);
      Tensor latents = result.latents.select(0, 0).permute({2, 0, 1}).contiguous();  // [C, h, w]
      ops::scale(ctx, latents, float(1.0 / vae->config().scaling_factor), latents);
      sample = vae->decode(ctx, latents, FluxTiling{}).unsqueeze(1);  // [3, 1, H, W]
    }
    result.frames = to_frames(sample);
    notify(observer, "decode", 1, 1);
    log.info("VAE decode in ", seconds_since(start), " s");
  }
  return result;
}

}  // namespace k5
