"""Goldens for the Qwen2.5-VL vision side (tests/models/qwen25vl/vision_model_test.cpp).

A tiny random Qwen2_5_VLForConditionalGeneration (transformers, CPU, fp32): the vision tower has 4 blocks with
full attention on blocks 1 and 3 and window attention (window_size 56 = 2x2 merged tokens) elsewhere, so
windows really split. Every vision parameter is random and rounded to bfloat16 (stored BF16 to keep the
golden small; the fp32 run uses the same values). Three images go through the real image processor
(Qwen2VLImageProcessor, what AutoProcessor(use_fast=True) gives, with the preprocessor_config.json written
here): 97x61 and 200x150 (downscaled, max_pixels) and 30x20 (upscaled, min_pixels). A templated prompt with
one image goes through Qwen2_5_VLProcessor (the real Qwen2.5 tokenizer from ../shared) and get_rope_index.

Writes tests/golden/qwen_vision/: config.json, preprocessor_config.json, weights.safetensors (model.visual.*),
image{0,1,2}.png, expected.safetensors (pixel_values, image_grid_thw, image_embeds, input_ids_text,
input_ids, position_ids).
Run: python3 tools/golden/qwen_vision.py   (PyPI torch + transformers, CPU)
"""
import json
import os
import sys

# tools/golden/tokenizers.py would shadow the `tokenizers` package transformers imports.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import (AutoImageProcessor, PreTrainedTokenizerFast, Qwen2_5_VLConfig,
                          Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLVideoProcessor)

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "qwen_vision")
TOKENIZER = os.path.join(ROOT, "..", "shared", "tokenizers", "qwen2.5", "tokenizer.json")

VISION = dict(depth=4, hidden_size=32, hidden_act="silu", intermediate_size=48, num_heads=2, in_channels=3,
              patch_size=14, spatial_merge_size=2, temporal_patch_size=2, tokens_per_second=2, window_size=56,
              out_hidden_size=16, fullatt_block_indexes=[1, 3])
TEXT = dict(vocab_size=152064, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 1000000.0})
PREPROCESSOR = {"min_pixels": 3136, "max_pixels": 28 * 28 * 15, "patch_size": 14, "temporal_patch_size": 2,
                "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711], "image_processor_type": "Qwen2VLImageProcessor",
                "processor_class": "Qwen2_5_VLProcessor"}


def smooth_image(rng, width, height):
    # Gradients plus noise: resampling sees both smooth areas and edges.
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255.0 / width, y * 255.0 / height, (x + y) * 127.0 / (width + height)], axis=-1)
    return np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    torch.manual_seed(0)
    config = Qwen2_5_VLConfig(vision_config=VISION, text_config=TEXT, image_token_id=151655, video_token_id=151656,
                              vision_start_token_id=151652, vision_end_token_id=151653)
    model = Qwen2_5_VLForConditionalGeneration(config).eval().float()
    visual = model.model.visual
    with torch.no_grad():
        for name, p in visual.named_parameters():
            # Norm weights around 1, the rest N(0, 1/fan_in): activations stay O(1) through the blocks.
            is_norm = "norm" in name or "ln_q" in name
            values = torch.randn(p.shape) * (0.5 if is_norm else p.shape[-1] ** -0.5) + (1.0 if is_norm else 0.0)
            p.copy_(values.to(torch.bfloat16).float())
    config.save_pretrained(OUT)
    with open(os.path.join(OUT, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROCESSOR, f, indent=2)
    save_file({f"model.visual.{k}": v.to(torch.bfloat16).contiguous() for k, v in visual.state_dict().items()},
              os.path.join(OUT, "weights.safetensors"))

    images = []
    for i, (w, h) in enumerate([(97, 61), (200, 150), (30, 20)]):
        Image.fromarray(smooth_image(rng, w, h)).save(os.path.join(OUT, f"image{i}.png"))
        images.append(Image.open(os.path.join(OUT, f"image{i}.png")).convert("RGB"))

    image_processor = AutoImageProcessor.from_pretrained(OUT, use_fast=True)
    assert type(image_processor).__name__ == "Qwen2VLImageProcessor", type(image_processor)
    processed = image_processor(images=images, return_tensors="pt")
    pixel_values, grid = processed["pixel_values"], processed["image_grid_thw"]
    with torch.no_grad():
        embeds = visual(pixel_values, grid_thw=grid).pooler_output

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=TOKENIZER)
    processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                    video_processor=Qwen2VLVideoProcessor())
    prompt = ("<|im_start|>system\nDescribe the image.<|im_end|>\n<|im_start|>user\nA cat."
              "<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n")
    text_ids = tokenizer(prompt, return_tensors="pt")["input_ids"][0]
    batch = processor(text=[prompt], images=[images[1]], return_tensors="pt")
    input_ids = batch["input_ids"]
    position_ids, _ = model.model.get_rope_index(input_ids, batch["mm_token_type_ids"],
                                                 image_grid_thw=batch["image_grid_thw"])

    save_file({"pixel_values": pixel_values.float().contiguous(), "image_grid_thw": grid.to(torch.int64),
               "image_embeds": embeds.float().contiguous(), "input_ids_text": text_ids.to(torch.int64),
               "input_ids": input_ids[0].to(torch.int64), "position_ids": position_ids[:, 0].contiguous()},
              os.path.join(OUT, "expected.safetensors"))
    print("grid", grid.tolist(), "pixel_values", tuple(pixel_values.shape), "embeds", tuple(embeds.shape),
          "ids", len(text_ids), "->", input_ids.shape[1])


if __name__ == "__main__":
    main()
