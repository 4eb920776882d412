#include "pipelines/model_cache.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/system_memory.h"
#include "io/file_stamp.h"
#include "io/safetensors.h"

namespace k5 {
namespace fs = std::filesystem;

KeepModels parse_keep_models(const std::string& text) {
  if (text == "off") return KeepModels::off;
  if (text == "on") return KeepModels::on;
  if (text == "auto") return KeepModels::automatic;
  fail("--keep-models '", text, "': choose auto, on or off");
}

const char* keep_models_name(KeepModels keep) {
  switch (keep) {
    case KeepModels::off:
      return "off";
    case KeepModels::on:
      return "on";
    case KeepModels::automatic:
      return "auto";
  }
  return "?";
}

namespace {

enum : unsigned { kVision = 1, kLmHead = 2 };    // text encoders' parts
enum : unsigned { kEncoder = 1, kDecoder = 2 };  // VAEs' parts

// The files a model is read from (files as given; a folder's own *.safetensors files): their bytes, and their stamps
// (io/file_stamp.h), so that a file replaced on disk is loaded again rather than served stale.
struct ModelFilesSeen {
  int64_t bytes = 0;
  std::string stamp;
};
ModelFilesSeen files_seen(const std::vector<std::string>& places) {
  ModelFilesSeen seen;
  std::error_code error;
  const auto add = [&](const fs::path& file) {
    seen.bytes += int64_t(fs::file_size(file, error));
    seen.stamp += '\n';
    seen.stamp += file_stamp(file.string());
  };
  for (const std::string& place : places) {
    if (place.empty()) continue;
    if (fs::is_regular_file(place, error)) {
      add(place);
      continue;
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(place, error))
      if (entry.path().extension() == ".safetensors" && entry.is_regular_file(error)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) add(file);
  }
  return seen;
}

// What every cache of the process keeps, per device: the half-of-memory budget is the process's, however many
// models of the C API keep models.
std::atomic<int64_t> kept_in_process[2];
std::atomic<int64_t>& kept_on(Device device) { return kept_in_process[device == Device::CUDA ? 1 : 0]; }

// What a model loaded from BF16 files of `file_bytes` should hold before it is measured: int8 layers about half;
// fp32 twice; on the CPU in bf16, weights used in place from the mapped file (`in_place`) hardly anything.
int64_t expected_bytes(const Context& ctx, int64_t file_bytes, bool int8_weights, bool in_place) {
  double factor = ctx.precision() == Precision::fp32 ? 2.0 : 1.0;
  if (int8_weights) factor *= 0.55;
  if (ctx.device() == Device::CPU && ctx.precision() == Precision::bf16 && !int8_weights && in_place) factor = 0.1;
  return int64_t(double(file_bytes) * factor);
}

std::string variant_of(const Context& ctx) {
  return std::string(device_name(ctx.device())) + " " + precision_name(ctx.precision());
}

std::string text_encoders_slot(const TextEncoderPaths& paths) {
  return "text-encoders " + paths.qwen_dir + "\n" + paths.clip_dir + "\n" + paths.qwen_tokenizer_dir + "\n" +
         paths.clip_tokenizer_dir;
}

std::string text_encoders_variant(const Context& ctx, const ModelFilesSeen& files, bool int8_weights) {
  return variant_of(ctx) + (int8_weights ? " int8" : "") + files.stamp;
}

ModelFilesSeen text_encoder_files(const TextEncoderPaths& paths) {
  return files_seen({paths.qwen_dir, paths.clip_dir});
}

std::string gib(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f GiB", double(bytes) / double(1ll << 30));
  return text;
}

}  // namespace

ModelCache::ModelCache(KeepModels keep, int64_t budget_bytes) : keep_(keep), budget_bytes_(budget_bytes) {}

int64_t ModelCache::budget(Device device) {
  if (budget_bytes_ < 0) {
    const int64_t total = total_memory_bytes(device);
    budget_bytes_ = total > 0 ? total / 2 : 0;
  }
  return budget_bytes_;
}

ModelCache::~ModelCache() { clear(); }

int64_t ModelCache::kept_bytes(Device device) const { return kept_on(device).load(); }

void ModelCache::erase(std::vector<Entry>::iterator entry) {
  kept_on(entry->device) -= entry->info.bytes;
  entries_.erase(entry);
}

std::shared_ptr<const void> ModelCache::get(Context& ctx, const std::string& slot, const std::string& variant,
                                            unsigned parts, Loaded info, int64_t estimate, const Load& load,
                                            const LoadObserver& observer) {
  auto& log = ctx.log();
  unsigned load_parts = parts;
  const auto measured_key = [&] { return slot + "\n" + variant + "\n" + std::to_string(load_parts); };
  {
    std::lock_guard lock(mutex_);
    const auto same_slot = [&slot](const Entry& entry) { return entry.slot == slot; };
    const auto kept = std::find_if(entries_.begin(), entries_.end(), same_slot);
    if (kept != entries_.end()) {
      if (kept->variant == variant && (kept->parts & parts) == parts) {
        kept->last_use = ++uses_;
        log.info(info.component, " ", info.name, ": loaded already (", gib(kept->info.bytes), ")");
        return kept->model;
      }
      if (kept->variant == variant) {  // the same model lacking a part: load it with every part either use needs
        load_parts |= kept->parts;
        estimate = std::max(estimate, kept->info.bytes);
      }
      erase(kept);  // before the replacement loads, not beside it
    }
    if (const auto known = measured_.find(measured_key()); known != measured_.end()) estimate = known->second;
    if (keep_ == KeepModels::automatic) {
      const int64_t limit = budget(ctx.device());
      while (!entries_.empty() && kept_bytes(ctx.device()) + estimate > limit) {
        const auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                             [](const Entry& a, const Entry& b) { return a.last_use < b.last_use; });
        log.info(oldest->info.component, " ", oldest->info.name, " released to make room");
        erase(oldest);
      }
    }
  }

  if (observer) observer(info, false);
  const auto start = std::chrono::steady_clock::now();
  const int64_t before = thread_allocated_bytes(ctx.device());
  std::shared_ptr<const void> model = load(load_parts);
  info.bytes = std::max<int64_t>(0, thread_allocated_bytes(ctx.device()) - before);
  const std::string held = concat(info.component, " ", info.name, ": loaded in ", seconds_since(start), " s, ",
                                  gib(info.bytes), " on ", device_name(ctx.device()));
  if (keep_ == KeepModels::off) {
    log.info(held);
  } else {
    std::lock_guard lock(mutex_);
    if (measured_.size() >= kMeasuredKept) measured_.clear();  // bounded: clients may ask for many LoRA multipliers
    measured_[measured_key()] = info.bytes;
    if (keep_ == KeepModels::on || kept_bytes(ctx.device()) + info.bytes <= budget(ctx.device())) {
      entries_.push_back(Entry{info, slot, variant, load_parts, ctx.device(), model, ++uses_});
      kept_on(ctx.device()) += info.bytes;
      log.info(held, ", kept loaded");
    } else {
      log.info(held, ", released after its stage (it does not fit beside the models kept)");
    }
  }
  if (observer) observer(info, true);
  return model;
}

std::shared_ptr<const TextEncoders> ModelCache::text_encoders(Context& ctx, const TextEncoderPaths& paths,
                                                              bool int8_weights, bool with_vision, bool with_lm_head,
                                                              const LoadObserver& observer) {
  const ModelFilesSeen files = text_encoder_files(paths);
  const std::string slot = text_encoders_slot(paths);
  const std::string variant = text_encoders_variant(ctx, files, int8_weights);
  const unsigned parts = (with_vision ? kVision : 0u) | (with_lm_head ? kLmHead : 0u);
  const int64_t estimate = expected_bytes(ctx, files.bytes, int8_weights, true);
  const Loaded info{"text-encoders", "Qwen2.5-VL + CLIP", 0};
  return std::static_pointer_cast<const TextEncoders>(get(
      ctx, slot, variant, parts, info, estimate,
      [&](unsigned load_parts) -> std::shared_ptr<const void> {
        const std::optional<QwenWeights> weights =
            int8_weights ? std::optional<QwenWeights>(QwenWeights::int8) : std::nullopt;
        return std::make_shared<const TextEncoders>(TextEncoders::load(ctx, paths, weights, (load_parts & kVision) != 0,
                                                                       (load_parts & kLmHead) != 0, ctx.device()));
      },
      observer));
}

std::shared_ptr<const CrossDit> ModelCache::dit(Context& ctx, const KandinskyConfig& config,
                                                const std::string& weights_path, const std::vector<LoraAdapter>& loras,
                                                bool int8_weights, const LoadObserver& observer) {
  const ModelFilesSeen files = files_seen({weights_path, config.source});
  std::string variant = variant_of(ctx) + " " + config.source + (int8_weights ? " int8" : "") + files.stamp;
  for (const LoraAdapter& lora : loras) {
    char multiplier[32];
    std::snprintf(multiplier, sizeof(multiplier), "%a", double(lora.multiplier));  // exact
    variant += "\n" + lora.path + " " + multiplier + "\n" + lora.file_stamp;       // as read, not as on disk now
  }
  const int64_t estimate = expected_bytes(ctx, files.bytes, int8_weights, loras.empty());
  const Loaded info{"dit", fs::path(weights_path).filename().string(), 0};
  return std::static_pointer_cast<const CrossDit>(get(
      ctx, "dit " + weights_path, variant, 0, info, estimate,
      [&](unsigned) -> std::shared_ptr<const void> {
        return std::make_shared<const CrossDit>(CrossDit::load(
            config, weights_path, ctx.precision(), DitAttention::automatic, ctx.device(), loras, int8_weights));
      },
      observer));
}

namespace {

// Both VAEs: a config.json and the weights in one folder, an encoder and a decoder to load or not.
template <typename Vae, typename VaeConfig>
std::shared_ptr<const Vae> cached_vae(ModelCache& cache, Context& ctx, const std::string& folder, const char* family,
                                      bool with_encoder, bool with_decoder, const ModelCache::LoadObserver& observer) {
  const unsigned parts = (with_encoder ? kEncoder : 0u) | (with_decoder ? kDecoder : 0u);
  const ModelCache::Loaded info{"vae", family, 0};
  const ModelFilesSeen files = files_seen({folder, (fs::path(folder) / "config.json").string()});
  const int64_t estimate = expected_bytes(ctx, files.bytes, false, false);
  return std::static_pointer_cast<const Vae>(cache.get(
      ctx, "vae " + folder, variant_of(ctx) + " " + family + files.stamp, parts, info, estimate,
      [&](unsigned load_parts) -> std::shared_ptr<const void> {
        return std::make_shared<const Vae>(VaeConfig::from_json_file((fs::path(folder) / "config.json").string()),
                                           Checkpoint::open(folder), (load_parts & kEncoder) != 0,
                                           (load_parts & kDecoder) != 0, ctx.device());
      },
      observer));
}

}  // namespace

std::shared_ptr<const HunyuanVae> ModelCache::hunyuan_vae(Context& ctx, const std::string& folder, bool with_encoder,
                                                          bool with_decoder, const LoadObserver& observer) {
  return cached_vae<HunyuanVae, HunyuanVaeConfig>(*this, ctx, folder, "HunyuanVideo", with_encoder, with_decoder,
                                                  observer);
}

std::shared_ptr<const FluxVae> ModelCache::flux_vae(Context& ctx, const std::string& folder, bool with_encoder,
                                                    bool with_decoder, const LoadObserver& observer) {
  return cached_vae<FluxVae, FluxVaeConfig>(*this, ctx, folder, "FLUX", with_encoder, with_decoder, observer);
}

namespace {

std::string prompt_key(const Context& ctx, const TextEncoderPaths& paths, bool int8_weights, std::string_view prompt,
                       PromptContent content, int max_length) {
  return concat(text_encoders_slot(paths), "\n", text_encoders_variant(ctx, text_encoder_files(paths), int8_weights),
                "\n", prompt_content_name(content), " ", max_length, "\n", prompt);
}

}  // namespace

std::optional<PromptEmbedding> ModelCache::kept_prompt_embedding(Context& ctx, const TextEncoderPaths& paths,
                                                                 bool int8_weights, std::string_view prompt,
                                                                 PromptContent content, int max_length) {
  if (keep_ == KeepModels::off) return std::nullopt;
  return kept_prompt(ctx, prompt_key(ctx, paths, int8_weights, prompt, content, max_length));
}

std::optional<PromptEmbedding> ModelCache::kept_prompt(Context& ctx, const std::string& key) {
  std::lock_guard lock(mutex_);
  for (KeptPrompt& kept : prompts_)
    if (kept.key == key) {
      kept.last_use = ++uses_;
      ctx.log().info("prompt embedding kept from an earlier generation");
      return kept.embedding;
    }
  return std::nullopt;
}

PromptEmbedding ModelCache::prompt_embedding(Context& ctx, const TextEncoders& encoders, const TextEncoderPaths& paths,
                                             bool int8_weights, std::string_view prompt, PromptContent content,
                                             int max_length) {
  if (keep_ == KeepModels::off) return encode_prompt(ctx, encoders, prompt, content, max_length);
  // One key for the lookup and the store (the files' stamps as they are now, just after text_encoders() checked
  // them).
  std::string key = prompt_key(ctx, paths, int8_weights, prompt, content, max_length);
  if (auto kept = kept_prompt(ctx, key)) return *kept;
  PromptEmbedding embedding = encode_prompt(ctx, encoders, prompt, content, max_length);
  std::lock_guard lock(mutex_);
  if (prompts_.size() >= kPromptsKept)
    prompts_.erase(std::min_element(prompts_.begin(), prompts_.end(),
                                    [](const KeptPrompt& a, const KeptPrompt& b) { return a.last_use < b.last_use; }));
  prompts_.push_back(KeptPrompt{std::move(key), embedding, ++uses_});
  return embedding;
}

void ModelCache::clear() {
  std::lock_guard lock(mutex_);
  while (!entries_.empty()) erase(entries_.end() - 1);
  prompts_.clear();
  measured_.clear();
}

std::vector<ModelCache::Loaded> ModelCache::loaded() const {
  std::lock_guard lock(mutex_);
  std::vector<const Entry*> order;
  for (const Entry& entry : entries_) order.push_back(&entry);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) { return a->last_use > b->last_use; });
  std::vector<Loaded> out;
  for (const Entry* entry : order) out.push_back(entry->info);
  return out;
}

}  // namespace k5
