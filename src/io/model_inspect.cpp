#include "io/model_inspect.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>

#include "core/error.h"

namespace k5 {

namespace fs = std::filesystem;

const char* component_kind_name(ComponentKind kind) {
  switch (kind) {
    case ComponentKind::CrossDiT:
      return "CrossDiT";
    case ComponentKind::HunyuanVideoVae:
      return "HunyuanVideo VAE";
    case ComponentKind::FluxVae:
      return "FLUX VAE";
    case ComponentKind::Qwen25VL:
      return "Qwen2.5-VL";
    case ComponentKind::ClipText:
      return "CLIP text encoder";
    case ComponentKind::CrossDiTLora:
      return "CrossDiT LoRA adapter";
    case ComponentKind::Unknown:
      break;
  }
  return "unknown component";
}

int64_t ComponentReport::dimension(const std::string& name, int64_t fallback) const {
  for (const auto& [key, value] : dimensions)
    if (key == name) return value;
  return fallback;
}

namespace {

// Name -> info lookups over one checkpoint, tolerant of a common prefix ("model.", "vae.", "_orig_mod.").
class TensorTable {
 public:
  explicit TensorTable(const std::vector<TensorInfo>& tensors) {
    for (const auto& info : tensors) by_name_[info.name] = &info;
  }

  const TensorInfo* find(const std::string& name) const {
    const auto found = by_name_.find(name);
    return found == by_name_.end() ? nullptr : found->second;
  }
  // The prefix under which `suffix` exists as a tensor of rank `rank` (-1: any), if it does.
  std::optional<std::string> prefix_of(const std::string& suffix, int rank = -1) const {
    for (const auto& [name, info] : by_name_) {
      if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      const std::string prefix = name.substr(0, name.size() - suffix.size());
      if (!prefix.empty() && prefix.back() != '.') continue;
      if (rank >= 0 && int(info->shape.size()) != rank) continue;
      return prefix;
    }
    return std::nullopt;
  }
  // Extent `axis` of tensor `name`, or -1 when absent or of lower rank.
  int64_t extent(const std::string& name, size_t axis) const {
    const TensorInfo* info = find(name);
    return info && info->shape.size() > axis ? info->shape[axis] : -1;
  }
  int rank(const std::string& name) const {
    const TensorInfo* info = find(name);
    return info ? int(info->shape.size()) : -1;
  }
  // 1 + the largest N among names "<prefix>N.<anything>"; 0 when there are none.
  int64_t count_indexed(const std::string& prefix) const {
    int64_t count = 0;
    for (auto it = by_name_.lower_bound(prefix);
         it != by_name_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      const std::string rest = it->first.substr(prefix.size());
      const size_t dot = rest.find('.');
      if (dot == 0 || dot == std::string::npos) continue;
      const std::string digits = rest.substr(0, dot);
      if (digits.size() > 6 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
      count = std::max<int64_t>(count, std::stoll(digits) + 1);
    }
    return count;
  }
  bool has_prefix(const std::string& prefix) const {
    const auto it = by_name_.lower_bound(prefix);
    return it != by_name_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
  }

 private:
  std::map<std::string, const TensorInfo*> by_name_;
};

constexpr uint64_t kFloatBytes = 4;  // activations are computed in fp32 (bf16 mode stores some in bf16)

bool classify_crossdit(const TensorTable& table, ComponentReport& report) {
  const auto prefix = table.prefix_of("visual_embeddings.in_layer.weight", 2);
  if (!prefix || !table.find(*prefix + "time_embeddings.in_layer.weight") ||
      !table.has_prefix(*prefix + "visual_transformer_blocks."))
    return false;
  const std::string& p = *prefix;
  const int64_t model_dim = table.extent(p + "visual_embeddings.in_layer.weight", 0);
  const int64_t visual_in = table.extent(p + "visual_embeddings.in_layer.weight", 1);
  const int64_t time_dim = table.extent(p + "time_embeddings.out_layer.weight", 0);
  const int64_t text_dim = table.extent(p + "text_embeddings.in_layer.weight", 1);
  const int64_t pooled_dim = table.extent(p + "pooled_text_embeddings.in_layer.weight", 1);
  const int64_t ff_dim = table.extent(p + "visual_transformer_blocks.0.feed_forward.in_layer.weight", 0);
  const int64_t head_dim = table.extent(p + "visual_transformer_blocks.0.self_attention.query_norm.weight", 0);
  const int64_t text_blocks = table.count_indexed(p + "text_transformer_blocks.");
  const int64_t visual_blocks = table.count_indexed(p + "visual_transformer_blocks.");
  // out_layer maps model_dim -> prod(patch) * out_visual_dim, and every Kandinsky 5 model predicts the
  // 16-channel latent velocity, which pins the patch volume (4 for patch (1, 2, 2)).
  const int64_t out_features = table.extent(p + "out_layer.out_layer.weight", 0);
  const int64_t out_channels = 16;
  const int64_t patch_volume = out_features > 0 && out_features % out_channels == 0 ? out_features / out_channels : -1;
  const int64_t input_channels = patch_volume > 0 && visual_in % patch_volume == 0 ? visual_in / patch_volume : -1;

  report.kind = ComponentKind::CrossDiT;
  report.dimensions = {{"model_dim", model_dim},
                       {"ff_dim", ff_dim},
                       {"time_dim", time_dim},
                       {"head_dim", head_dim},
                       {"heads", head_dim > 0 ? model_dim / head_dim : -1},
                       {"text_blocks", text_blocks},
                       {"visual_blocks", visual_blocks},
                       {"in_text_dim", text_dim},
                       {"in_text_dim2", pooled_dim},
                       {"patch_volume", patch_volume},
                       {"input_channels", input_channels}};

  // Published sizes (spec/dit.md): Lite video 1792 / head 64, Lite image 2560 / head 128, Pro 4096 / head 128.
  std::string family;
  bool image = false, known = true;
  if (model_dim == 1792 && head_dim == 64) {
    family = "Lite video";
  } else if (model_dim == 2560 && head_dim == 128) {
    family = "Lite image";
    image = true;
  } else if (model_dim == 4096 && head_dim == 128) {
    family = "Pro video";
  } else {
    family = concat("custom size: model_dim ", model_dim, ", ", visual_blocks, " visual blocks");
    known = false;
  }
  std::string modes;
  if (input_channels == 16)
    modes = known ? (image ? "T2I" : "T2V") : "text-to-image/video, 16 input channels";
  else if (input_channels == 33)
    modes = known ? (image ? "I2I: channel-concatenated instruction image, 33 input channels"
                           : "T2V + I2V: visual_cond, 33 input channels")
                  : "33 input channels: visual_cond video or channel-instruct image model";
  else
    modes = concat("unexpected input width ", visual_in);
  report.variant = family + " (" + modes + ")";

  // Tokens after patching: a 5 s 512x768 video is 31 latent frames of 64x96, patched (1, 2, 2) to 31x32x48;
  // a 1024x1024 image is 128x128 latents -> 64x64 tokens. Working set ~ tokens x (ff_dim + 8 model_dim).
  const uint64_t tokens = image ? 64 * 64 : 31 * 32 * 48;
  report.workload = image ? "a 1024x1024 image" : "a 5 s 512x768 video";
  if (model_dim > 0 && ff_dim > 0) report.activation_bytes = tokens * uint64_t(ff_dim + 8 * model_dim) * kFloatBytes;
  return true;
}

// PEFT LoRA weights of CrossDiT layers (models/crossdit/lora.h): "<layer>.lora_A[.default].weight" [r, in].
bool classify_crossdit_lora(const std::vector<TensorInfo>& tensors, ComponentReport& report) {
  int64_t layers = 0, min_rank = 0, max_rank = 0, last_visual_block = -1, model_dim = -1;
  bool dit_names = false;
  for (const TensorInfo& info : tensors) {
    const size_t at = info.name.find(".lora_A.");
    if (at == std::string::npos || info.shape.size() != 2) continue;
    const std::string layer = info.name.substr(0, at);
    const int64_t rank = info.shape[0];
    min_rank = layers ? std::min(min_rank, rank) : rank;
    max_rank = std::max(max_rank, rank);
    ++layers;
    dit_names |= layer.find("visual_transformer_blocks.") != std::string::npos ||
                 layer.find("text_transformer_blocks.") != std::string::npos;
    const std::string visual = "visual_transformer_blocks.";
    const size_t block = layer.find(visual);
    if (block != std::string::npos)
      last_visual_block = std::max<int64_t>(last_visual_block, std::atoll(layer.c_str() + block + visual.size()));
    if (layer.ends_with(".to_query")) model_dim = info.shape[1];
  }
  if (!layers || !dit_names) return false;
  report.kind = ComponentKind::CrossDiTLora;
  report.dimensions = {{"layers", layers}, {"rank", max_rank}};
  if (last_visual_block >= 0) report.dimensions.push_back({"last_visual_block", last_visual_block});
  if (model_dim > 0) report.dimensions.push_back({"model_dim", model_dim});
  const std::string ranks =
      min_rank == max_rank ? concat("rank ", max_rank) : concat("ranks ", min_rank, "..", max_rank);
  report.variant = concat("PEFT, ", ranks, ", ", layers, layers == 1 ? " layer" : " layers");
  return true;
}

// Channels of the first encoder level, from the first down block's first conv (or conv_in).
int64_t first_level_channels(const TensorTable& table, const std::string& conv_in) { return table.extent(conv_in, 0); }

bool classify_hunyuan_vae(const TensorTable& table, ComponentReport& report) {
  auto prefix = table.prefix_of("decoder.conv_in.conv.weight", 5);
  if (!prefix) prefix = table.prefix_of("encoder.conv_in.conv.weight", 5);
  if (!prefix) return false;
  const std::string& p = *prefix;
  const int64_t latent = table.rank(p + "decoder.conv_in.conv.weight") == 5
                             ? table.extent(p + "decoder.conv_in.conv.weight", 1)
                             : table.extent(p + "encoder.conv_out.conv.weight", 0) / 2;
  const bool has_encoder = table.has_prefix(p + "encoder."), has_decoder = table.has_prefix(p + "decoder.");
  const int64_t channels =
      first_level_channels(table, p + (has_encoder ? "encoder" : "decoder") + ".conv_in.conv.weight");
  report.kind = ComponentKind::HunyuanVideoVae;
  report.dimensions = {{"latent_channels", latent},
                       {"first_level_channels", channels},
                       {"encoder_levels", table.count_indexed(p + "encoder.down_blocks.")},
                       {"decoder_levels", table.count_indexed(p + "decoder.up_blocks.")}};
  report.variant = concat("causal 3D VAE, ", latent, " latent channels",
                          has_encoder && has_decoder ? "" : (has_encoder ? ", encoder only" : ", decoder only"));
  // Tiled decoding (official: 256x256 pixel tiles, 16 + 1 frames): a few full-resolution buffers per tile.
  report.workload = "tiled decoding, 256x256x17 tiles";
  if (channels > 0) report.activation_bytes = uint64_t(channels) * 256 * 256 * 17 * kFloatBytes * 4;
  return true;
}

bool classify_flux_vae(const TensorTable& table, ComponentReport& report) {
  auto prefix = table.prefix_of("decoder.conv_in.weight", 4);
  if (!prefix) prefix = table.prefix_of("encoder.conv_in.weight", 4);
  if (!prefix) return false;
  const std::string& p = *prefix;
  const int64_t latent = table.rank(p + "decoder.conv_in.weight") == 4
                             ? table.extent(p + "decoder.conv_in.weight", 1)
                             : table.extent(p + "encoder.conv_out.weight", 0) / 2;
  const bool has_encoder = table.has_prefix(p + "encoder."), has_decoder = table.has_prefix(p + "decoder.");
  const int64_t channels = table.extent(p + (has_encoder ? "encoder" : "decoder") + ".conv_in.weight", 0);
  report.kind = ComponentKind::FluxVae;
  report.dimensions = {{"latent_channels", latent},
                       {"first_level_channels", channels},
                       {"encoder_levels", table.count_indexed(p + "encoder.down_blocks.")},
                       {"decoder_levels", table.count_indexed(p + "decoder.up_blocks.")}};
  report.variant = concat("2D AutoencoderKL, ", latent, " latent channels",
                          latent == 16 ? "" : " (FLUX.1 has 16: not the FLUX VAE?)",
                          has_encoder && has_decoder ? "" : (has_encoder ? ", encoder only" : ", decoder only"));
  report.workload = "decoding a 1024x1024 image";
  // The last decoder level runs at full resolution with the first level's width; ~4 live buffers there.
  if (channels > 0) report.activation_bytes = uint64_t(channels) * 1024 * 1024 * kFloatBytes * 4;
  return true;
}

bool classify_qwen(const TensorTable& table, ComponentReport& report) {
  // transformers >= 5 nests the language model ("model.language_model.*", "model.visual.*"); older
  // checkpoints (the published ones) use "model.*" and "visual.*".
  std::string language;
  for (const char* candidate : {"model.language_model.", "model.", ""}) {
    if (table.find(std::string(candidate) + "layers.0.self_attn.q_proj.weight") &&
        table.find(std::string(candidate) + "embed_tokens.weight")) {
      language = candidate;
      break;
    }
  }
  if (!table.find(language + "layers.0.self_attn.q_proj.weight")) return false;
  std::string vision;
  for (const char* candidate : {"model.visual.", "visual."})
    if (table.has_prefix(std::string(candidate) + "blocks.0.")) vision = candidate;
  const int64_t hidden = table.extent(language + "embed_tokens.weight", 1);
  const int64_t vocabulary = table.extent(language + "embed_tokens.weight", 0);
  const int64_t layers = table.count_indexed(language + "layers.");
  const int64_t intermediate = table.extent(language + "layers.0.mlp.gate_proj.weight", 0);
  const int64_t kv_width = table.extent(language + "layers.0.self_attn.k_proj.weight", 0);
  report.kind = ComponentKind::Qwen25VL;
  report.dimensions = {{"hidden_size", hidden},
                       {"layers", layers},
                       {"intermediate_size", intermediate},
                       {"kv_width", kv_width},
                       {"vocabulary", vocabulary}};
  std::string size = "custom size";
  if (hidden == 3584 && layers == 28) size = "7B";
  if (hidden == 2048 && layers == 36) size = "3B";
  if (hidden == 8192 && layers == 80) size = "72B";
  if (!vision.empty()) {
    report.dimensions.push_back({"vision_blocks", table.count_indexed(vision + "blocks.")});
    report.dimensions.push_back({"vision_hidden_size", table.extent(vision + "blocks.0.attn.qkv.weight", 1)});
    report.variant = size + " (language model + vision tower" +
                     (language == "model.language_model." ? ", transformers 5 layout)" : ")");
  } else {
    report.variant = size + " (language model only, no vision tower: Qwen2-style)";
  }
  // Prompt up to 512 tokens + template; one layer's working set is tokens x (intermediate + 6 hidden).
  report.workload = "a 640-token prompt";
  if (hidden > 0 && intermediate > 0)
    report.activation_bytes = 640ull * uint64_t(intermediate + 6 * hidden) * kFloatBytes;
  return true;
}

bool classify_clip(const TensorTable& table, ComponentReport& report) {
  std::string p;
  bool found = false;
  for (const char* candidate : {"text_model.", ""}) {
    if (table.find(std::string(candidate) + "embeddings.token_embedding.weight") &&
        table.find(std::string(candidate) + "encoder.layers.0.self_attn.q_proj.weight")) {
      p = candidate;
      found = true;
      break;
    }
  }
  if (!found) return false;
  const int64_t hidden = table.extent(p + "embeddings.token_embedding.weight", 1);
  const int64_t layers = table.count_indexed(p + "encoder.layers.");
  const int64_t positions = table.extent(p + "embeddings.position_embedding.weight", 0);
  const int64_t intermediate = table.extent(p + "encoder.layers.0.mlp.fc1.weight", 0);
  report.kind = ComponentKind::ClipText;
  report.dimensions = {{"hidden_size", hidden},
                       {"layers", layers},
                       {"intermediate_size", intermediate},
                       {"max_positions", positions},
                       {"vocabulary", table.extent(p + "embeddings.token_embedding.weight", 0)}};
  report.variant = hidden == 768 && layers == 12 ? "ViT-L/14 text tower (768 wide, 12 layers)"
                                                 : concat(hidden, " wide, ", layers, " layers");
  if (table.has_prefix("vision_model.")) report.variant += ", checkpoint also holds the vision tower";
  report.workload = "a 77-token prompt";
  if (hidden > 0 && intermediate > 0)
    report.activation_bytes = 77ull * uint64_t(intermediate + 6 * hidden) * kFloatBytes;
  return true;
}

}  // namespace

ComponentReport classify_tensors(const std::vector<TensorInfo>& tensors) {
  ComponentReport report;
  report.tensor_count = tensors.size();
  for (const auto& info : tensors) {
    report.parameters += shape_numel(info.shape);
    report.weight_bytes += info.end - info.begin;
    report.dtype_tensors[std::string(dtype_name(info.dtype))] += 1;
  }
  const TensorTable table(tensors);
  if (classify_crossdit(table, report) || classify_hunyuan_vae(table, report) || classify_flux_vae(table, report) ||
      classify_qwen(table, report) || classify_clip(table, report) || classify_crossdit_lora(tensors, report))
    return report;
  report.kind = ComponentKind::Unknown;
  std::vector<std::string> names;
  for (const auto& info : tensors) names.push_back(info.name);
  std::sort(names.begin(), names.end());
  names.resize(std::min<size_t>(names.size(), 5));
  report.sample_names = names;
  return report;
}

namespace {

ComponentReport inspect_opened(const Checkpoint& checkpoint, const std::string& path) {
  std::vector<TensorInfo> tensors;
  for (const auto& name : checkpoint.names()) tensors.push_back(checkpoint.info(name));
  ComponentReport report = classify_tensors(tensors);
  report.path = path;
  if (report.kind == ComponentKind::CrossDiTLora)
    for (const auto& file : checkpoint.files())
      if (file->metadata().count("trigger")) report.variant += ", trigger '" + file->metadata().at("trigger") + "'";
  std::error_code error;
  for (const auto& file : checkpoint.files()) report.bytes_on_disk += fs::file_size(file->path(), error);
  return report;
}

}  // namespace

ComponentReport inspect_checkpoint(const std::string& path) { return inspect_opened(Checkpoint::open(path), path); }

namespace {

// "model-00001-of-00004.safetensors": shards of one model, as Hugging Face names them.
bool is_shard_name(const std::string& name) {
  const size_t of = name.rfind("-of-");
  return name.ends_with(".safetensors") && of != std::string::npos && of >= 6 && name[of - 6] == '-' &&
         std::all_of(name.begin() + int64_t(of) - 5, name.begin() + int64_t(of), ::isdigit);
}

constexpr int kMaxFolderDepth = 4;

void inspect_folder(const fs::path& folder, int depth, std::vector<ComponentReport>& components) {
  std::vector<fs::path> indexes, files, folders;
  std::error_code error;
  for (const auto& item : fs::directory_iterator(folder, error)) {
    const std::string name = item.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (item.is_directory(error))
      folders.push_back(item.path());
    else if (name.ends_with(".safetensors.index.json"))
      indexes.push_back(item.path());
    else if (name.ends_with(".safetensors"))
      files.push_back(item.path());
  }
  K5_CHECK(!error, folder.string(), ": cannot list: ", error.message());
  std::sort(indexes.begin(), indexes.end());
  std::sort(files.begin(), files.end());
  std::sort(folders.begin(), folders.end());

  std::set<std::string> covered;
  for (const auto& index : indexes) {
    const Checkpoint checkpoint = Checkpoint::open(index.string());
    components.push_back(inspect_opened(checkpoint, index.string()));
    for (const auto& file : checkpoint.files()) covered.insert(fs::path(file->path()).filename().string());
  }
  std::vector<fs::path> loose;
  for (const auto& file : files)
    if (!covered.count(file.filename().string())) loose.push_back(file);
  const bool all_shards = loose.size() > 1 && std::all_of(loose.begin(), loose.end(), [](const fs::path& f) {
                            return is_shard_name(f.filename().string());
                          });
  if (all_shards && indexes.empty()) {
    components.push_back(inspect_checkpoint(folder.string()));
  } else {
    // Separate models side by side (the official model/ folder holds one DiT per file).
    for (const auto& file : loose) components.push_back(inspect_checkpoint(file.string()));
  }
  if (depth < kMaxFolderDepth)
    for (const auto& sub : folders) inspect_folder(sub, depth + 1, components);
}

}  // namespace

ModelReport inspect_model(const std::string& path) {
  ModelReport report;
  report.path = path;
  std::error_code error;
  const auto status = fs::status(path, error);
  K5_CHECK(fs::exists(status), path, ": does not exist");
  if (!fs::is_directory(status)) {
    report.components.push_back(inspect_checkpoint(path));
    return report;
  }
  inspect_folder(fs::path(path), 0, report.components);
  K5_CHECK(!report.components.empty(), path, ": no .safetensors checkpoints in this folder or its subfolders");
  return report;
}

// ---------------------------------------------------------------------------------------------------------
// Output

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double value = double(bytes);
  int unit = 0;
  while (value >= 1000 && unit < 4) {
    value /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.2f %s", value, units[unit]);
  return text;
}

std::string format_count(int64_t count) {
  const char* units[] = {"", " k", " M", " B"};
  double value = double(count);
  int unit = 0;
  while (value >= 1000 && unit < 3) {
    value /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f%s" : "%.2f%s", value, units[unit]);
  return text;
}

std::string format_report(const ModelReport& report) {
  std::string out;
  if (report.components.size() > 1) out += concat(report.path, ": ", report.components.size(), " components\n");
  for (const auto& component : report.components) {
    out += concat(component.path, ": ", component_kind_name(component.kind));
    if (!component.variant.empty()) out += ", " + component.variant;
    out += "\n";
    if (!component.dimensions.empty()) {
      out += "  dimensions: ";
      for (size_t i = 0; i < component.dimensions.size(); ++i)
        out += concat(i ? ", " : "", component.dimensions[i].first, " ", component.dimensions[i].second);
      out += "\n";
    }
    out += concat("  parameters: ", format_count(component.parameters), " in ", component.tensor_count, " tensors (");
    bool first = true;
    for (const auto& [dtype, count] : component.dtype_tensors) {
      out += concat(first ? "" : ", ", dtype, ": ", count);
      first = false;
    }
    out += ")\n";
    out += concat("  on disk: ", format_bytes(component.bytes_on_disk),
                  "; estimated RAM to run: ", format_bytes(component.estimated_ram_bytes()), " (weights ",
                  format_bytes(component.weight_bytes), " mmapped in their dtype");
    if (component.activation_bytes > 0)
      out += concat(" + ~", format_bytes(component.activation_bytes), " activations for ", component.workload);
    out += ")\n";
    if (!component.sample_names.empty()) {
      out += "  first tensors:";
      for (const auto& name : component.sample_names) out += " " + name;
      out += "\n";
    }
  }
  return out;
}

nlohmann::json report_json(const ModelReport& report) {
  nlohmann::json components = nlohmann::json::array();
  for (const auto& component : report.components) {
    nlohmann::json dimensions = nlohmann::json::object();
    for (const auto& [name, value] : component.dimensions) dimensions[name] = value;
    nlohmann::json entry = {{"path", component.path},
                            {"kind", component_kind_name(component.kind)},
                            {"variant", component.variant},
                            {"dimensions", dimensions},
                            {"parameters", component.parameters},
                            {"tensors", component.tensor_count},
                            {"dtypes", component.dtype_tensors},
                            {"weight_bytes", component.weight_bytes},
                            {"bytes_on_disk", component.bytes_on_disk},
                            {"activation_bytes", component.activation_bytes},
                            {"estimated_ram_bytes", component.estimated_ram_bytes()},
                            {"workload", component.workload}};
    if (!component.sample_names.empty()) entry["first_tensors"] = component.sample_names;
    components.push_back(std::move(entry));
  }
  return {{"path", report.path}, {"components", components}};
}

}  // namespace k5
