#!/usr/bin/env python3
"""Goldens for `k5 generate` (src/pipelines/generation): the latents before the VAE, for the four modes, on a
tiny model folder in the official layout, computed by the official pipeline code.

The official functions run as generate_sample / generate_sample_i2v / generate_sample_ti2i /
get_first_frame_from_image call them, on the CPU in float32, with two documented substitutions:
  - the seeded CUDA generator becomes a seeded CPU generator (k5 `--rng cpu`): noise is
    torch.randn([T, h, w, 16], generator=torch.Generator().manual_seed(seed), dtype=bfloat16), then float32;
    the VAE's latent_dist.sample() draws its eps the same way (a fresh generator seeded with the seed, in the
    VAE's dtype: float16 for HunyuanVideo, bfloat16 for FLUX), i.e. as test.py's seeding leaves the default
    generator when nothing random ran before;
  - the bf16 autocast is off (float32 throughout; the official bf16 helpers run without their casts, as in
    tools/golden/crossdit.py).
Input images are given at the size the official resize would produce, so its torchvision resize is the
identity and is left out (tests/golden/image_resize covers the resize itself).

Models: the tiny DiT of tools/golden/crossdit.py with 16 latent channels and the text widths of the tiny
Qwen2.5-VL / CLIP of tools/golden/encode_text.py (real tokenizers; only the embedding rows the prompts use are
stored); tiny HunyuanVideo / FLUX VAEs with the real compression (16 channels, 8x spatial, 4x temporal).

Writes tests/golden/pipeline/:
  model/                  the folder minus the text encoders' embedding tables and the Qwen tokenizer (the
                          test adds them: tests/golden/tokenizers, ../shared/tokenizers)
  text_encoders.safetensors, qwen_config.json, clip_config.json   as in tests/golden/encode_text
  cases.json              [{name, config, prompt, negative?, width, height, frames, steps?, image?, magcache}]
  expected.safetensors    <name>.latents [T, h, w, 16]
Run: python3 tools/golden/pipeline.py   (needs /tmp/k5off = a checkout of kandinskylab/kandinsky-5)
"""
import importlib.util
import json
import math
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "pipeline")


def load(name):
    spec = importlib.util.spec_from_file_location("k5_golden_" + name, os.path.join(HERE, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


text_golden = load("encode_text")  # strips tools/golden from sys.path (tokenizers.py would shadow a package)
dit_golden = load("crossdit")      # patches the official DiT helpers to float32
vae_golden = load("vae")

import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

kgen = dit_golden.kgen
SEED = 1137
VIDEO_NEGATIVE = text_golden.VIDEO_NEGATIVE
TEXT_DIM = 16
# Qwen2.5-VL-7B-Instruct's generation settings (see tools/golden/qwen_generate.py).
GENERATION = {"do_sample": True, "temperature": 0.1, "top_k": 1, "top_p": 0.001, "repetition_penalty": 1.05,
              "eos_token_id": [151645, 151643], "pad_token_id": 151643, "bos_token_id": 151643}
PREPROCESSOR = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 16, "patch_size": 14, "temporal_patch_size": 2,
                "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "do_resize": True,
                "do_rescale": True, "do_normalize": True, "rescale_factor": 1 / 255}

HUNYUAN = {**vae_golden.HUNYUAN_CONFIG, "latent_channels": 16, "block_out_channels": [8, 8, 16, 16],
           "down_block_types": ["HunyuanVideoDownBlock3D"] * 4, "up_block_types": ["HunyuanVideoUpBlock3D"] * 4,
           "spatial_compression_ratio": 8}
FLUX = {**vae_golden.FLUX_CONFIG, "latent_channels": 16, "block_out_channels": [8, 8, 16, 16],
        "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
        "sample_size": 128}

CASES = [
    {"name": "t2v", "config": "k5_tiny_t2v", "prompt": "A red fox runs through a snowy forest at dawn.",
     "width": 192, "height": 128, "frames": 25},
    {"name": "t2v_magcache", "config": "k5_tiny_t2v", "prompt": "A red fox runs through a snowy forest at dawn.",
     "width": 128, "height": 128, "frames": 9, "magcache": True},
    {"name": "i2v", "config": "k5_tiny_i2v", "prompt": "The cat turns its head and blinks.", "image": "i2v.png",
     "width": 192, "height": 128, "frames": 25},
    # Prompt expansion (on by default in the official pipelines): the expanded text, then the latents.
    {"name": "t2v_expand", "config": "k5_tiny_t2v", "prompt": "A fox in the snow.", "width": 128, "height": 128,
     "frames": 5, "expand": True},
    {"name": "i2v_expand", "config": "k5_tiny_i2v", "prompt": "The cat blinks.", "image": "i2v.png",
     "width": 192, "height": 128, "frames": 25, "expand": True},
    {"name": "i2i_expand", "config": "k5_tiny_i2i", "prompt": "Make the hat red.", "negative": "blurry, low quality",
     "image": "i2i.png", "width": 128, "height": 128, "expand": True},
    {"name": "t2i", "config": "k5_tiny_t2i", "prompt": "A watercolour portrait of a cat in a hat.",
     "width": 128, "height": 128},
    # Text-only image_edit (k5 --text-only-edit): the official encoder without images pads nothing and crops 55
    # tokens, so an empty negative prompt would leave no tokens at all; this case gives one.
    {"name": "i2i", "config": "k5_tiny_i2i", "prompt": "Make the hat of the cat bright red, keep the rest.",
     "negative": "blurry, low quality", "image": "i2i.png", "width": 128, "height": 128, "text_only": True},
    # The official image editing: the source image at half size through the Qwen2.5-VL processor and vision
    # tower into the prompt (image_edit template, no truncation or padding).
    {"name": "i2i_vision", "config": "k5_tiny_i2i", "prompt": "Make the hat of the cat bright red.", "negative": "",
     "image": "i2i.png", "width": 128, "height": 128},
]
CONFIGS = {
    # name: (vae, visual_cond, instruct, steps, guidance, scheduler_scale, qwen max_length)
    "k5_tiny_t2v": ("hunyuan", True, None, 8, 5.0, 5.0, 256),
    "k5_tiny_i2v": ("hunyuan", True, None, 3, 5.0, 5.0, 256),
    "k5_tiny_t2i": ("flux", False, None, 3, 3.5, 3.0, 512),
    "k5_tiny_i2i": ("flux", False, "channel", 3, 3.5, 3.0, 512),
}
DIT = dict(in_visual_dim=16, out_visual_dim=16, in_text_dim=TEXT_DIM, in_text_dim2=TEXT_DIM, time_dim=32,
           patch_size=(1, 2, 2), model_dim=64, ff_dim=128, num_text_blocks=1, num_visual_blocks=2,
           axes_dims=(8, 12, 12))


def official_module(name, path):
    """A module of the official package (peft, used only for LoRA loading, is stubbed)."""
    import types
    if "peft" not in sys.modules:
        peft = types.ModuleType("peft")
        for attr in ("PeftConfig", "LoraConfig", "inject_adapter_in_model", "set_peft_model_state_dict"):
            setattr(peft, attr, object)
        sys.modules["peft"] = peft
    spec = importlib.util.spec_from_file_location("kandinsky." + name, path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "kandinsky"
    spec.loader.exec_module(module)
    return module


def expansion_chat(processor, content, prompt, image):
    """The chat text the official expand_prompt of `content` renders (for the ids the golden must keep)."""
    import ast
    import subprocess
    if content == "i2v":
        text = official_text_module.Qwen2_5_VLTextEmbedder.INSTRUCTION_I2V_EXPAND.format(prompt=prompt)
        parts = [{"type": "image", "image": image}, {"type": "text", "text": text}]
    else:
        source = subprocess.check_output(["git", "--git-dir", "/work/.mirror/kandinskylab+kandinsky-5/repo", "show",
                                          f"HEAD:kandinsky/{content}_pipeline.py"], text=True)
        tree = ast.parse(source)
        fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "expand_prompt")
        joined = next(n for n in ast.walk(fn) if isinstance(n, ast.JoinedStr))
        text = "".join(v.value if isinstance(v, ast.Constant) else prompt for v in joined.values)
        parts = [{"type": "text", "text": text}]
        if content == "i2i":
            parts.append({"type": "image", "image": image.resize((image.size[0] // 4, image.size[1] // 4))})
    return processor.apply_chat_template([{"role": "user", "content": parts}], tokenize=False,
                                         add_generation_prompt=True)


official_text_module = None


def official_mag_ratios():
    import yaml
    path = os.path.join(ROOT, "..", "shared", "k5-official", "configs", "k5_lite_t2v_5s_sft_sd.yaml")
    return yaml.safe_load(open(path))["magcache"]["mag_ratios"]


def write_config(path, name, dit_params, mag_ratios):
    vae, visual_cond, instruct, steps, guidance, scale, max_length = CONFIGS[name]
    lines = ["metrics:", "  scale_factor:", "  - 1.0", "  - 2.0" if vae == "hunyuan" else "  - 1.0",
             "  - 2.0" if vae == "hunyuan" else "  - 1.0", "  resolution: 128", f"  scheduler_scale: {scale}",
             "model:", f'  checkpoint_path: "./weights/model/{name.replace("k5_", "kandinsky5")}.safetensors"',
             f"  num_steps: {steps}", f"  guidance_weight: {guidance}", "  dit_params:"]
    for key in ("in_visual_dim", "out_visual_dim", "time_dim", "model_dim", "ff_dim", "num_text_blocks",
                "num_visual_blocks", "in_text_dim", "in_text_dim2"):
        lines.append(f"    {key}: {dit_params[key]}")
    lines += ["    patch_size:"] + [f"    - {v}" for v in dit_params["patch_size"]]
    lines += ["    axes_dims:"] + [f"    - {v}" for v in dit_params["axes_dims"]]
    lines.append(f"    visual_cond: {'true' if visual_cond else 'false'}")
    if instruct:
        lines.append(f'    instruct_type: "{instruct}"')
    lines += ["  attention:", "    type: flash", "    causal: false", "    local: false", "    glob: false",
              "    window: 3", "  vae:",
              f'    checkpoint_path: "./weights/{"vae" if vae == "hunyuan" else "flux/vae"}/"', f'    name: "{vae}"',
              "  text_embedder:", "    qwen:", f"      emb_size: {TEXT_DIM}",
              '      checkpoint_path: "./weights/text_encoder/"', f"      max_length: {max_length}", "    clip:",
              '      checkpoint_path: "./weights/text_encoder2/"', f"      emb_size: {TEXT_DIM}",
              "      max_length: 77"]
    if mag_ratios:
        lines += ["magcache:", "  mag_ratios: [" + ", ".join(str(r) for r in mag_ratios) + "]"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def conf_for(name, dit_params):
    ns = __import__("types").SimpleNamespace
    vae = CONFIGS[name][0]
    return ns(model=ns(dit_params=ns(patch_size=dit_params["patch_size"]), attention=ns(type="flash")),
              metrics=ns(scale_factor=[1.0, 2.0, 2.0] if vae == "hunyuan" else [1.0, 1.0, 1.0]))


def test_image(width, height, seed):
    """A smooth RGB picture with some detail, deterministic."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    channels = []
    for c in range(3):
        fx, fy, phase = rng.uniform(0.02, 0.15), rng.uniform(0.02, 0.15), rng.uniform(0, 6.28)
        channels.append(127.5 + 100 * np.sin(fx * x + phase) * np.cos(fy * y) + rng.normal(0, 8, (height, width)))
    return np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)


def eps_like(shape, dtype):
    return torch.randn(shape, generator=torch.Generator().manual_seed(SEED), dtype=dtype).float()


def sample_latent(posterior, dtype):
    # DiagonalGaussianDistribution.sample() with eps from a fresh generator seeded with the seed.
    return posterior.mean + posterior.std * eps_like(posterior.mean.shape, dtype)


def main():
    os.makedirs(OUT, exist_ok=True)
    model_dir = os.path.join(OUT, "model")
    shutil.rmtree(model_dir, ignore_errors=True)
    for sub in ("configs", "weights/model", "weights/vae", "weights/flux/vae"):
        os.makedirs(os.path.join(model_dir, sub))
    torch.set_num_threads(1)

    # Text encoders (the official embedder over tiny random models).
    global official_text_module
    official_text = text_golden.official_module("/work/.mirror/kandinskylab+kandinsky-5/repo")
    official_text_module = official_text
    qwen_tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=text_golden.QWEN_JSON,
                                                          pad_token="<|endoftext|>")
    qwen_tokenizer.padding_side = "right"
    clip_tokenizer = transformers.CLIPTokenizer.from_pretrained(text_golden.CLIP_DIR)
    qwen_text = dict(hidden_size=TEXT_DIM, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                     num_key_value_heads=1, vocab_size=151936, rms_norm_eps=1e-6, max_position_embeddings=1024,
                     hidden_act="silu", tie_word_embeddings=False,
                     rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 1e6})
    vision = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=TEXT_DIM,
                  fullatt_block_indexes=[0], patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                  window_size=56)
    # Tied embeddings: lm_head is the (row-pruned) embedding table, so prompt expansion needs no extra golden.
    qwen_text["tie_word_embeddings"] = True
    qwen_config = transformers.Qwen2_5_VLConfig(text_config=qwen_text, vision_config=vision, vocab_size=151936,
                                                tie_word_embeddings=True)
    torch.manual_seed(0)
    qwen = transformers.Qwen2_5_VLForConditionalGeneration(qwen_config).eval()
    text_golden.randomise(qwen, 21)
    assert qwen.lm_head.weight.data_ptr() == qwen.model.language_model.embed_tokens.weight.data_ptr()
    qwen.generation_config = transformers.GenerationConfig(**GENERATION)
    clip_config = transformers.CLIPTextConfig(vocab_size=49408, hidden_size=TEXT_DIM, intermediate_size=32,
                                              num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                              hidden_act="quick_gelu", bos_token_id=0, eos_token_id=2,
                                              pad_token_id=1, projection_dim=16)
    clip = transformers.CLIPTextModel(clip_config).eval()
    text_golden.randomise(clip, 22)

    image_processor = transformers.Qwen2VLImageProcessor(**PREPROCESSOR)
    vl_processor = transformers.Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=qwen_tokenizer,
                                                    video_processor=transformers.Qwen2VLVideoProcessor(),
                                                    chat_template=load("qwen_generate").CHAT_TEMPLATE)
    templates = official_text.Qwen2_5_VLTextEmbedder.PROMPT_TEMPLATE
    contents = {"k5_tiny_t2v": "video", "k5_tiny_i2v": "video", "k5_tiny_t2i": "image", "k5_tiny_i2i": "image_edit"}
    qwen_ids, clip_ids = set(), set()
    for case in CASES:
        content, max_length = contents[case["config"]], CONFIGS[case["config"]][6]
        negative = case.get("negative", VIDEO_NEGATIVE if content == "video" else "")
        for prompt in (case["prompt"], negative):
            full = "\n".join(templates["template"][content]).format(prompt)
            qwen_ids.update(qwen_tokenizer([full], max_length=max_length + templates["crop_start"][content],
                                           truncation=True, padding="max_length")["input_ids"][0])
            clip_ids.update(clip_tokenizer([prompt], max_length=77, truncation=True,
                                           padding="max_length")["input_ids"][0])
    for case in CASES:
        if case.get("expand"):
            mode = "t2v" if "image" not in case else "i2i" if case["config"] == "k5_tiny_i2i" else "i2v"
            image = Image.fromarray(test_image(case["width"], case["height"], seed=3)) if mode != "t2v" else None
            qwen_ids.update(qwen_tokenizer(expansion_chat(vl_processor, mode, case["prompt"], image))["input_ids"])
    qwen_embed_ids, qwen_embed_rows = text_golden.keep_rows(qwen.model.language_model.embed_tokens.weight.data,
                                                            qwen_ids)
    clip_embed_ids, clip_embed_rows = text_golden.keep_rows(clip.embeddings.token_embedding.weight.data, clip_ids)
    qwen_embedder = object.__new__(official_text.Qwen2_5_VLTextEmbedder)
    qwen_embedder.model = qwen
    text_only = text_golden.TextOnlyProcessor(qwen_tokenizer)

    class Processor:  # the official embedder's AutoProcessor: text-only calls only tokenise
        def __call__(self, text, images=None, videos=None, **kw):
            return text_only(text, **kw) if images is None else vl_processor(text=text, images=images, **kw)

        apply_chat_template = staticmethod(vl_processor.apply_chat_template)
        batch_decode = staticmethod(vl_processor.batch_decode)

    qwen_embedder.processor = Processor()
    qwen_embedder.text_token_padding = True
    clip_embedder = object.__new__(official_text.ClipTextEmbedder)
    clip_embedder.model, clip_embedder.tokenizer, clip_embedder.max_length = clip, clip_tokenizer, 77
    embedder = object.__new__(official_text.Kandinsky5TextEmbedder)
    embedder.embedder, embedder.clip_embedder = qwen_embedder, clip_embedder

    # DiTs and configs.
    mag_ratios = official_mag_ratios()
    dits = {}
    for index, name in enumerate(CONFIGS):
        vae, visual_cond, instruct, *_ = CONFIGS[name]
        params = dict(DIT, visual_cond=visual_cond)
        if instruct:
            params["instruct_type"] = instruct
        model, params = dit_golden.make_model(100 + index, **params)
        dits[name] = (model, params)
        write_config(os.path.join(model_dir, "configs", name + ".yaml"), name, params,
                     mag_ratios if name == "k5_tiny_t2v" else None)
        save_file({k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()},
                  os.path.join(model_dir, "weights", "model", name.replace("k5_", "kandinsky5") + ".safetensors"))

    # VAEs.
    official_vae = vae_golden.load_official(os.path.join(dit_golden.OFFICIAL, "kandinsky", "models", "vae.py"))
    generator = torch.Generator().manual_seed(77)
    torch.manual_seed(1)
    hunyuan = official_vae.AutoencoderKLHunyuanVideo(
        **{k: v for k, v in HUNYUAN.items() if not k.startswith("_")}).eval()
    vae_golden.randomise(hunyuan, generator)
    from diffusers import AutoencoderKL
    flux = AutoencoderKL(**{k: v for k, v in FLUX.items() if not k.startswith("_")}).eval()
    vae_golden.randomise(flux, generator)
    for vae, config, sub in ((hunyuan, HUNYUAN, "vae"), (flux, FLUX, "flux/vae")):
        folder = os.path.join(model_dir, "weights", sub)
        save_file({k: v.detach().contiguous() for k, v in vae.state_dict().items()},
                  os.path.join(folder, "diffusion_pytorch_model.safetensors"))
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f, indent=2)

    expected = {}
    for case in CASES:
        name = case["config"]
        model, params = dits[name]
        conf = conf_for(name, params)
        vae_name, _, instruct, steps, guidance, scale, max_length = CONFIGS[name]
        content = contents[name]
        qwen_embedder.max_length = max_length
        negative = case.get("negative", VIDEO_NEGATIVE if content == "video" else "")
        frames = case.get("frames", 1)
        T, h, w = (frames - 1) // 4 + 1, case["height"] // 8, case["width"] // 8
        edit_images = None
        if "image" in case:
            pixels = test_image(case["width"], case["height"], seed=3)
            Image.fromarray(pixels).save(os.path.join(OUT, case["image"]))
            image = torch.from_numpy(pixels).permute(2, 0, 1)[None]  # pil_to_tensor, [1, 3, H, W] uint8
            if content == "image_edit" and not case.get("text_only"):
                edit_images = [image]  # resize_video is the identity at this size
        caption = case["prompt"]
        if case.get("expand"):
            transformers.set_seed(SEED)
            with torch.no_grad():
                if case["config"] == "k5_tiny_i2i":  # i2i_pipeline.expand_prompt with the image as opened
                    i2i = official_module("i2i_pipeline", os.path.join(dit_golden.OFFICIAL, "kandinsky",
                                                                       "i2i_pipeline.py"))
                    pipe = object.__new__(i2i.Kandinsky5I2IPipeline)
                    pipe.text_embedder = embedder
                    caption = pipe.expand_prompt(caption, image=Image.open(os.path.join(OUT, case["image"])))
                elif "image" in case:  # i2v_pipeline: the embedder's expand_text_prompt with the image as read
                    caption = qwen_embedder.expand_text_prompt(caption, Image.open(os.path.join(OUT, case["image"]))
                                                               .convert("RGB"), device="cpu")
                else:
                    t2v = official_module("t2v_pipeline", os.path.join(dit_golden.OFFICIAL, "kandinsky",
                                                                       "t2v_pipeline.py"))
                    pipe = object.__new__(t2v.Kandinsky5T2VPipeline)
                    pipe.text_embedder = embedder
                    caption = pipe.expand_prompt(caption)
            case["expanded"] = caption
            print(f"{case['name']}: expanded to {len(caption)} characters: {caption[:60]!r}")
        with torch.no_grad():
            text, text_cu, mask = embedder.encode([caption], images=edit_images, type_of_content=content)
            null_text, null_cu, null_mask = embedder.encode([negative], images=edit_images, type_of_content=content)
            noise = torch.randn(T, h, w, 16, generator=torch.Generator().manual_seed(SEED),
                                dtype=torch.bfloat16).float()
            img = noise.clone()
            first_frame = None
            if "image" in case:
                if vae_name == "hunyuan":  # get_first_frame_from_image
                    x = (image / 127.5 - 1.0).transpose(0, 1).unsqueeze(0)  # [1, 3, 1, H, W]
                    posterior = hunyuan.encode(x, opt_tiling=False).latent_dist
                    first_frame = sample_latent(posterior, torch.float16).squeeze(0).permute(1, 2, 3, 0)
                    first_frame = first_frame * HUNYUAN["scaling_factor"]
                else:  # generate_sample_ti2i with image_vae
                    x = image.to(torch.bfloat16) / 127.5 - 1.0
                    posterior = flux.encode(x.float()).latent_dist
                    edit = sample_latent(posterior, torch.bfloat16)[:, :, None] * FLUX["scaling_factor"]
                    edit = edit.permute(0, 2, 3, 4, 1).squeeze(0)  # [1, h, w, 16]
                    img = torch.cat([img, torch.cat([edit, torch.ones_like(img[..., :1])], -1)], -1)
            elif instruct == "channel":
                img = torch.cat([img, torch.zeros_like(img), torch.zeros_like(img[..., :1])], -1)
            rope = [torch.arange(T), torch.arange(h // 2), torch.arange(w // 2)]
            if case.get("magcache"):
                magcache = load_official_magcache()
                magcache.set_magcache_params(model, mag_ratios, steps, abs(guidance - 1.0) <= 1e-6)
            latents = kgen.generate(model, "cpu", img, steps, text, null_text, rope,
                                    torch.arange(int(text_cu[-1])), torch.arange(int(null_cu[-1])), guidance, scale,
                                    first_frame, conf, attention_mask=mask, null_attention_mask=null_mask)
            if case.get("magcache"):
                del model.forward  # back to the class's forward
            if first_frame is not None:  # generate_sample_i2v
                latents[:1] = first_frame
                latents = kgen.normalize_first_frame(latents)
        expected[case["name"] + ".latents"] = latents.float().contiguous()
        case_out = {k: v for k, v in case.items()}
        case_out.update(steps=steps, guidance=guidance, scheduler_scale=scale, seed=SEED)
        case.update(case_out)
        print(f"{case['name']}: latents {list(latents.shape)}, |x| {latents.abs().mean():.4f}")

    weights = {"qwen.embed_ids": qwen_embed_ids, "qwen.embed_rows": qwen_embed_rows,
               "clip.embed_ids": clip_embed_ids, "clip.embed_rows": clip_embed_rows}
    for key, value in qwen.state_dict().items():
        if key.startswith("model.language_model.") and "embed_tokens" not in key:
            weights["qwen.model." + key[len("model.language_model."):]] = value.float().contiguous()
        elif key.startswith("model.visual."):  # the transformers 4.x name of the vision tower
            weights["qwen.visual." + key[len("model.visual."):]] = value.float().contiguous()
    for key, value in clip.state_dict().items():
        if "token_embedding" not in key and "position_ids" not in key:
            weights["clip." + ("" if key.startswith("text_model.") else "text_model.") + key] = \
                value.float().contiguous()
    save_file(weights, os.path.join(OUT, "text_encoders.safetensors"))
    with open(os.path.join(OUT, "qwen_generation_config.json"), "w") as f:
        json.dump(GENERATION, f, indent=1)
    with open(os.path.join(OUT, "qwen_preprocessor_config.json"), "w") as f:
        json.dump({**PREPROCESSOR, "image_processor_type": "Qwen2VLImageProcessor"}, f, indent=1)
    with open(os.path.join(OUT, "qwen_config.json"), "w") as f:
        f.write(qwen_config.to_json_string())
    with open(os.path.join(OUT, "clip_config.json"), "w") as f:
        f.write(clip_config.to_json_string())
    save_file(expected, os.path.join(OUT, "expected.safetensors"))
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(CASES, f, indent=1)


def load_official_magcache():
    spec = importlib.util.spec_from_file_location("k5_official_magcache",
                                                  os.path.join(dit_golden.OFFICIAL, "kandinsky", "magcache_utils.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
