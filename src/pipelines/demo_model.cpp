#include "pipelines/demo_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/atomic_file.h"
#include "io/kandinsky_config.h"
#include "io/safetensors.h"
#include "models/bpe/bpe_model.h"
#include "models/bpe/bpe_tokenizer.h"
#include "models/crossdit/crossdit_weights.h"

namespace k5 {

namespace {

namespace fs = std::filesystem;
using ShapeList = std::vector<std::pair<std::string, Shape>>;
using json = nlohmann::ordered_json;

// ---- Sizes -------------------------------------------------------------------------------------------------

// What differs between the tiny demo folder and the full-size one (--full-size: Video Lite T2V 5 s at the real
// sizes, for timing and memory runs; the tokenizers stay tiny, the embedding tables keep the real row counts).
struct DemoSizes {
  // Qwen2.5-VL language model; vocab 0: the tokenizer's (bytes, the template merges, the special tokens) rounded
  // up to 64.
  int64_t qwen_hidden, qwen_layers, qwen_heads, qwen_key_value_heads, qwen_intermediate, qwen_vocab;
  // CLIP text model (the real 77 positions); vocab 0: the tokenizer's (256 bytes, their "</w>" forms,
  // <|startoftext|>, <|endoftext|>).
  int64_t clip_hidden, clip_layers, clip_heads, clip_intermediate, clip_vocab;
  // VAEs: the real 16 latent channels and compression.
  std::vector<int64_t> hunyuan_channels, flux_channels;
  int vae_groups, vae_layers_per_block;
  // CrossDiT and the configs' metrics.resolution.
  int64_t dit_model_dim, dit_ff_dim, dit_time_dim, dit_text_blocks, dit_visual_blocks, resolution;
};

// Tiny: Qwen 64 wide (4 heads of 16, 2 key/value heads), 2 layers; CLIP 32 wide, 2 heads, 2 layers; VAEs with
// tiny widths and one resnet per block; CrossDiT 128 wide, 2 + 2 blocks.
const DemoSizes kTinySizes{.qwen_hidden = kDemoQwenHiddenSize,
                           .qwen_layers = 2,
                           .qwen_heads = 4,
                           .qwen_key_value_heads = 2,
                           .qwen_intermediate = 128,
                           .qwen_vocab = 0,
                           .clip_hidden = kDemoClipHiddenSize,
                           .clip_layers = 2,
                           .clip_heads = 2,
                           .clip_intermediate = 64,
                           .clip_vocab = 0,
                           .hunyuan_channels = {8, 16, 16, 16},
                           .flux_channels = {8, 8, 16, 16},
                           .vae_groups = 4,
                           .vae_layers_per_block = 1,
                           .dit_model_dim = 128,
                           .dit_ff_dim = 256,
                           .dit_time_dim = 64,
                           .dit_text_blocks = 2,
                           .dit_visual_blocks = 2,
                           .resolution = 128};
// Qwen2.5-VL-7B, CLIP ViT-L/14's text model, the HunyuanVideo VAE and Video Lite's CrossDiT as released.
const DemoSizes kVideoLiteSizes{.qwen_hidden = 3584,
                                .qwen_layers = 28,
                                .qwen_heads = 28,
                                .qwen_key_value_heads = 4,
                                .qwen_intermediate = 18944,
                                .qwen_vocab = 152064,
                                .clip_hidden = 768,
                                .clip_layers = 12,
                                .clip_heads = 12,
                                .clip_intermediate = 3072,
                                .clip_vocab = 49408,
                                .hunyuan_channels = {128, 256, 512, 512},
                                .flux_channels = {128, 256, 512, 512},
                                .vae_groups = 32,
                                .vae_layers_per_block = 2,
                                .dit_model_dim = 1792,
                                .dit_ff_dim = 7168,
                                .dit_time_dim = 512,
                                .dit_text_blocks = 2,
                                .dit_visual_blocks = 32,
                                .resolution = 512};
// The Qwen vision tower (unused by text-to-video; there so that the checkpoint is complete): 32 wide, 2 blocks.
constexpr int64_t kVisionDepth = 2, kVisionHidden = 32, kVisionHeads = 2, kVisionIntermediate = 64;
constexpr int64_t kClipPositions = 77, kClipTokenizerVocab = 2 * 256 + 2;
constexpr int64_t kLatentChannels = 16;

// ---- Official data -----------------------------------------------------------------------------------------

// magcache.mag_ratios of the official k5_lite_t2v_5s_sft_sd.yaml, as they are.
const char* const kLiteT2vMagRatios =
    "0.91607, 0.91507, 0.95254, 0.95349, 1.04876, 1.04937, 1.0842, 1.084, 1.04372, 1.04445, 1.03521, 1.03559, "
    "1.03906, 1.03904, 1.03104, 1.03132, 1.03618, 1.03671, 1.02519, 1.02512, 1.02595, 1.02603, 1.02378, "
    "1.02447, 1.02427, 1.02514, 1.01967, 1.01996, 1.02266, 1.02269, 1.01885, 1.01951, 1.01913, 1.01977, "
    "1.01944, 1.02018, 1.01664, 1.01707, 1.01682, 1.01723, 1.0155, 1.01611, 1.01998, 1.02022, 1.01194, "
    "1.01244, 1.01626, 1.01555, 1.01611, 1.01654, 1.01545, 1.01579, 1.01362, 1.01376, 1.01589, 1.01627, "
    "1.01527, 1.01521, 1.01301, 1.01334, 1.01415, 1.01444, 1.0144, 1.01464, 1.01444, 1.01442, 1.01361, "
    "1.01399, 1.01397, 1.01408, 1.01412, 1.01432, 1.01453, 1.01454, 1.01341, 1.01342, 1.01317, 1.01342, "
    "1.01018, 1.01051, 1.01278, 1.0128, 1.01021, 1.01037, 1.00809, 1.00794, 1.00679, 1.00711, 0.99882, "
    "0.99948, 0.98905, 0.98905, 0.9755, 0.97545, 0.93786, 0.93738, 0.84336, 0.84193";

// magcache.mag_ratios of the official k5_lite_i2v_5s_sft_sd.yaml, as they are.
const char* const kLiteI2vMagRatios =
    "0.90524, 0.89864, 0.95225, 0.95382, 1.04828, 1.04658, 1.07989, 1.07921, 1.04345, 1.04345, 1.03547, "
    "1.03589, 1.03715, 1.03745, 1.02909, 1.02907, 1.03391, 1.03416, 1.02366, 1.02392, 1.02359, 1.02415, "
    "1.02256, 1.02289, 1.02447, 1.02502, 1.01824, 1.01857, 1.02236, 1.02261, 1.01704, 1.01736, 1.01838, "
    "1.01857, 1.01886, 1.01961, 1.01619, 1.0169, 1.01655, 1.01702, 1.01477, 1.01545, 1.01926, 1.01981, "
    "1.01145, 1.01227, 1.01276, 1.01308, 1.01583, 1.01619, 1.01587, 1.01641, 1.01386, 1.01418, 1.01441, "
    "1.01505, 1.01473, 1.01491, 1.01346, 1.01407, 1.01319, 1.0137, 1.01283, 1.01313, 1.01412, 1.01407, "
    "1.01222, 1.0127, 1.0131, 1.01315, 1.01398, 1.0143, 1.01483, 1.01498, 1.01158, 1.01176, 1.01342, 1.01365, "
    "1.00893, 1.0095, 1.01223, 1.01237, 1.01005, 1.01045, 1.00694, 1.00679, 1.00691, 1.00742, 0.99846, "
    "0.99916, 0.98563, 0.98549, 0.97116, 0.97145, 0.93116, 0.93069, 0.83437, 0.83375";

// magcache.mag_ratios of the official k5_lite_t2i_sft_hd.yaml, as they are.
const char* const kLiteT2iMagRatios =
    "0.83479, 0.82401, 1.04218, 1.04684, 1.03432, 1.03566, 1.02943, 1.03087, 1.02626, 1.02726, 1.01373, "
    "1.01395, 1.01837, 1.01873, 1.01712, 1.01791, 1.01327, 1.01376, 1.01112, 1.01102, 1.01204, 1.01224, "
    "1.00652, 1.0078, 1.01196, 1.01195, 1.00934, 1.00964, 1.0069, 1.00723, 1.00831, 1.00917, 1.00588, "
    "1.00604, 1.00568, 1.0066, 1.00988, 1.01066, 1.00858, 1.00936, 1.00474, 1.00465, 1.00343, 1.0047, 1.0002, "
    "0.99511, 1.00565, 1.01499, 1.00461, 1.00507, 1.00524, 1.00542, 1.00464, 1.00471, 0.99872, 0.99837, "
    "1.00761, 1.00841, 1.00167, 1.00196, 1.00581, 1.00603, 1.00226, 1.003, 1.00387, 1.00391, 1.00357, "
    "1.00408, 1.0014, 1.00164, 0.99996, 1.00029, 1.0055, 1.00601, 0.99761, 0.99761, 1.00028, 1.00061, "
    "1.00353, 1.0035, 1.00035, 1.00058, 1.00196, 1.00229, 0.99987, 1.00022, 1.00144, 1.00165, 0.99946, "
    "0.99941, 0.99732, 0.99749, 0.99646, 0.99507, 0.99323, 0.99088, 1.00579, 0.99927";

const char* const kQwenTemplateMerges = R"merges(
i n  Ġ t  e r  o n  Ġ a  r e  a t  s t  e n  o r  Ġt h  Ġ c  l e  Ġ s  i t  a n  a r  a l  Ġth e
Ġ p  Ġ f  o u  i s  in g  e s  Ġ w  i on  e d  Ġ b  Ġ d  e t  Ġ m  Ġ o  r o  a s  c t  n d  Ġ in
Ġ h  en t  i d  a m  Ġt o  Ġ re  Ġo f  o m  i m  Ġ (  i l  Ġa nd  s e  Ġ l  e x  u t  i f  e m  o l
Ġ g  i g  i v  c e  Ġ v  at e  a g  a y  o t  u s  Ġ st  o w  e w  at ion  am e  Ġ is  p e  c k  Ġ e
Ġb e  er s  Ġ on  Ġc on  l y  i r  ct ion  it h  ou r  re s  p t  Ġw h  Ġ if  Ġ D  ag e  Ġ B  ex t
Ġth at  Ġ it  es s  e ct  k e  ro m  c on  q u  Ġw ith  i z  g et  i le  Ġa n  r i  Ġp ro  t er
a in  a ck  Ġ or  e st  in e  in d  it y  Ġt r  o c  an t  Ġa t  Ġc h  Ġa re  i al  a ct  iv e  o st
f f  iz e  u re  Ġb y  Ġs h  pt ion  i ew  i p  id e  r ou  j ect  a k  Ġ k  an s  y st  Ġ us  a il
yst em  . Ċ  p ut  om e  Ġc an  at ed  Ġ en  N ame  it ion  Ġcon t  ) ,  Ġ im  c ri  et h  p ro
ow n  ol or  ke y  en er  b ject  ation s  Ġthe y  Ġ Y  c re  o v  Ġthe ir  ir st  us er  our ce
Ġ qu  u al  Ġd es  Ġin ter  re ate  ol l  y le  Ġs p  Ġs ome  rou nd  as k  ig h  d er  c ess  Ġs c
Ġ z  Ġch ar  Ġb ack  Ġus er  Ġh ow  ar get  con d  v id  Ġl oc  ess ion  Ġre l  Ġtr ans  b e  Ġ key
Ġs ize  cri ption  Ġt ext  as ed  Ġus ed  oll ow  Ġh igh  Ġat t  et ail  Ġo bject  Ġv iew  Ġp res
ff ect  Ġst yle  Ġp ost  Ġg ener  Ġf ollow  Ġg ame  Ġc reate  y n  Ġm ain  ide o  Ġc olor  o ot
et a  Ġa ction  h er  Ġin put  g round  en e  Ġor der  Ġm ov  a pe  ak es  Ġpro vid  Ġv is  is m
h ip  Ġim age  Ġt arget  ile d  Ġcont ent  er a  Ġe ffect  Ġs ource  Y ou  Ġp rom  eth er
Ġinter est  Ġv ideo  Ġpro f  Ġen g  ent ion  Ġpres ent  Ġk ind  cri be  Ġb ased  Ġt ask  g le
Ġwh ether  am era  get her  Ġloc ation  Ġto gether  ĠD es  f irst  Ġprovid ed  Ġan im  Ġback ground
Ġdes cription  o om  Ġrel ations  Ġf oot  ĠY our  pro cess  Ġeng ine  Ġprof ession  D es  act ers
Ġrelations hip  se cond  ant ity  Ġchar acters  ition s  Ġsh ape  Ġsc ene  Ġaction s  Ġobject s
Ġeffect s  Ġc amera  Ġatt ention  Ġprofession al  Ġsh own  Ġinterest ing  Ġeffect ive  Ġdes cribe
Ġhigh ly  Ġd etail  Ġs cre  Ġgener ated  s ystem  Ġvis ual  Ġan gle  Ġprom pt  eta iled  Ġanim ation
Ġtext ure  Ġpresent ed  Ġmov es  Ġfollow s  yn am  Ġd etailed  Ġrelationship s  Ġqu antity  Ġz oom
Ġd ynam  ĠB ased  P ay  process ing  Ġfoot age  at ial  Ġengine er  Ġsp atial  Ġtrans itions
Ġdetail ing  ĠDes cribe  Ġsh akes  Des cribe
)merges";

// The added tokens of the real Qwen2.5 tokenizer, in its order (special flag as there).
const std::vector<std::pair<const char*, bool>> kQwenAddedTokens = {
    {"<|endoftext|>", true},      {"<|im_start|>", true},     {"<|im_end|>", true},      {"<|object_ref_start|>", true},
    {"<|object_ref_end|>", true}, {"<|box_start|>", true},    {"<|box_end|>", true},     {"<|quad_start|>", true},
    {"<|quad_end|>", true},       {"<|vision_start|>", true}, {"<|vision_end|>", true},  {"<|vision_pad|>", true},
    {"<|image_pad|>", true},      {"<|video_pad|>", true},    {"<tool_call>", false},    {"</tool_call>", false},
    {"<|fim_prefix|>", false},    {"<|fim_middle|>", false},  {"<|fim_suffix|>", false}, {"<|fim_pad|>", false},
    {"<|repo_name|>", false},     {"<|file_sep|>", false}};

// ---- Deterministic random tensors ----------------------------------------------------------------------------

uint64_t fnv1a(std::string_view text) {
  uint64_t hash = 1469598103934665603ULL;
  for (const char c : text) hash = (hash ^ uint8_t(c)) * 1099511628211ULL;
  return hash;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Each tensor draws from its own generators seeded by (seed, component, tensor name): adding a tensor never
// changes another. A tensor's values come in chunks of 2^20, each from its own generator (chunk 0's seeded by the
// name alone), so that large tensors fill in parallel. Normal values come from Box-Muller over mt19937_64 (fully
// specified, unlike std::normal_distribution). Scales keep activations O(1): matrices and kernels N(0, 1/fan_in),
// norm weights 1 + N(0, 0.1^2), other vectors (biases) N(0, 0.02^2).
Tensor random_tensor(ThreadPool& pool, uint64_t seed, std::string_view component, const std::string& name,
                     const Shape& shape, DType dtype) {
  constexpr int64_t kChunk = int64_t(1) << 20;
  const uint64_t name_seed = splitmix64(splitmix64(seed ^ fnv1a(component)) ^ fnv1a(name));
  const bool vector = shape.size() == 1;
  const bool norm = vector && (name.find("norm") != std::string::npos || name.find(".ln_") != std::string::npos) &&
                    name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
  const int64_t fan_in = vector ? 1 : shape_numel(shape) / shape[0];
  const double mean = norm ? 1.0 : 0.0;
  const double std_dev = vector ? (norm ? 0.1 : 0.02) : 1.0 / std::sqrt(double(fan_in));
  Tensor t = Tensor::empty(dtype, shape);
  const int64_t n = t.numel();
  pool.parallel_for(0, (n + kChunk - 1) / kChunk, 1, [&](int64_t first_chunk, int64_t end_chunk) {
    for (int64_t chunk = first_chunk; chunk < end_chunk; ++chunk) {
      std::mt19937_64 rng(chunk == 0 ? name_seed : splitmix64(name_seed ^ uint64_t(chunk)));
      for (int64_t i = chunk * kChunk; i < std::min(n, (chunk + 1) * kChunk); ++i) {
        const double u1 = (double(rng() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
        const double u2 = double(rng() >> 11) * 0x1.0p-53;
        const float v = float(mean + std_dev * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
        if (dtype == DType::BF16)
          t.data<uint16_t>()[i] = f32_to_bf16(v);
        else
          t.data<float>()[i] = v;
      }
    }
  });
  return t;
}

// Where and how a folder is written.
struct DemoWriter {
  fs::path dir;
  uint64_t seed;
  const DemoSizes& sizes;
  ThreadPool& pool;

  void save_random(const fs::path& path, const ShapeList& shapes, std::string_view component, DType dtype,
                   const std::string& description) const {
    std::vector<std::pair<std::string, Tensor>> tensors;
    tensors.reserve(shapes.size());
    for (const auto& [name, shape] : shapes)
      tensors.emplace_back(name, random_tensor(pool, seed, component, name, shape, dtype));
    save_safetensors(path.string(), tensors, {{"format", "pt"}, {"k5", description}});
  }
};

// ---- Text files ------------------------------------------------------------------------------------------------

void write_text(const fs::path& path, const std::string& text) {
  write_atomically(path.string(), [&](const std::string& temporary) {
    std::ofstream out(temporary, std::ios::binary);
    out << text;
    out.close();
    K5_CHECK(out.good(), "cannot write ", path.string());
  });
}

void write_json(const fs::path& path, const json& value) { write_text(path, value.dump(2) + "\n"); }

// ---- Configs -------------------------------------------------------------------------------------------------

struct Variant {
  const char* config_name;      // configs/<name>.yaml
  const char* checkpoint_name;  // weights/model/<name>.safetensors
  bool video;                   // HunyuanVideo VAE, max_length 256; else FLUX VAE, 512
  bool visual_cond;             // I2V-capable video models
  bool channel_instructions;    // I2I
  const char* scheduler_scale;  // metrics.scheduler_scale or nullptr
  const char* guidance;
  const char* mag_ratios;  // nullptr: no magcache section
};

// Tiny: modelled on k5_lite_t2v_5s_sft_sd, k5_lite_i2v_5s_sft_sd, k5_lite_t2i_sft_hd and k5_lite_i2i_sft_hd.
// Full size: k5_lite_t2v_5s_sft_sd, with its names.
std::vector<Variant> variants(bool full_size) {
  if (full_size)
    return {
        {"k5_lite_t2v_5s_sft_sd", "kandinsky5lite_t2v_sft_5s", true, true, false, nullptr, "5.0", kLiteT2vMagRatios}};
  return {
      {"k5_tiny_t2v_5s", "kandinsky5tiny_t2v_5s", true, true, false, nullptr, "5.0", kLiteT2vMagRatios},
      {"k5_tiny_i2v_5s", "kandinsky5tiny_i2v_5s", true, true, false, "10", "5.0", kLiteI2vMagRatios},
      {"k5_tiny_t2i", "kandinsky5tiny_t2i", false, false, false, nullptr, "3.5", kLiteT2iMagRatios},
      {"k5_tiny_i2i", "kandinsky5tiny_i2i", false, false, true, nullptr, "3.5", nullptr},
  };
}

std::string config_yaml(const Variant& v, const DemoSizes& z) {
  std::ostringstream y;
  y << "# A Kandinsky 5 model with RANDOM weights (k5 create-demo-model): the official config layout at\n"
       "# model_dim "
    << z.dit_model_dim << ", " << z.dit_text_blocks << " + " << z.dit_visual_blocks
    << " blocks, for smoke tests and timings. It makes meaningless pictures.\n";
  y << "metrics:\n";
  if (v.scheduler_scale) y << "  scheduler_scale: " << v.scheduler_scale << "\n";
  y << "  scale_factor:\n";
  for (const char* s :
       v.video ? std::vector<const char*>{"1.0", "2.0", "2.0"} : std::vector<const char*>{"1.0", "1.0", "1.0"})
    y << "  - " << s << "\n";
  y << "  resolution: " << z.resolution << "\n"
    << "model:\n"
       "  checkpoint_path: \"./weights/model/"
    << v.checkpoint_name << ".safetensors\"\n"
    << "  num_steps: 50\n"
       "  guidance_weight: "
    << v.guidance << "\n"
    << "  dit_params:\n";
  if (v.channel_instructions) y << "    instruct_type: \"channel\"\n";
  y << "    in_visual_dim: 16\n"
       "    out_visual_dim: 16\n"
       "    time_dim: "
    << z.dit_time_dim << "\n"
    << "    patch_size:\n"
       "    - 1\n"
       "    - 2\n"
       "    - 2\n"
       "    model_dim: "
    << z.dit_model_dim << "\n"
    << "    ff_dim: " << z.dit_ff_dim << "\n"
    << "    num_text_blocks: " << z.dit_text_blocks << "\n"
    << "    num_visual_blocks: " << z.dit_visual_blocks << "\n"
    << "    axes_dims:\n"
       "    - 16\n"
       "    - 24\n"
       "    - 24\n";
  if (v.visual_cond) y << "    visual_cond: true\n";
  y << "    in_text_dim: " << z.qwen_hidden << "\n"
    << "    in_text_dim2: " << z.clip_hidden << "\n"
    << "  attention:\n"
       "    type: flash\n"
       "    causal: false\n"
       "    local: false\n"
       "    glob: false\n"
       "    window: 3\n"
       "  vae:\n"
    << (v.video ? "    checkpoint_path: \"./weights/vae/\"\n    name: \"hunyuan\"\n"
                : "    checkpoint_path: \"./weights/flux/vae/\"\n    name: \"flux\"\n")
    << "  text_embedder:\n"
       "    qwen:\n"
       "      emb_size: "
    << z.qwen_hidden << "\n"
    << "      checkpoint_path: \"./weights/text_encoder/\"\n"
       "      max_length: "
    << (v.video ? 256 : 512) << "\n"
    << "    clip:\n"
       "      checkpoint_path: \"./weights/text_encoder2/\"\n"
       "      emb_size: "
    << z.clip_hidden << "\n"
    << "      max_length: 77\n";
  if (v.mag_ratios) y << "magcache:\n  mag_ratios: [" << v.mag_ratios << "]\n";
  return y.str();
}

const char* const kReadme =
    "k5 demo model (k5 create-demo-model)\n"
    "====================================\n"
    "\n"
    "A tiny Kandinsky 5 model folder in the official layout (download_models.py + configs/), with RANDOM\n"
    "weights drawn from a fixed seed. It is not trained: every picture or video it makes is meaningless\n"
    "noise. It exists so that k5 can be built, run and tested in every mode (t2v, i2v, t2i, i2i) in seconds\n"
    "without downloading the real models.\n"
    "\n"
    "  configs/k5_tiny_{t2v_5s,i2v_5s,t2i,i2i}.yaml   official config format, metrics.resolution 128\n"
    "  weights/model/                               CrossDiT (BF16), model_dim 128, 2 text + 2 visual blocks\n"
    "  weights/vae/                                 HunyuanVideo causal 3D VAE (diffusers), tiny widths\n"
    "  weights/flux/vae/                            FLUX VAE (diffusers AutoencoderKL), tiny widths\n"
    "  weights/text_encoder/                        Qwen2.5-VL (language model hidden 64, vision tower 32)\n"
    "  weights/text_encoder2/                       CLIP text model (hidden 32)\n"
    "\n"
    "The tokenizers are tiny too: the Qwen one knows only the words of the Kandinsky prompt templates (split\n"
    "exactly as the real Qwen2.5 tokenizer splits them, so the official prefix crop applies) and spells every\n"
    "other word byte by byte; the CLIP one is byte-level.\n";

const char* const kFullSizeReadme =
    "k5 full-size random model (k5 create-demo-model --full-size)\n"
    "==========================================================\n"
    "\n"
    "Video Lite text-to-video 5 s in the official layout at the released sizes (CrossDiT 1792 wide, 32 visual\n"
    "blocks; Qwen2.5-VL-7B's language model; CLIP ViT-L/14's text model; the HunyuanVideo VAE), with RANDOM weights\n"
    "drawn from a fixed seed, for timing and memory runs of `k5 generate` without the real weights. Its videos are\n"
    "meaningless noise. The tokenizers are the demo model's tiny ones (the embedding tables keep the real sizes).\n"
    "\n"
    "  configs/k5_lite_t2v_5s_sft_sd.yaml   the official config's values\n"
    "  weights/model/                        CrossDiT (BF16, ~4 GB)\n"
    "  weights/vae/                          HunyuanVideo causal 3D VAE (F32)\n"
    "  weights/text_encoder/                 Qwen2.5-VL (BF16, ~16 GB; a tiny vision tower)\n"
    "  weights/text_encoder2/                CLIP text model (F32)\n";

// ---- CrossDiT ----------------------------------------------------------------------------------------------

void write_dits(const DemoWriter& w, const std::vector<Variant>& variants) {
  const fs::path& dir = w.dir;
  for (const Variant& v : variants) {
    const KandinskyConfig config =
        load_kandinsky_config((dir / "configs" / (std::string(v.config_name) + ".yaml")).string());
    std::string checkpoint = config.checkpoint_path;
    if (checkpoint.rfind("./", 0) == 0) checkpoint.erase(0, 2);
    w.save_random(dir / checkpoint, crossdit_parameter_shapes(config.dit), v.checkpoint_name, DType::BF16,
                  "random CrossDiT (demo model)");
  }
}

// ---- VAEs (diffusers key names, as src/models/vae_hunyuan and vae_flux load them) --------------------------

// Causal 3D convs sit one level down ("conv1.conv.weight", kernel [O, C, 3, 3, 3]); FLUX's are 2D.
struct VaeShapes {
  ShapeList list;
  bool causal;

  void conv(const std::string& prefix, int64_t in, int64_t out, int64_t kernel) {
    const std::string p = causal ? prefix + "conv." : prefix;
    list.push_back({p + "weight", causal ? Shape{out, in, kernel, kernel, kernel} : Shape{out, in, kernel, kernel}});
    list.push_back({p + "bias", {out}});
  }
  void norm(const std::string& prefix, int64_t channels) {
    list.push_back({prefix + "weight", {channels}});
    list.push_back({prefix + "bias", {channels}});
  }
  void resnet(const std::string& prefix, int64_t in, int64_t out) {
    norm(prefix + "norm1.", in);
    conv(prefix + "conv1.", in, out, 3);
    norm(prefix + "norm2.", out);
    conv(prefix + "conv2.", out, out, 3);
    if (in != out) conv(prefix + "conv_shortcut.", in, out, 1);
  }
  void mid_block(const std::string& prefix, int64_t channels) {
    resnet(prefix + "resnets.0.", channels, channels);
    const std::string a = prefix + "attentions.0.";
    norm(a + "group_norm.", channels);
    for (const char* projection : {"to_q.", "to_k.", "to_v.", "to_out.0."}) {
      list.push_back({a + projection + "weight", {channels, channels}});  // linear layers
      list.push_back({a + projection + "bias", {channels}});
    }
    resnet(prefix + "resnets.1.", channels, channels);
  }
  void one_by_one(const std::string& name, int64_t channels) {
    list.push_back({name + "weight", causal ? Shape{channels, channels, 1, 1, 1} : Shape{channels, channels, 1, 1}});
    list.push_back({name + "bias", {channels}});
  }
};

// `space(i)` / `time(i)`: whether block i resamples space / time (the decoder's up block i mirrors it).
template <typename Space, typename Time>
ShapeList vae_shapes(const std::vector<int64_t>& channels, int layers_per_block, bool causal, bool quant_convs,
                     Space space, Time time) {
  VaeShapes s{{}, causal};
  const size_t blocks = channels.size();
  s.conv("encoder.conv_in.", 3, channels.front(), 3);
  int64_t out = channels.front();
  for (size_t i = 0; i < blocks; ++i) {
    const std::string prefix = "encoder.down_blocks." + std::to_string(i) + ".";
    for (int j = 0; j < layers_per_block; ++j) {
      s.resnet(prefix + "resnets." + std::to_string(j) + ".", j == 0 ? out : channels[i], channels[i]);
    }
    out = channels[i];
    if (space(i) || time(i)) s.conv(prefix + "downsamplers.0.conv.", out, out, 3);
  }
  s.mid_block("encoder.mid_block.", channels.back());
  s.norm("encoder.conv_norm_out.", channels.back());
  s.conv("encoder.conv_out.", channels.back(), 2 * kLatentChannels, 3);
  s.conv("decoder.conv_in.", kLatentChannels, channels.back(), 3);
  s.mid_block("decoder.mid_block.", channels.back());
  out = channels.back();
  for (size_t i = 0; i < blocks; ++i) {
    const std::string prefix = "decoder.up_blocks." + std::to_string(i) + ".";
    const int64_t block_out = channels[blocks - 1 - i];
    for (int j = 0; j < layers_per_block + 1; ++j) {
      s.resnet(prefix + "resnets." + std::to_string(j) + ".", j == 0 ? out : block_out, block_out);
    }
    out = block_out;
    if (space(i) || time(i)) s.conv(prefix + "upsamplers.0.conv.", out, out, 3);
  }
  s.norm("decoder.conv_norm_out.", channels.front());
  s.conv("decoder.conv_out.", channels.front(), 3, 3);
  if (quant_convs) {
    s.causal = false;  // diffusers' quant convs are plain Conv3d: one level, 5-D kernels
    s.list.push_back({"quant_conv.weight", {2 * kLatentChannels, 2 * kLatentChannels, 1, 1, 1}});
    s.list.push_back({"quant_conv.bias", {2 * kLatentChannels}});
    s.list.push_back({"post_quant_conv.weight", {kLatentChannels, kLatentChannels, 1, 1, 1}});
    s.list.push_back({"post_quant_conv.bias", {kLatentChannels}});
  }
  return s.list;
}

json block_types(const char* type, size_t count) { return json(std::vector<std::string>(count, type)); }

void write_hunyuan_vae(const DemoWriter& w) {
  const std::vector<int64_t>& channels = w.sizes.hunyuan_channels;
  // 8x space over 3 blocks, 4x time in blocks 1 and 2 (the official plan for 4 blocks; never the last).
  const size_t blocks = channels.size();
  const auto space = [](size_t i) { return i < 3; };
  const auto time = [&](size_t i) { return i >= blocks - 3 && i + 1 < blocks; };
  json config = {{"_class_name", "AutoencoderKLHunyuanVideo"},
                 {"_diffusers_version", "0.32.0"},
                 {"act_fn", "silu"},
                 {"block_out_channels", channels},
                 {"down_block_types", block_types("HunyuanVideoDownBlock3D", blocks)},
                 {"in_channels", 3},
                 {"latent_channels", kLatentChannels},
                 {"layers_per_block", w.sizes.vae_layers_per_block},
                 {"mid_block_add_attention", true},
                 {"norm_num_groups", w.sizes.vae_groups},
                 {"out_channels", 3},
                 {"scaling_factor", 0.476986},
                 {"spatial_compression_ratio", 8},
                 {"temporal_compression_ratio", 4},
                 {"up_block_types", block_types("HunyuanVideoUpBlock3D", blocks)}};
  const fs::path folder = w.dir / "weights" / "vae";
  fs::create_directories(folder);
  write_json(folder / "config.json", config);
  w.save_random(folder / "diffusion_pytorch_model.safetensors",
                vae_shapes(channels, w.sizes.vae_layers_per_block, true, true, space, time), "vae_hunyuan", DType::F32,
                "random HunyuanVideo VAE (demo model)");
}

void write_flux_vae(const DemoWriter& w) {
  const std::vector<int64_t>& channels = w.sizes.flux_channels;
  const size_t blocks = channels.size();
  const auto space = [&](size_t i) { return i + 1 < blocks; };
  const auto time = [](size_t) { return false; };
  json config = {{"_class_name", "AutoencoderKL"},
                 {"_diffusers_version", "0.30.0.dev0"},
                 {"act_fn", "silu"},
                 {"block_out_channels", channels},
                 {"down_block_types", block_types("DownEncoderBlock2D", blocks)},
                 {"force_upcast", true},
                 {"in_channels", 3},
                 {"latent_channels", kLatentChannels},
                 {"latents_mean", nullptr},
                 {"latents_std", nullptr},
                 {"layers_per_block", w.sizes.vae_layers_per_block},
                 {"mid_block_add_attention", true},
                 {"norm_num_groups", w.sizes.vae_groups},
                 {"out_channels", 3},
                 {"sample_size", 1024},
                 {"scaling_factor", 0.3611},
                 {"shift_factor", 0.1159},
                 {"up_block_types", block_types("UpDecoderBlock2D", blocks)},
                 {"use_post_quant_conv", false},
                 {"use_quant_conv", false}};
  const fs::path folder = w.dir / "weights" / "flux" / "vae";
  fs::create_directories(folder);
  write_json(folder / "config.json", config);
  w.save_random(folder / "diffusion_pytorch_model.safetensors",
                vae_shapes(channels, w.sizes.vae_layers_per_block, false, false, space, time), "vae_flux", DType::F32,
                "random FLUX VAE (demo model)");
}

// ---- Qwen2.5-VL ----------------------------------------------------------------------------------------------

// GPT-2's byte-level alphabet in vocabulary order: the printable bytes (their own code points) first, then the
// others (mapped from U+0100 on); sorting the characters by code point gives exactly that order.
std::vector<std::string> byte_alphabet() {
  std::vector<std::pair<uint32_t, std::string>> chars;
  for (int b = 0; b < 256; ++b) {
    const std::string& c = bpe::byte_to_unicode(uint8_t(b));
    const uint32_t code = c.size() == 1 ? uint8_t(c[0]) : ((uint8_t(c[0]) & 0x1fu) << 6) | (uint8_t(c[1]) & 0x3fu);
    chars.emplace_back(code, c);
  }
  std::sort(chars.begin(), chars.end());
  std::vector<std::string> out;
  for (auto& entry : chars) out.push_back(std::move(entry.second));
  return out;
}

struct QwenVocabulary {
  json vocab = json::object();
  json merges = json::array();
  std::vector<std::pair<std::string, int64_t>> added;  // content, id
  int64_t padded_size = 0;                             // the model's vocab_size
  int64_t id(const std::string& token) const {
    for (const auto& [content, value] : added)
      if (content == token) return value;
    fail("demo model: no added token ", token);
  }
};

QwenVocabulary qwen_vocabulary() {
  QwenVocabulary v;
  int64_t next = 0;
  for (const std::string& c : byte_alphabet()) v.vocab[c] = next++;
  std::istringstream tokens(kQwenTemplateMerges);
  std::string left, right;
  while (tokens >> left >> right) {
    v.merges.push_back(json::array({left, right}));
    const std::string merged = left + right;
    K5_CHECK(!v.vocab.contains(merged), "demo model: duplicate merge result ", merged);
    v.vocab[merged] = next++;
  }
  for (const auto& token : kQwenAddedTokens) v.added.emplace_back(token.first, next++);
  v.padded_size = (next + 63) / 64 * 64;
  return v;
}

json qwen_tokenizer_json(const QwenVocabulary& v) {
  json added = json::array();
  for (size_t i = 0; i < v.added.size(); ++i) {
    added.push_back({{"id", v.added[i].second},
                     {"content", v.added[i].first},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", kQwenAddedTokens[i].second}});
  }
  const json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", json::object({{"type", "NFC"}})},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"},
               {"pattern", json::object({{"Regex", bpe::kQwen2SplitPattern}})},
               {"behavior", "Isolated"},
               {"invert", false}},
              byte_level}}}},
          {"post_processor", byte_level},
          {"decoder", byte_level},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", ""},
            {"end_of_word_suffix", ""},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", v.vocab},
            {"merges", v.merges}}}};
}

// The model's vocabulary: the released size, or (tiny) the tokenizer's, padded.
int64_t qwen_vocab_size(const QwenVocabulary& v, const DemoSizes& z) {
  return z.qwen_vocab ? z.qwen_vocab : v.padded_size;
}

// The released Qwen2.5-VL-7B-Instruct config.json layout (text parameters at the top level), at tiny size.
json qwen_config(const QwenVocabulary& v, const DemoSizes& z) {
  // M-RoPE sections head_dim / 8, 3 / 16, 3 / 16 (2 + 3 + 3 tiny; 16 + 24 + 24 as released).
  const int64_t head_dim = z.qwen_hidden / z.qwen_heads;
  return {
      {"architectures", json::array({"Qwen2_5_VLForConditionalGeneration"})},
      {"attention_dropout", 0.0},
      {"bos_token_id", v.id("<|endoftext|>")},
      {"eos_token_id", v.id("<|im_end|>")},
      {"vision_start_token_id", v.id("<|vision_start|>")},
      {"vision_end_token_id", v.id("<|vision_end|>")},
      {"vision_token_id", v.id("<|vision_pad|>")},
      {"image_token_id", v.id("<|image_pad|>")},
      {"video_token_id", v.id("<|video_pad|>")},
      {"hidden_act", "silu"},
      {"hidden_size", z.qwen_hidden},
      {"initializer_range", 0.02},
      {"intermediate_size", z.qwen_intermediate},
      {"max_position_embeddings", 128000},
      {"max_window_layers", z.qwen_layers},
      {"model_type", "qwen2_5_vl"},
      {"num_attention_heads", z.qwen_heads},
      {"num_hidden_layers", z.qwen_layers},
      {"num_key_value_heads", z.qwen_key_value_heads},
      {"rms_norm_eps", 1e-06},
      {"rope_theta", 1000000.0},
      {"sliding_window", 32768},
      {"tie_word_embeddings", false},
      {"torch_dtype", "bfloat16"},
      {"use_cache", true},
      {"use_sliding_window", false},
      {"rope_scaling", {{"type", "mrope"}, {"mrope_section", {head_dim / 8, 3 * head_dim / 16, 3 * head_dim / 16}}}},
      {"vocab_size", qwen_vocab_size(v, z)},
      {"vision_config",
       {{"depth", kVisionDepth},
        {"hidden_act", "silu"},
        {"hidden_size", kVisionHidden},
        {"intermediate_size", kVisionIntermediate},
        {"num_heads", kVisionHeads},
        {"in_chans", 3},
        {"out_hidden_size", z.qwen_hidden},
        {"patch_size", 14},
        {"spatial_merge_size", 2},
        {"spatial_patch_size", 14},
        {"window_size", 112},
        {"fullatt_block_indexes", json::array({kVisionDepth - 1})},
        {"tokens_per_second", 2},
        {"temporal_patch_size", 2}}}};
}

ShapeList qwen_shapes(const DemoSizes& z, int64_t vocab) {
  const int64_t D = z.qwen_hidden, hd = D / z.qwen_heads, kv = z.qwen_key_value_heads * hd, I = z.qwen_intermediate;
  ShapeList list{{"model.embed_tokens.weight", {vocab, D}}};
  for (int64_t i = 0; i < z.qwen_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    list.push_back({p + "input_layernorm.weight", {D}});
    list.push_back({p + "self_attn.q_proj.weight", {D, D}});
    list.push_back({p + "self_attn.q_proj.bias", {D}});
    list.push_back({p + "self_attn.k_proj.weight", {kv, D}});
    list.push_back({p + "self_attn.k_proj.bias", {kv}});
    list.push_back({p + "self_attn.v_proj.weight", {kv, D}});
    list.push_back({p + "self_attn.v_proj.bias", {kv}});
    list.push_back({p + "self_attn.o_proj.weight", {D, D}});
    list.push_back({p + "post_attention_layernorm.weight", {D}});
    list.push_back({p + "mlp.gate_proj.weight", {I, D}});
    list.push_back({p + "mlp.up_proj.weight", {I, D}});
    list.push_back({p + "mlp.down_proj.weight", {D, I}});
  }
  list.push_back({"model.norm.weight", {D}});
  list.push_back({"lm_head.weight", {vocab, D}});
  // The vision tower, released key names: 2x14x14 patches, blocks, and the 2x2 patch merger.
  const int64_t V = kVisionHidden, merged = 4 * kVisionHidden;
  list.push_back({"visual.patch_embed.proj.weight", {V, 3, 2, 14, 14}});
  for (int64_t i = 0; i < kVisionDepth; ++i) {
    const std::string p = "visual.blocks." + std::to_string(i) + ".";
    list.push_back({p + "norm1.weight", {V}});
    list.push_back({p + "norm2.weight", {V}});
    list.push_back({p + "attn.qkv.weight", {3 * V, V}});
    list.push_back({p + "attn.qkv.bias", {3 * V}});
    list.push_back({p + "attn.proj.weight", {V, V}});
    list.push_back({p + "attn.proj.bias", {V}});
    for (const char* projection : {"gate_proj", "up_proj"}) {
      list.push_back({p + "mlp." + projection + ".weight", {kVisionIntermediate, V}});
      list.push_back({p + "mlp." + projection + ".bias", {kVisionIntermediate}});
    }
    list.push_back({p + "mlp.down_proj.weight", {V, kVisionIntermediate}});
    list.push_back({p + "mlp.down_proj.bias", {V}});
  }
  list.push_back({"visual.merger.ln_q.weight", {V}});
  list.push_back({"visual.merger.mlp.0.weight", {merged, merged}});
  list.push_back({"visual.merger.mlp.0.bias", {merged}});
  list.push_back({"visual.merger.mlp.2.weight", {D, merged}});
  list.push_back({"visual.merger.mlp.2.bias", {D}});
  return list;
}

void write_qwen(const DemoWriter& w) {
  const QwenVocabulary vocabulary = qwen_vocabulary();
  const fs::path folder = w.dir / "weights" / "text_encoder";
  fs::create_directories(folder);
  write_json(folder / "config.json", qwen_config(vocabulary, w.sizes));
  write_text(folder / "tokenizer.json", qwen_tokenizer_json(vocabulary).dump() + "\n");
  // Prompt expansion reads the generation settings (Qwen2.5-VL-7B-Instruct's, with this vocabulary's stop
  // tokens); the vision tower the image processor's (small images, so the demo stays fast).
  write_json(folder / "generation_config.json",
             {{"do_sample", true},
              {"temperature", 0.1},
              {"top_k", 1},
              {"top_p", 0.001},
              {"repetition_penalty", 1.05},
              {"eos_token_id", {vocabulary.id("<|im_end|>"), vocabulary.id("<|endoftext|>")}},
              {"pad_token_id", vocabulary.id("<|endoftext|>")},
              {"bos_token_id", vocabulary.id("<|endoftext|>")}});
  write_json(folder / "preprocessor_config.json", {{"min_pixels", 56 * 56},
                                                   {"max_pixels", 28 * 28 * 64},
                                                   {"patch_size", 14},
                                                   {"temporal_patch_size", 2},
                                                   {"merge_size", 2},
                                                   {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
                                                   {"image_std", {0.26862954, 0.26130258, 0.27577711}},
                                                   {"resample", 3},
                                                   {"image_processor_type", "Qwen2VLImageProcessor"}});
  w.save_random(folder / "model.safetensors", qwen_shapes(w.sizes, qwen_vocab_size(vocabulary, w.sizes)), "qwen25vl",
                DType::BF16, "random Qwen2.5-VL language model (demo model)");
}

// ---- CLIP ----------------------------------------------------------------------------------------------------

void write_clip(const DemoWriter& w) {
  const DemoSizes& z = w.sizes;
  const int64_t vocab_size = z.clip_vocab ? z.clip_vocab : kClipTokenizerVocab;
  const fs::path folder = w.dir / "weights" / "text_encoder2";
  fs::create_directories(folder);
  // As the released openai/clip-vit-large-patch14 text config: eos_token_id 2 is the legacy value that makes
  // the pooled position argmax(input_ids), <|endoftext|> having the highest id.
  const json config = {{"architectures", json::array({"CLIPTextModel"})},
                       {"attention_dropout", 0.0},
                       {"bos_token_id", 0},
                       {"eos_token_id", 2},
                       {"hidden_act", "quick_gelu"},
                       {"hidden_size", z.clip_hidden},
                       {"initializer_factor", 1.0},
                       {"initializer_range", 0.02},
                       {"intermediate_size", z.clip_intermediate},
                       {"layer_norm_eps", 1e-05},
                       {"max_position_embeddings", kClipPositions},
                       {"model_type", "clip_text_model"},
                       {"num_attention_heads", z.clip_heads},
                       {"num_hidden_layers", z.clip_layers},
                       {"pad_token_id", 1},
                       {"projection_dim", z.clip_hidden},
                       {"torch_dtype", "float32"},
                       {"vocab_size", vocab_size}};
  write_json(folder / "config.json", config);
  json vocab = json::object();
  int64_t next = 0;
  const std::vector<std::string> alphabet = byte_alphabet();
  for (const std::string& c : alphabet) vocab[c] = next++;
  for (const std::string& c : alphabet) vocab[c + "</w>"] = next++;
  vocab["<|startoftext|>"] = next++;
  vocab["<|endoftext|>"] = next++;
  write_text(folder / "vocab.json", vocab.dump() + "\n");
  write_text(folder / "merges.txt", "#version: 0.2\n");  // no merges: every word is spelled byte by byte

  const int64_t D = z.clip_hidden, I = z.clip_intermediate;
  ShapeList list{{"text_model.embeddings.token_embedding.weight", {vocab_size, D}},
                 {"text_model.embeddings.position_embedding.weight", {kClipPositions, D}}};
  for (int64_t i = 0; i < z.clip_layers; ++i) {
    const std::string p = "text_model.encoder.layers." + std::to_string(i) + ".";
    for (const char* projection : {"k_proj", "v_proj", "q_proj", "out_proj"}) {
      list.push_back({p + "self_attn." + projection + ".weight", {D, D}});
      list.push_back({p + "self_attn." + projection + ".bias", {D}});
    }
    list.push_back({p + "layer_norm1.weight", {D}});
    list.push_back({p + "layer_norm1.bias", {D}});
    list.push_back({p + "mlp.fc1.weight", {I, D}});
    list.push_back({p + "mlp.fc1.bias", {I}});
    list.push_back({p + "mlp.fc2.weight", {D, I}});
    list.push_back({p + "mlp.fc2.bias", {D}});
    list.push_back({p + "layer_norm2.weight", {D}});
    list.push_back({p + "layer_norm2.bias", {D}});
  }
  list.push_back({"text_model.final_layer_norm.weight", {D}});
  list.push_back({"text_model.final_layer_norm.bias", {D}});
  w.save_random(folder / "model.safetensors", list, "clip", DType::F32, "random CLIP text model (demo model)");
}

}  // namespace

void write_demo_model(const std::string& dir, uint64_t seed, bool full_size) {
  K5_CHECK(!dir.empty(), "create-demo-model: empty output folder name");
  const fs::path root(dir);
  std::error_code error;
  fs::create_directories(root / "configs", error);
  K5_CHECK(!error, "create-demo-model: cannot create ", (root / "configs").string(), ": ", error.message());
  const std::vector<Variant> chosen = variants(full_size);
  // One kind per folder: the other kind's configs would point at these files with the wrong sizes.
  for (const auto& entry : fs::directory_iterator(root / "configs")) {
    const std::string name = entry.path().stem().string();
    const bool ours =
        std::any_of(chosen.begin(), chosen.end(), [&](const Variant& v) { return name == v.config_name; });
    K5_CHECK(ours || entry.path().extension() != ".yaml", "create-demo-model: ", root.string(),
             " holds another model's config ", entry.path().filename().string(), "; use an empty folder");
  }
  fs::create_directories(root / "weights" / "model");
  ThreadPool pool(0);
  const DemoWriter writer{root, seed, full_size ? kVideoLiteSizes : kTinySizes, pool};
  for (const Variant& v : chosen)
    write_text(root / "configs" / (std::string(v.config_name) + ".yaml"), config_yaml(v, writer.sizes));
  write_dits(writer, chosen);
  write_hunyuan_vae(writer);
  if (!full_size) write_flux_vae(writer);  // the full-size folder is the video model's only
  write_qwen(writer);
  write_clip(writer);
  write_text(root / "README.txt", full_size ? kFullSizeReadme : kReadme);  // last: its presence means it is complete
}

}  // namespace k5
