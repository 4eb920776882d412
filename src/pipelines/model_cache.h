// The models a generation loads (text encoders, DiT, VAEs), kept loaded between generations when memory allows:
// `k5 serve` and the C API run many generations on one model folder, and loading costs the quantisation of int8
// weights, the upload to the GPU, LoRA merges, fp32 copies (bf16 weights on the CPU are used in place from the
// memory-mapped file and cost little to load again).
//
// One model per slot (a checkpoint or a folder); another variant of it (other LoRA adapters, int8 or not) replaces
// it. A variant that lacks a part (Qwen2.5-VL's vision tower, a VAE encoder) is loaded again with the parts both
// uses need, so the next generation finds them all.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/context.h"
#include "io/kandinsky_config.h"
#include "models/crossdit/crossdit.h"
#include "models/crossdit/lora.h"
#include "models/vae_flux/flux_vae.h"
#include "models/vae_hunyuan/hunyuan_vae.h"
#include "pipelines/text_conditioning.h"

namespace k5 {

// off: every model is released when its stage ends (the least memory; `k5 generate`).
// on: every model stays loaded.
// automatic: models stay loaded while together (those of every cache of the process) they hold at most half of the
// memory of the device they run on (the GPU's, or the RAM k5 may use); before a model loads, the least recently
// used ones are released until it fits beside them, and a model that would not fit is released after its stage.
enum class KeepModels { off, on, automatic };
KeepModels parse_keep_models(const std::string& text);  // "off", "on", "auto"; a one-line error otherwise
const char* keep_models_name(KeepModels keep);

class ModelCache {
 public:
  // `budget_bytes` < 0: half of total_memory_bytes(device) (KeepModels::automatic only).
  explicit ModelCache(KeepModels keep = KeepModels::off, int64_t budget_bytes = -1);
  ~ModelCache();
  ModelCache(const ModelCache&) = delete;
  ModelCache& operator=(const ModelCache&) = delete;

  struct Loaded {
    std::string component;  // "text-encoders", "dit", "vae"
    std::string name;       // the DiT's file name, "Qwen2.5-VL + CLIP", "HunyuanVideo" or "FLUX"
    int64_t bytes = 0;      // what it holds on the device it runs on (measured when it loaded)
  };
  // Told when a model starts loading (`loaded` false) and when it has loaded (true, with its bytes); may throw to
  // stop the caller.
  using LoadObserver = std::function<void(const Loaded& model, bool loaded)>;

  // Each returns the model loaded as asked (at least the parts asked for), from the cache or freshly loaded, on
  // ctx.device() with ctx.precision().
  std::shared_ptr<const TextEncoders> text_encoders(Context& ctx, const TextEncoderPaths& paths, bool int8_weights,
                                                    bool with_vision, bool with_lm_head,
                                                    const LoadObserver& observer = {});
  std::shared_ptr<const CrossDit> dit(Context& ctx, const KandinskyConfig& config, const std::string& weights_path,
                                      const std::vector<LoraAdapter>& loras, bool int8_weights,
                                      const LoadObserver& observer = {});
  std::shared_ptr<const HunyuanVae> hunyuan_vae(Context& ctx, const std::string& folder, bool with_encoder,
                                                bool with_decoder, const LoadObserver& observer = {});
  std::shared_ptr<const FluxVae> flux_vae(Context& ctx, const std::string& folder, bool with_encoder, bool with_decoder,
                                          const LoadObserver& observer = {});

  // encode_prompt without an image, by the text encoders text_encoders() gives for `paths` and `int8_weights`,
  // computed once while this cache keeps models (KeepModels::on or automatic): the default negative prompt of every
  // job, a prompt repeated with other seeds. The result's tensors are shared: read them only. At most
  // kPromptsKept are kept, the least recently used dropped first; they outlive the models (exact either way).
  static constexpr size_t kPromptsKept = 8;
  PromptEmbedding prompt_embedding(Context& ctx, const TextEncoders& encoders, const TextEncoderPaths& paths,
                                   bool int8_weights, std::string_view prompt, PromptContent content, int max_length);
  // The kept embedding, if there is one (no text encoder needs to load for it).
  std::optional<PromptEmbedding> kept_prompt_embedding(Context& ctx, const TextEncoderPaths& paths, bool int8_weights,
                                                       std::string_view prompt, PromptContent content, int max_length);

  // Releases every model and prompt embedding (models a running stage still uses go when it ends).
  void clear();

  std::vector<Loaded> loaded() const;  // most recently used first; safe from any thread
  KeepModels keep() const { return keep_; }

  // What the getters above share: the model in `slot` when it is `variant` with at least `parts` (bits of optional
  // parts); else `load(parts | the parts the slot's model had)`, after releasing what the policy asks. `estimate`:
  // the bytes it should take on ctx.device(), unless an earlier load of it measured them.
  using Load = std::function<std::shared_ptr<const void>(unsigned parts)>;
  static constexpr size_t kMeasuredKept = 64;  // sizes remembered for later estimates
  std::shared_ptr<const void> get(Context& ctx, const std::string& slot, const std::string& variant, unsigned parts,
                                  Loaded info, int64_t estimate, const Load& load, const LoadObserver& observer = {});

 private:
  struct Entry {
    Loaded info;
    std::string slot;     // one model per slot
    std::string variant;  // what else must match for it to serve
    unsigned parts = 0;   // the optional parts it has (vision tower, lm_head, VAE encoder, decoder)
    Device device = Device::CPU;
    std::shared_ptr<const void> model;
    uint64_t last_use = 0;
  };
  std::optional<PromptEmbedding> kept_prompt(Context& ctx, const std::string& key);
  int64_t budget(Device device);
  int64_t kept_bytes(Device device) const;         // by every cache of the process
  void erase(std::vector<Entry>::iterator entry);  // under mutex_

  KeepModels keep_;
  int64_t budget_bytes_;
  mutable std::mutex mutex_;  // guards entries_, measured_ and prompts_ (loaded() may come from another thread)
  std::vector<Entry> entries_;
  std::map<std::string, int64_t> measured_;  // slot, variant and parts -> the bytes it took when it last loaded
  struct KeptPrompt {
    std::string key;  // the encoders' slot and variant, content, length, prompt
    PromptEmbedding embedding;
    uint64_t last_use = 0;
  };
  std::vector<KeptPrompt> prompts_;
  uint64_t uses_ = 0;
};

}  // namespace k5
