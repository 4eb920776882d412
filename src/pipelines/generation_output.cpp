#include "pipelines/generation_output.h"

#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "io/image_file.h"
#include "io/video_file.h"

namespace k5 {

void check_output_path(const std::string& path, bool video) {
  namespace fs = std::filesystem;
  std::string extension = fs::path(path).extension().string();
  for (char& c : extension) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (video)
    K5_CHECK(extension == ".mp4", "--output ", path, ": this model makes videos; use a .mp4 file name");
  else
    K5_CHECK(extension == ".png" || extension == ".jpg" || extension == ".jpeg" || extension == ".webp", "--output ",
             path, ": this model makes images; use .png, .jpg or .webp");
  const fs::path folder = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : fs::path(".");
  K5_CHECK(fs::is_directory(folder), "--output ", path, ": folder ", folder.string(), " does not exist");
  K5_CHECK(::access(folder.c_str(), W_OK) == 0, "--output ", path, ": folder ", folder.string(), " is not writable");
}

void write_generation(const std::string& path, const GenerationPlan& plan, const ModelFiles& files, Precision precision,
                      const GenerationResult& result, int crf, int quality) {
  const auto metadata = generation_metadata(plan, files, precision, result.expanded_prompt);
  if (plan.is_video())
    write_mp4(path, result.frames, VideoWriteOptions{24, crf, metadata});
  else
    write_image(path, result.frames.front(), metadata, quality);
}

std::vector<std::pair<std::string, std::string>> generation_metadata(const GenerationPlan& plan,
                                                                     const ModelFiles& files, Precision precision,
                                                                     const std::string& expanded_prompt) {
  auto number = [](double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  std::vector<std::pair<std::string, std::string>> m{
      {"prompt", plan.prompt},
      {"negative_prompt", plan.negative_prompt},
      {"seed", std::to_string(plan.seed)},
      {"model", std::filesystem::path(files.config.source).stem().string()},
      {"checkpoint", std::filesystem::path(files.dit).filename().string()},
      {"mode", generation_mode_name(plan.mode)},
      {"steps", std::to_string(plan.steps)},
      {"guidance", number(plan.guidance)},
      {"scheduler_scale", number(plan.scheduler_scale)},
      {"size", std::to_string(plan.width) + "x" + std::to_string(plan.height)},
      {"rng", plan.rng == RngDevice::cuda ? "cuda" : "cpu"},
      {"precision", precision == Precision::bf16 ? "bf16" : "fp32"},
      {"magcache", plan.magcache ? "on" : "off"},
      {"software", "k5 " K5_VERSION},
  };
  m.emplace_back("prompt_expansion", plan.expand_prompt ? "on" : "off");
  if (!plan.loras.empty()) {
    std::string loras;
    for (const LoraAdapter& lora : plan.loras)
      loras += (loras.empty() ? "" : ", ") + lora.given_path + ":" + number(lora.multiplier);
    m.emplace_back("lora", loras);
  }
  if (plan.int8_weights.any()) m.emplace_back("weights_int8", int8_weights_name(plan.int8_weights));
  if (!expanded_prompt.empty()) m.emplace_back("expanded_prompt", expanded_prompt);
  if (plan.is_video()) {
    m.emplace_back("frames", std::to_string(plan.frames));
    m.emplace_back("comment", plan.prompt);  // the MP4 tag video players show
  }
  return m;
}

}  // namespace k5
