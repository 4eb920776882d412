// `k5 generate`: a prompt (and an image for I2V / I2I) in, an MP4 or an image out, as the official
// pipelines make them (src/pipelines/generation.h). Flags follow stable-diffusion.cpp where one exists.

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>

#include "cli/command.h"
#include "cli/progress.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "pipelines/generation.h"
#include "pipelines/generation_output.h"
#include "pipelines/model_files.h"

namespace k5::cli {
namespace {

struct GenerateOptions {
  ContextOptions context;
  std::string model, output, progress = "bar", rng = "cuda", save_latents;
  ModelOverrides overrides;
  GenerationRequest request;
  std::optional<std::string> negative;
  std::optional<double> guidance, scheduler_scale;
  int64_t seed = -1;
  int crf = 5, quality = 95;
  int batch_count = 1;
  bool no_expand_prompt = false;
  std::string vae_by_frames = "auto";
  std::vector<std::string> int8_weights;
};

std::atomic<bool> interrupted{false};

extern "C" void on_interrupt(int) {
  interrupted = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

// Output `index` of a batch, named as stable-diffusion.cpp names them: the first as given, then NAME_2.EXT, ...
std::string batch_path(const std::string& path, int index) {
  if (index == 0 || path.empty()) return path;
  const std::filesystem::path given(path);
  return (given.parent_path() / (given.stem().string() + "_" + std::to_string(index + 1) + given.extension().string()))
      .string();
}

int run_generate(GenerateOptions& o) {
  auto start = std::chrono::steady_clock::now();  // of the command, then of each next output
  GenerationRequest& r = o.request;
  r.negative_prompt = o.negative;
  r.guidance = o.guidance;
  r.scheduler_scale = o.scheduler_scale;
  r.rng = parse_rng_device(o.rng);
  r.expand_prompt = !o.no_expand_prompt;
  r.vae_by_frames = parse_auto_on_off(o.vae_by_frames);
  r.int8_weights = parse_int8_weights(o.int8_weights);
  K5_CHECK(o.seed >= -1, "--seed must be a non-negative number (or -1 for a random one)");
  K5_CHECK(o.batch_count >= 1, "--batch-count must be at least 1");
  r.seed = o.seed >= 0 ? uint64_t(o.seed) : uint64_t(std::random_device{}());  // torch.randint(2**32 - 1) range
  const ProgressStyle style = parse_progress_style(o.progress);

  // Everything is checked before the first model loads.
  const ModelFiles files = find_model_files(o.model, o.overrides);
  const GenerationPlan plan = plan_generation(files.config, r);
  if (o.output.empty()) o.output = plan.is_video() ? "output.mp4" : "output.png";
  check_output_path(o.output, plan.is_video());
  K5_CHECK(o.crf >= 0 && o.crf <= 51, "--crf must be within 0..51");
  K5_CHECK(o.quality >= 1 && o.quality <= 100, "--quality must be within 1..100");

  Context ctx(o.context);
  auto& log = ctx.log();
  if (plan.mode == GenerationMode::i2i && plan.init_image && plan.text_only_edit)
    log.warn(
        "--text-only-edit: the source image conditions the latents but not the text; results differ from the "
        "official pipeline");
  log.info(generation_mode_name(plan.mode), " with ", files.config.source, ": ", plan.width, "x", plan.height,
           plan.is_video() ? ", " + std::to_string(plan.frames) + " frames" : std::string(), ", ", plan.steps,
           " steps, guidance ", plan.guidance, ", scheduler scale ", plan.scheduler_scale, ", seed ", plan.seed, " (",
           o.rng, " generator)");
  for (const LoraAdapter& lora : plan.loras) {
    log_lora(log, lora);
    if (!lora.trigger.empty() && lora.multiplier != 0.0f && !plan.expand_prompt)
      log.warn("LoRA trigger '", lora.trigger,
               "' not added: the official pipelines add it to expanded prompts only; "
               "write it into the prompt if the adapter needs it");
  }

  ProgressDisplay display(style);
  interrupted = false;
  std::signal(SIGINT, on_interrupt);
  struct RestoreSignal {
    ~RestoreSignal() { std::signal(SIGINT, SIG_DFL); }
  } restore;
  // A batch keeps its models (and its prompts' embeddings) loaded from one seed to the next while they take at most
  // half of the memory; one generation releases each after its stage.
  ModelCache models(o.batch_count > 1 ? KeepModels::automatic : KeepModels::off);
  for (int index = 0; index < o.batch_count; ++index) {
    GenerationPlan seeded = plan;
    seeded.seed = plan.seed + uint64_t(index);
    const std::string output = batch_path(o.output, index);
    const auto stop = [&] {
      if (index == 0) fail("interrupted; nothing was written");
      fail("interrupted; ", index, " of ", o.batch_count, " outputs written, ", output, " not");
    };
    if (o.batch_count > 1) log.info("generation ", index + 1, " of ", o.batch_count, ": seed ", seeded.seed);
    const GenerationResult result = generate(ctx, files, seeded, models, [&](const GenerationEvent& event) {
      if (interrupted) stop();
      display(event);
    });
    if (interrupted) stop();

    if (!o.save_latents.empty()) save_safetensors(batch_path(o.save_latents, index), {{"latents", result.latents}});
    write_generation(output, seeded, files, ctx.precision(), result, o.crf, o.quality);
    display.finished(output, seeded.seed, seconds_since(start));
    start = std::chrono::steady_clock::now();
  }
  return 0;
}

}  // namespace

K5_COMMAND("generate", "text/image -> video or image with an official Kandinsky 5 model folder",
           [](CLI::App& app) -> std::function<int()> {
             auto o = std::make_shared<GenerateOptions>();
             add_context_options(app, o->context);
             GenerationRequest& r = o->request;
             app.add_option("-m,--model", o->model,
                            "model folder (official layout: configs/*.yaml + weights/) or an official config .yaml")
                 ->required();
             app.add_option("--config", o->overrides.config, "config name or path when the folder has several");
             app.add_option("--dit", o->overrides.dit, "DiT .safetensors (overrides the config's)");
             app.add_option("--vae", o->overrides.vae, "VAE folder (overrides the config's)");
             app.add_option("--text-encoder", o->overrides.text_encoder, "Qwen2.5-VL folder (overrides)");
             app.add_option("--text-encoder2", o->overrides.text_encoder2, "CLIP text folder (overrides)");
             app.add_option("-p,--prompt", r.prompt, "the prompt")->required();
             app.add_option("-n,--negative-prompt", o->negative,
                            "negative prompt (default: the official one for video, empty for images)");
             app.add_option("-o,--output", o->output,
                            "output .mp4 (video) or .png/.jpg/.webp (image); "
                            "default output.mp4 / output.png");
             app.add_option("-W,--width", r.width, "width in pixels (one of the model's sizes)");
             app.add_option("-H,--height", r.height, "height in pixels (one of the model's sizes)");
             app.add_option("--duration", r.duration, "video length in seconds (default 5, or 10 for 10 s models)");
             app.add_option("--frames", r.frames, "video frames, 4k + 1 (instead of --duration)");
             app.add_option("--steps", r.steps, "sampling steps (default: the config's)");
             app.add_option("--cfg-scale", o->guidance, "classifier-free guidance weight (default: the config's)");
             app.add_option("--scheduler-scale", o->scheduler_scale,
                            "time-grid shift (default: the config's, else 10 video / 3 images)");
             app.add_option("-s,--seed", o->seed, "seed (default -1: random, printed and stored in the file)");
             app.add_option("-b,--batch-count", o->batch_count,
                            "outputs to make, with seeds SEED, SEED+1, ... (default 1); the second is NAME_2.EXT, the "
                            "third NAME_3.EXT, ...");
             app.add_option("--rng", o->rng, "noise generator: cuda (as the official GPU run; default) or cpu")
                 ->check(CLI::IsMember({"cuda", "cpu"}));
             app.add_option("-i,--init-img", r.init_image,
                            "input image: I2V first frame or I2I source (PNG/JPEG/WebP)");
             app.add_option(
                    "--vae-by-frames", o->vae_by_frames,
                    "video decode frame by frame: bounded memory, ~1.6x the convolution work; auto (default: when a "
                    "whole tile would need over 3/4 of the free RAM or GPU memory), on or off")
                 ->check(CLI::IsMember({"auto", "on", "off"}));
             add_lora_option(app, r.loras);
             add_int8_weights_option(app, o->int8_weights);
             app.add_flag("--magcache", r.magcache, "MagCache: skip DiT blocks on steps the config's ratios allow");
             app.add_flag("--text-only-edit", r.text_only_edit,
                          "I2I: condition the text on the prompt alone, not the source image (differs from official)");
             app.add_flag("--no-expand-prompt,--no-expand", o->no_expand_prompt,
                          "use the prompt as written (the official default expands it with Qwen2.5-VL first)");
             app.add_option("--progress", o->progress, "bar (default), json (one object per line) or none")
                 ->check(CLI::IsMember({"bar", "json", "none"}));
             app.add_option("--crf", o->crf, "MP4 quality: x264 CRF, 0 = lossless .. 51 (default 5, as official)");
             app.add_option("--quality", o->quality, "JPEG/WebP quality 1..100 (default 95)");
             app.add_option("--save-latents", o->save_latents, "also write the sampled latents (.safetensors)");
             return [o]() { return run_generate(*o); };
           });

}  // namespace k5::cli
