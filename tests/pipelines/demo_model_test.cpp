// The demo model folder (src/pipelines/demo_model, `k5 create-demo-model`): every component loads with the
// regular loaders and runs to finite outputs, the tiny Qwen tokenizer splits each Kandinsky template prefix
// as the real one does (so the official crop_start values apply), and a seed always gives the same bytes.
#include "pipelines/demo_model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "io/kandinsky_config.h"
#include "io/safetensors.h"
#include "models/bpe/kandinsky_prompt.h"
#include "models/bpe/tokenizer_paths.h"
#include "models/crossdit/crossdit.h"
#include "models/vae_flux/flux_vae.h"
#include "models/vae_hunyuan/hunyuan_vae.h"
#include "pipelines/text_conditioning.h"
#include "support/compare.h"
#include "support/context.h"
#include "support/model_folder.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;

const char* const kConfigs[] = {"k5_tiny_t2v_5s", "k5_tiny_i2v_5s", "k5_tiny_t2i", "k5_tiny_i2i"};
const PromptContent kContents[] = {PromptContent::video, PromptContent::image, PromptContent::image_edit,
                                   PromptContent::image2video};

using test::TempDir;

// One demo folder for the whole suite (writing it takes a fraction of a second, loading it is what is tested).
class DemoModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    folder_ = new TempDir("suite");
    write_demo_model(folder_->path.string());
  }
  static void TearDownTestSuite() {
    delete folder_;
    folder_ = nullptr;
  }
  static fs::path dir() { return folder_->path; }
  static TempDir* folder_;
};
TempDir* DemoModel::folder_ = nullptr;

Context make_context() { return test::make_context(Precision::bf16); }

void expect_finite(const Tensor& tensor, const std::string& what) {
  const std::vector<float> values = tensor.to_f32_vector();
  ASSERT_FALSE(values.empty()) << what;
  size_t bad = 0;
  for (const float v : values) bad += !std::isfinite(v);
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << values.size() << " values are not finite";
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_F(DemoModel, OfficialLayoutAndSize) {
  for (const char* file : {"README.txt",
                           "configs/k5_tiny_t2v_5s.yaml",
                           "configs/k5_tiny_i2v_5s.yaml",
                           "configs/k5_tiny_t2i.yaml",
                           "configs/k5_tiny_i2i.yaml",
                           "weights/model/kandinsky5tiny_t2v_5s.safetensors",
                           "weights/model/kandinsky5tiny_i2v_5s.safetensors",
                           "weights/model/kandinsky5tiny_t2i.safetensors",
                           "weights/model/kandinsky5tiny_i2i.safetensors",
                           "weights/vae/config.json",
                           "weights/vae/diffusion_pytorch_model.safetensors",
                           "weights/flux/vae/config.json",
                           "weights/flux/vae/diffusion_pytorch_model.safetensors",
                           "weights/text_encoder/config.json",
                           "weights/text_encoder/model.safetensors",
                           "weights/text_encoder/tokenizer.json",
                           "weights/text_encoder2/config.json",
                           "weights/text_encoder2/model.safetensors",
                           "weights/text_encoder2/vocab.json",
                           "weights/text_encoder2/merges.txt"})
    EXPECT_TRUE(fs::is_regular_file(dir() / file)) << file;
  uintmax_t bytes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir())) {
    EXPECT_EQ(entry.path().filename().string().find(".k5tmp."), std::string::npos) << entry.path();
    if (entry.is_regular_file()) bytes += entry.file_size();
  }
  EXPECT_LT(bytes, uintmax_t(30) << 20);
}

TEST_F(DemoModel, ConfigsAreTinyOfficialOnes) {
  for (const char* name : kConfigs) {
    SCOPED_TRACE(name);
    const KandinskyConfig config = load_kandinsky_config((dir() / "configs" / (std::string(name) + ".yaml")).string());
    const bool video = config.is_video();
    EXPECT_EQ(video, std::string(name).find("2v") != std::string::npos);
    EXPECT_EQ(config.resolution, 128);
    EXPECT_EQ(config.num_steps, 50);
    EXPECT_EQ(config.dit.model_dim, 128);
    EXPECT_EQ(config.dit.head_dim(), 64);
    EXPECT_EQ(config.dit.in_text_dim, kDemoQwenHiddenSize);
    EXPECT_EQ(config.dit.in_text_dim2, kDemoClipHiddenSize);
    EXPECT_EQ(config.text_embedder.qwen_emb_size, kDemoQwenHiddenSize);
    EXPECT_EQ(config.text_embedder.clip_emb_size, kDemoClipHiddenSize);
    EXPECT_EQ(config.text_embedder.qwen_max_length, video ? 256 : 512);
    EXPECT_EQ(config.vae.checkpoint_path, video ? "./weights/vae/" : "./weights/flux/vae/");
    EXPECT_EQ(config.dit.visual_cond, video);
    EXPECT_EQ(config.dit.instruct_type, std::string(name) == "k5_tiny_i2i" ? "channel" : "");
    EXPECT_EQ(config.scale_factor[1], video ? 2.0 : 1.0);
    EXPECT_EQ(config.mag_ratios.size(), std::string(name) == "k5_tiny_i2i" ? 0u : 98u);  // as the official files
    EXPECT_EQ(config.checkpoint_path.rfind("./weights/model/kandinsky5tiny_", 0), 0u);
  }
}

TEST_F(DemoModel, TokenizerPrefixesSplitAsTheRealOne) {
  const BpeTokenizer tiny = BpeTokenizer::load(find_qwen_tokenizer(dir().string()));
  const std::string real_path = test::shared_path("tokenizers/qwen2.5/tokenizer.json");
  const bool have_real = fs::exists(real_path);
  const std::optional<BpeTokenizer> real = have_real ? std::optional(BpeTokenizer::load(real_path)) : std::nullopt;
  for (const PromptContent content : kContents) {
    SCOPED_TRACE(prompt_content_name(content));
    const std::string& text = kandinsky_prompt_template(content);
    const std::string prefix = text.substr(0, text.find("{}"));
    const std::vector<int32_t> ids = tiny.encode(prefix);
    // The official crop equals the prefix, except image_edit, whose crop (55) also drops 3 prompt tokens of
    // the real 52-token prefix (src/models/bpe/kandinsky_prompt.h).
    const int expected = kandinsky_crop_start(content) - (content == PromptContent::image_edit ? 3 : 0);
    EXPECT_EQ(int(ids.size()), expected);
    EXPECT_EQ(tiny.decode(ids, false), prefix);
    for (const int32_t id : ids) EXPECT_LT(size_t(id), tiny.vocab_size());
    if (real) {
      const std::vector<int32_t> real_ids = real->encode(prefix);
      ASSERT_EQ(real_ids.size(), ids.size());
      for (size_t i = 0; i < ids.size(); ++i)
        EXPECT_EQ(tiny.decode({ids[i]}, false), real->decode({real_ids[i]}, false)) << "token " << i;
    }
  }
  // Other text falls back to bytes and round-trips.
  const std::string prompt = "Портрет кота 🎩, a red fox at dawn";
  EXPECT_EQ(tiny.decode(tiny.encode(prompt), false), prompt);
  const ClipTokenizer clip = ClipTokenizer::load(find_clip_tokenizer(dir().string()));
  const ClipTokenizer::Encoding encoding = clip.encode_padded(prompt, 77);
  EXPECT_EQ(encoding.ids.front(), clip.bos_id());
  EXPECT_EQ(clip.eos_id(), 513);  // the highest id: CLIP pools at argmax(input_ids)
}

TEST_F(DemoModel, TextEncodersAndDitsRunFinite) {
  Context ctx = make_context();
  const TextEncoders encoders = TextEncoders::load(ctx, TextEncoderPaths::find(dir().string()));
  EXPECT_EQ(encoders.qwen.config().vocab_size % 64, 0);
  for (const PromptContent content : kContents) {
    SCOPED_TRACE(prompt_content_name(content));
    // image_edit has no padding and no default negative; the rest use the official defaults.
    const bool edit = content == PromptContent::image_edit;
    const TextConditioning conditioning =
        encode_text_conditioning(ctx, encoders, "A red fox runs through a snowy forest at dawn.",
                                 edit ? "blurry" : default_negative_prompt(content), content);
    const int64_t length = edit ? conditioning.prompt.text_embed.size(0) : kandinsky_default_max_length(content);
    EXPECT_EQ(conditioning.prompt.text_embed.shape(), (Shape{length, kDemoQwenHiddenSize}));
    EXPECT_EQ(conditioning.prompt.pooled_text_embed.shape(), (Shape{1, kDemoClipHiddenSize}));
    expect_finite(conditioning.prompt.text_embed, "text_embed");
    expect_finite(conditioning.prompt.pooled_text_embed, "pooled_text_embed");
    expect_finite(conditioning.negative.text_embed, "null_text_embed");
    expect_finite(conditioning.negative.pooled_text_embed, "null_pooled_text_embed");
  }

  // Each DiT on the text conditioning of its content: a 2 x 8 x 12 latent (video) or 1 x 8 x 12 (image).
  for (const char* name : kConfigs) {
    SCOPED_TRACE(name);
    const KandinskyConfig config = load_kandinsky_config((dir() / "configs" / (std::string(name) + ".yaml")).string());
    const CrossDit dit = CrossDit::load(config, (dir() / config.checkpoint_path).string(), Precision::bf16);
    const PromptContent content = config.is_video() ? PromptContent::video : PromptContent::image;
    const PromptEmbedding text = encode_prompt(ctx, encoders, "a cat in a hat", content);
    const int64_t frames = config.is_video() ? 2 : 1, channels = config.dit.input_channels();
    std::vector<float> x(size_t(frames * 8 * 12 * channels));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.37 * double(i)));
    DitInputs inputs;
    inputs.x = Tensor::from_f32(x, {frames, 8, 12, channels});
    inputs.text_embed = text.text_embed;
    inputs.pooled_text_embed = text.pooled_text_embed;
    inputs.attention_mask = text.attention_mask.reshape({text.attention_mask.numel()});
    inputs.time = 700.0f;
    const Tensor velocity = dit.forward(ctx, inputs);
    EXPECT_EQ(velocity.shape(), (Shape{frames, 8, 12, 16}));
    expect_finite(velocity, "velocity");
  }
}

TEST_F(DemoModel, VaesKeepTheRealCompressionAndRunFinite) {
  Context ctx = make_context();
  std::vector<float> pixels(size_t(3 * 5 * 16 * 24));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = float(std::cos(0.11 * double(i)));

  const fs::path hunyuan_dir = dir() / "weights" / "vae";
  const HunyuanVaeConfig hunyuan_config = HunyuanVaeConfig::from_json_file((hunyuan_dir / "config.json").string());
  EXPECT_EQ(hunyuan_config.latent_channels, 16);
  const HunyuanVae hunyuan(hunyuan_config, Checkpoint::open(hunyuan_dir.string()), true, true);
  HunyuanTiling no_tiling;
  no_tiling.enabled = false;
  const Tensor video = Tensor::from_f32(pixels, {3, 5, 16, 24});
  const Tensor moments = hunyuan.encode_moments(ctx, video, no_tiling);
  EXPECT_EQ(moments.shape(), (Shape{32, 2, 2, 3}));  // 4x time (causal: 1 + 4 k frames), 8x space
  expect_finite(moments, "hunyuan moments");
  const Tensor decoded = hunyuan.decode(ctx, moments.slice(0, 0, 16).contiguous(), no_tiling);
  EXPECT_EQ(decoded.shape(), (Shape{3, 5, 16, 24}));
  expect_finite(decoded, "hunyuan sample");

  const fs::path flux_dir = dir() / "weights" / "flux" / "vae";
  const FluxVaeConfig flux_config = FluxVaeConfig::from_json_file((flux_dir / "config.json").string());
  const FluxVae flux(flux_config, Checkpoint::open(flux_dir.string()), true, true);
  const Tensor image = Tensor::from_f32(std::vector<float>(pixels.begin(), pixels.begin() + 3 * 16 * 24), {3, 16, 24});
  const Tensor image_moments = flux.encode_moments(ctx, image, FluxTiling{});
  EXPECT_EQ(image_moments.shape(), (Shape{32, 2, 3}));
  expect_finite(image_moments, "flux moments");
  const Tensor image_decoded = flux.decode(ctx, image_moments.slice(0, 0, 16).contiguous(), FluxTiling{});
  EXPECT_EQ(image_decoded.shape(), (Shape{3, 16, 24}));
  expect_finite(image_decoded, "flux image");
}

TEST_F(DemoModel, SameSeedSameBytes) {
  const TempDir again("again"), other("other");
  write_demo_model(again.path.string());
  write_demo_model(other.path.string(), 6);
  size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir())) {
    if (!entry.is_regular_file()) continue;
    const fs::path relative = fs::relative(entry.path(), dir());
    EXPECT_TRUE(read_bytes(entry.path()) == read_bytes(again.path / relative)) << relative;
    ++files;
  }
  EXPECT_EQ(files, 22u);
  const std::string dit = "weights/model/kandinsky5tiny_t2v_5s.safetensors";
  EXPECT_FALSE(read_bytes(dir() / dit) == read_bytes(other.path / dit));
}

// A folder holds one kind of demo model: the tiny one refuses a folder with the full-size config (and the reverse),
// before writing anything.
TEST_F(DemoModel, RefusesAFolderHoldingTheOtherKind) {
  const TempDir mixed("mixed");
  fs::create_directories(mixed.path / "configs");
  std::ofstream(mixed.path / "configs" / "k5_lite_t2v_5s_sft_sd.yaml") << "model: {}\n";
  EXPECT_THROW(write_demo_model(mixed.path.string()), Error);
  EXPECT_FALSE(fs::exists(mixed.path / "weights"));
}

}  // namespace
}  // namespace k5
