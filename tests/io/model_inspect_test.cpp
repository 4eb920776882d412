// `k5 info` and the component detection behind it. Shapes-only cases use TensorInfo lists with the real
// published dimensions (no data needed); file cases write tiny checkpoints with the real key names.
#include "io/model_inspect.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>

#include "io/io_test_util.h"

namespace k5 {
namespace {

using test::ScratchDir;

// Key names and shapes of a CrossDiT state dict (spec/dit.md; identical in diffusers'
// Kandinsky5Transformer3DModel).
std::vector<std::pair<std::string, Shape>> crossdit_shapes(int64_t d, int64_t ff, int64_t td, int64_t head,
                                                           int64_t text_blocks, int64_t visual_blocks,
                                                           int64_t input_channels, int64_t text_dim = 3584) {
  std::vector<std::pair<std::string, Shape>> s = {
      {"time_embeddings.in_layer.weight", {td, d}},      {"time_embeddings.in_layer.bias", {td}},
      {"time_embeddings.out_layer.weight", {td, td}},    {"time_embeddings.out_layer.bias", {td}},
      {"text_embeddings.in_layer.weight", {d, text_dim}}, {"text_embeddings.in_layer.bias", {d}},
      {"text_embeddings.norm.weight", {d}},              {"text_embeddings.norm.bias", {d}},
      {"pooled_text_embeddings.in_layer.weight", {td, 768}}, {"pooled_text_embeddings.in_layer.bias", {td}},
      {"pooled_text_embeddings.norm.weight", {td}},      {"pooled_text_embeddings.norm.bias", {td}},
      {"visual_embeddings.in_layer.weight", {d, 4 * input_channels}}, {"visual_embeddings.in_layer.bias", {d}},
      {"out_layer.modulation.out_layer.weight", {2 * d, td}}, {"out_layer.modulation.out_layer.bias", {2 * d}},
      {"out_layer.out_layer.weight", {64, d}},           {"out_layer.out_layer.bias", {64}}};
  auto attention = [&](const std::string& p) {
    for (const char* layer : {"to_query", "to_key", "to_value", "out_layer"}) {
      s.push_back({p + layer + ".weight", {d, d}});
      s.push_back({p + layer + ".bias", {d}});
    }
    s.push_back({p + "query_norm.weight", {head}});
    s.push_back({p + "key_norm.weight", {head}});
  };
  for (int64_t i = 0; i < text_blocks; ++i) {
    const std::string p = "text_transformer_blocks." + std::to_string(i) + ".";
    s.push_back({p + "text_modulation.out_layer.weight", {6 * d, td}});
    s.push_back({p + "text_modulation.out_layer.bias", {6 * d}});
    attention(p + "self_attention.");
    s.push_back({p + "feed_forward.in_layer.weight", {ff, d}});
    s.push_back({p + "feed_forward.out_layer.weight", {d, ff}});
  }
  for (int64_t i = 0; i < visual_blocks; ++i) {
    const std::string p = "visual_transformer_blocks." + std::to_string(i) + ".";
    s.push_back({p + "visual_modulation.out_layer.weight", {9 * d, td}});
    s.push_back({p + "visual_modulation.out_layer.bias", {9 * d}});
    attention(p + "self_attention.");
    attention(p + "cross_attention.");
    s.push_back({p + "feed_forward.in_layer.weight", {ff, d}});
    s.push_back({p + "feed_forward.out_layer.weight", {d, ff}});
  }
  return s;
}

std::vector<TensorInfo> infos(const std::vector<std::pair<std::string, Shape>>& shapes, DType dtype = DType::BF16) {
  std::vector<TensorInfo> result;
  size_t offset = 0;
  for (const auto& [name, shape] : shapes) {
    const size_t bytes = size_t(shape_numel(shape)) * dtype_size(dtype);
    result.push_back({name, dtype, shape, offset, offset + bytes});
    offset += bytes;
  }
  return result;
}

void save_shapes(const std::string& path, const std::vector<std::pair<std::string, Shape>>& shapes,
                 DType dtype = DType::F32) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, shape] : shapes) tensors.emplace_back(name, Tensor::empty(dtype, shape));
  save_safetensors(path, tensors);
}

TEST(ModelInspect, PublishedCrossDiTVariants) {
  const auto lite_video = classify_tensors(infos(crossdit_shapes(1792, 7168, 512, 64, 2, 32, 33)));
  EXPECT_EQ(lite_video.kind, ComponentKind::CrossDiT);
  EXPECT_EQ(lite_video.variant, "Lite video (T2V + I2V: visual_cond, 33 input channels)");
  EXPECT_EQ(lite_video.dimension("heads"), 28);
  EXPECT_EQ(lite_video.dimension("visual_blocks"), 32);
  EXPECT_EQ(lite_video.dimension("text_blocks"), 2);
  EXPECT_EQ(lite_video.dimension("ff_dim"), 7168);
  EXPECT_EQ(lite_video.dimension("in_text_dim"), 3584);
  // Lite is ~2B parameters in BF16.
  EXPECT_GT(lite_video.parameters, 1'500'000'000);
  EXPECT_LT(lite_video.parameters, 2'500'000'000);
  EXPECT_EQ(lite_video.weight_bytes, uint64_t(lite_video.parameters) * 2);
  EXPECT_EQ(lite_video.dtype_tensors.at("BF16"), lite_video.tensor_count);
  EXPECT_GT(lite_video.activation_bytes, 0u);

  const auto t2v = classify_tensors(infos(crossdit_shapes(1792, 7168, 512, 64, 2, 32, 16)));
  EXPECT_EQ(t2v.variant, "Lite video (T2V)");
  const auto image = classify_tensors(infos(crossdit_shapes(2560, 10240, 512, 128, 2, 50, 16)));
  EXPECT_EQ(image.variant, "Lite image (T2I)");
  const auto edit = classify_tensors(infos(crossdit_shapes(2560, 10240, 512, 128, 2, 50, 33)));
  EXPECT_EQ(edit.variant, "Lite image (I2I: channel-concatenated instruction image, 33 input channels)");
  const auto pro = classify_tensors(infos(crossdit_shapes(4096, 16384, 1024, 128, 4, 60, 33)));
  EXPECT_EQ(pro.variant, "Pro video (T2V + I2V: visual_cond, 33 input channels)");
  EXPECT_EQ(pro.dimension("time_dim"), 1024);
  EXPECT_GT(pro.parameters, 15'000'000'000);
}

TEST(ModelInspect, OtherComponentsFromShapes) {
  // Qwen2.5-VL-7B, published layout and the transformers-5 layout.
  for (const std::string language : {"model.", "model.language_model."}) {
    const std::string vision = language == "model." ? "visual." : "model.visual.";
    std::vector<std::pair<std::string, Shape>> shapes = {{language + "embed_tokens.weight", {152064, 3584}},
                                                         {language + "norm.weight", {3584}},
                                                         {vision + "blocks.0.attn.qkv.weight", {3840, 1280}},
                                                         {vision + "blocks.31.attn.qkv.weight", {3840, 1280}}};
    for (int i = 0; i < 28; ++i) {
      const std::string p = language + "layers." + std::to_string(i) + ".";
      shapes.push_back({p + "self_attn.q_proj.weight", {3584, 3584}});
      shapes.push_back({p + "self_attn.k_proj.weight", {512, 3584}});
      shapes.push_back({p + "mlp.gate_proj.weight", {18944, 3584}});
    }
    const auto qwen = classify_tensors(infos(shapes));
    EXPECT_EQ(qwen.kind, ComponentKind::Qwen25VL) << language;
    EXPECT_EQ(qwen.variant.substr(0, 2), "7B");
    EXPECT_EQ(qwen.dimension("layers"), 28);
    EXPECT_EQ(qwen.dimension("vision_blocks"), 32);
    EXPECT_EQ(qwen.dimension("hidden_size"), 3584);
  }
  for (const std::string p : {"text_model.", ""}) {
    std::vector<std::pair<std::string, Shape>> shapes = {{p + "embeddings.token_embedding.weight", {49408, 768}},
                                                         {p + "embeddings.position_embedding.weight", {77, 768}}};
    for (int i = 0; i < 12; ++i) {
      shapes.push_back({p + "encoder.layers." + std::to_string(i) + ".self_attn.q_proj.weight", {768, 768}});
      shapes.push_back({p + "encoder.layers." + std::to_string(i) + ".mlp.fc1.weight", {3072, 768}});
    }
    const auto clip = classify_tensors(infos(shapes));
    EXPECT_EQ(clip.kind, ComponentKind::ClipText) << p;
    EXPECT_EQ(clip.variant, "ViT-L/14 text tower (768 wide, 12 layers)");
    EXPECT_EQ(clip.dimension("max_positions"), 77);
  }
  const auto hunyuan = classify_tensors(infos({{"encoder.conv_in.conv.weight", {128, 3, 3, 3, 3}},
                                               {"encoder.down_blocks.3.resnets.0.conv1.conv.weight", {512, 512, 3, 3, 3}},
                                               {"decoder.conv_in.conv.weight", {512, 16, 3, 3, 3}},
                                               {"decoder.up_blocks.3.resnets.0.conv1.conv.weight", {128, 128, 3, 3, 3}}}));
  EXPECT_EQ(hunyuan.kind, ComponentKind::HunyuanVideoVae);
  EXPECT_EQ(hunyuan.dimension("latent_channels"), 16);
  EXPECT_EQ(hunyuan.dimension("encoder_levels"), 4);
  const auto flux = classify_tensors(infos({{"encoder.conv_in.weight", {128, 3, 3, 3}},
                                            {"decoder.conv_in.weight", {512, 16, 3, 3}}}));
  EXPECT_EQ(flux.kind, ComponentKind::FluxVae);
  EXPECT_EQ(flux.variant, "2D AutoencoderKL, 16 latent channels");
  const auto sd_vae = classify_tensors(infos({{"decoder.conv_in.weight", {512, 4, 3, 3}}}));
  EXPECT_EQ(sd_vae.kind, ComponentKind::FluxVae);
  EXPECT_NE(sd_vae.variant.find("not the FLUX VAE?"), std::string::npos);
  const auto unknown = classify_tensors(infos({{"b.weight", {2}}, {"a.weight", {3}}}));
  EXPECT_EQ(unknown.kind, ComponentKind::Unknown);
  EXPECT_EQ(unknown.sample_names, (std::vector<std::string>{"a.weight", "b.weight"}));
  EXPECT_EQ(unknown.parameters, 5);
}

TEST(ModelInspect, LoraAdapters) {
  // Video Lite's sizes (model_dim 1792, ff 7168), PEFT's key forms, two ranks.
  std::vector<std::pair<std::string, Shape>> shapes;
  for (int i = 0; i < 32; ++i) {
    const std::string block = "base_model.model.visual_transformer_blocks." + std::to_string(i);
    shapes.push_back({block + ".self_attention.to_query.lora_A.default.weight", {16, 1792}});
    shapes.push_back({block + ".self_attention.to_query.lora_B.default.weight", {1792, 16}});
    shapes.push_back({block + ".feed_forward.in_layer.lora_A.default.weight", {8, 1792}});
    shapes.push_back({block + ".feed_forward.in_layer.lora_B.default.weight", {7168, 8}});
  }
  const auto lora = classify_tensors(infos(shapes));
  EXPECT_EQ(lora.kind, ComponentKind::CrossDiTLora);
  EXPECT_EQ(lora.variant, "PEFT, ranks 8..16, 64 layers");
  EXPECT_EQ(lora.dimension("last_visual_block"), 31);
  EXPECT_EQ(lora.dimension("model_dim"), 1792);
  // Another model's LoRA (no CrossDiT layer names) stays unknown.
  const auto other = classify_tensors(infos({{"unet.down.0.attn.to_q.lora_A.weight", {4, 320}}}));
  EXPECT_EQ(other.kind, ComponentKind::Unknown);
  const auto flux = classify_tensors(infos({{"transformer.transformer_blocks.0.attn.to_q.lora_A.weight", {4, 3072}}}));
  EXPECT_EQ(flux.kind, ComponentKind::Unknown);
  // The trigger word comes from the file's metadata.
  const ScratchDir dir;
  const std::string path = dir.file("lora.safetensors");
  save_safetensors(
      path,
      {{"visual_transformer_blocks.0.self_attention.to_query.lora_A.weight", Tensor::zeros(DType::F32, {2, 8})},
       {"visual_transformer_blocks.0.self_attention.to_query.lora_B.weight", Tensor::zeros(DType::F32, {8, 2})}},
      {{"trigger", "dolly in, "}});
  EXPECT_EQ(inspect_checkpoint(path).variant, "PEFT, rank 2, 1 layer, trigger 'dolly in, '");
}

TEST(ModelInspect, Formatting) {
  EXPECT_EQ(format_bytes(999), "999 B");
  EXPECT_EQ(format_bytes(3'970'000'000), "3.97 GB");
  EXPECT_EQ(format_count(1'980'000'000), "1.98 B");
  EXPECT_EQ(format_count(12), "12");
}

// Runs the k5 binary; returns (exit status, stdout + stderr).
std::pair<int, std::string> run_k5(const std::string& arguments) {
  const std::string command = std::string(K5_BINARY) + " " + arguments + " 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return {-1, ""};
  std::string output;
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, got);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// An official-layout weights folder with tiny components.
void write_tiny_model_folder(const ScratchDir& dir) {
  namespace fs = std::filesystem;
  for (const char* sub : {"model", "vae", "text_encoder", "text_encoder2", "flux/vae"})
    fs::create_directories(dir.file(sub));
  save_shapes(dir.file("model/kandinsky5lite_t2v_tiny.safetensors"), crossdit_shapes(16, 32, 8, 8, 1, 2, 33, 8),
              DType::BF16);
  save_shapes(dir.file("vae/diffusion_pytorch_model.safetensors"),
              {{"encoder.conv_in.conv.weight", {8, 3, 3, 3, 3}}, {"decoder.conv_in.conv.weight", {8, 16, 3, 3, 3}}});
  save_shapes(dir.file("flux/vae/diffusion_pytorch_model.safetensors"),
              {{"encoder.conv_in.weight", {8, 3, 3, 3}}, {"decoder.conv_in.weight", {8, 16, 3, 3}}});
  // Qwen as two shards with an index, as Hugging Face publishes it.
  save_shapes(dir.file("text_encoder/model-00001-of-00002.safetensors"),
              {{"model.embed_tokens.weight", {10, 16}}, {"model.layers.0.self_attn.q_proj.weight", {16, 16}}});
  save_shapes(dir.file("text_encoder/model-00002-of-00002.safetensors"),
              {{"model.layers.1.self_attn.q_proj.weight", {16, 16}}, {"visual.blocks.0.attn.qkv.weight", {48, 16}}});
  test::write_text(dir.file("text_encoder/model.safetensors.index.json"),
                   R"({"metadata": {}, "weight_map": {
                     "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                     "model.layers.0.self_attn.q_proj.weight": "model-00001-of-00002.safetensors",
                     "model.layers.1.self_attn.q_proj.weight": "model-00002-of-00002.safetensors",
                     "visual.blocks.0.attn.qkv.weight": "model-00002-of-00002.safetensors"}})");
  test::write_text(dir.file("text_encoder/config.json"), R"({"model_type": "qwen2_5_vl"})");
  save_shapes(dir.file("text_encoder2/model.safetensors"),
              {{"text_model.embeddings.token_embedding.weight", {10, 8}},
               {"text_model.encoder.layers.0.self_attn.q_proj.weight", {8, 8}}});
}

TEST(ModelInspect, OfficialLayoutFolder) {
  ScratchDir dir;
  write_tiny_model_folder(dir);
  const ModelReport report = inspect_model(dir.path());
  std::map<std::string, ComponentKind> kinds;
  for (const auto& component : report.components)
    kinds[std::filesystem::relative(component.path, dir.path()).string()] = component.kind;
  EXPECT_EQ(kinds, (std::map<std::string, ComponentKind>{
                       {"flux/vae/diffusion_pytorch_model.safetensors", ComponentKind::FluxVae},
                       {"model/kandinsky5lite_t2v_tiny.safetensors", ComponentKind::CrossDiT},
                       {"text_encoder/model.safetensors.index.json", ComponentKind::Qwen25VL},
                       {"text_encoder2/model.safetensors", ComponentKind::ClipText},
                       {"vae/diffusion_pytorch_model.safetensors", ComponentKind::HunyuanVideoVae}}));
  for (const auto& component : report.components) {
    EXPECT_GT(component.bytes_on_disk, component.weight_bytes) << component.path;
    if (component.kind == ComponentKind::CrossDiT) {
      EXPECT_EQ(component.dimension("model_dim"), 16);
      EXPECT_EQ(component.dimension("input_channels"), 33);
      EXPECT_EQ(component.dimension("visual_blocks"), 2);
      EXPECT_EQ(component.dtype_tensors.at("BF16"), component.tensor_count);
    }
    if (component.kind == ComponentKind::Qwen25VL) {
      EXPECT_EQ(component.dimension("layers"), 2);
    }
  }
}

TEST(ModelInspect, CommandLine) {
  ScratchDir dir;
  write_tiny_model_folder(dir);
  auto [status, output] = run_k5("info " + dir.path() + " --json");
  ASSERT_EQ(status, 0) << output;
  const auto json = nlohmann::json::parse(output);
  ASSERT_EQ(json["components"].size(), 5u);
  std::set<std::string> kinds;
  for (const auto& component : json["components"]) kinds.insert(component["kind"].get<std::string>());
  EXPECT_EQ(kinds, (std::set<std::string>{"CrossDiT", "HunyuanVideo VAE", "FLUX VAE", "Qwen2.5-VL",
                                          "CLIP text encoder"}));

  std::tie(status, output) = run_k5("info " + dir.file("model/kandinsky5lite_t2v_tiny.safetensors"));
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("CrossDiT, custom size: model_dim 16, 2 visual blocks (33 input channels"), std::string::npos) << output;
  EXPECT_NE(output.find("parameters:"), std::string::npos) << output;
  EXPECT_NE(output.find("estimated RAM to run"), std::string::npos) << output;

  // Unknown tensors: informational, exit 0.
  save_shapes(dir.file("odd.safetensors"), {{"foo.weight", {2, 2}}});
  std::tie(status, output) = run_k5("info " + dir.file("odd.safetensors"));
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("unknown component"), std::string::npos) << output;
  EXPECT_NE(output.find("foo.weight"), std::string::npos) << output;

  // Corrupt file: non-zero exit and a one-line error naming it.
  test::write_bytes(dir.file("broken.safetensors"), {1, 2, 3});
  std::tie(status, output) = run_k5("info " + dir.file("broken.safetensors"));
  EXPECT_NE(status, 0);
  EXPECT_NE(output.find("broken.safetensors: file is 3 bytes"), std::string::npos) << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
  std::tie(status, output) = run_k5("info " + dir.path());  // the folder now holds the corrupt file too
  EXPECT_NE(status, 0);
  std::tie(status, output) = run_k5("info " + dir.file("absent"));
  EXPECT_NE(status, 0);
  EXPECT_NE(output.find("does not exist"), std::string::npos) << output;
}

}  // namespace
}  // namespace k5
