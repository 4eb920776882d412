"""PyTorch side of bench/run_dit.sh: the CrossDiT forward with diffusers' Kandinsky5Transformer3DModel.

    python3 bench/torch_dit.py prepare DIR [--blocks N]   # random Lite-architecture weights + config for k5
    python3 bench/torch_dit.py run DIR T H W L PRECISION THREADS REPEAT

`prepare` writes DIR/dit.safetensors (BF16, the official key names, which diffusers shares) and DIR/config.yaml
(the official Video Lite 5 s config with fewer blocks). `run` times one forward (batch 1, latent [T, H, W],
L text tokens) in PRECISION fp32 (float32 weights and activations) or bf16 (bfloat16 weights and activations,
PyTorch's fastest CPU BF16 setting) and prints `torch dit PRECISION TOKENS SECONDS`.
"""
import os
import sys
import time

import torch
import yaml
from diffusers import Kandinsky5Transformer3DModel
from safetensors.torch import load_file, save_file

LITE = dict(in_visual_dim=16, out_visual_dim=16, time_dim=512, patch_size=(1, 2, 2), model_dim=1792, ff_dim=7168,
            num_text_blocks=2, axes_dims=(16, 24, 24), visual_cond=True, in_text_dim=3584, in_text_dim2=768)
OFFICIAL_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "k5-official",
                               "configs", "k5_lite_t2v_5s_sft_sd.yaml")


def build(blocks):
    return Kandinsky5Transformer3DModel(**LITE, num_visual_blocks=blocks, attention_type="regular")


def prepare(directory, blocks):
    os.makedirs(directory, exist_ok=True)
    torch.manual_seed(0)
    model = build(blocks)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, parameter.shape[1] ** -0.5)
            else:
                parameter.normal_(1.0 if "norm" in name else 0.0, 0.02)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()},
              os.path.join(directory, "dit.safetensors"))
    config = yaml.safe_load(open(OFFICIAL_CONFIG))
    config["model"]["dit_params"]["num_visual_blocks"] = blocks
    with open(os.path.join(directory, "config.yaml"), "w") as out:
        yaml.safe_dump(config, out)


def run(directory, t, h, w, text_tokens, precision, threads, repeat):
    torch.set_num_threads(threads)
    config = yaml.safe_load(open(os.path.join(directory, "config.yaml")))
    model = build(config["model"]["dit_params"]["num_visual_blocks"])
    model.load_state_dict(load_file(os.path.join(directory, "dit.safetensors")))
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    model = model.to(dtype).eval()
    if dtype == torch.bfloat16:
        # As diffusers loads it with torch_dtype=bfloat16: time embedding and modulations stay float32.
        for name, module in model.named_modules():
            if any(part in model._keep_in_fp32_modules for part in name.split(".")):
                module.float()
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(1, t, h, w, 33, generator=generator).to(dtype)
    text = torch.randn(1, text_tokens, 3584, generator=generator).to(dtype)
    pooled = torch.randn(1, 768, generator=generator).to(dtype)
    timestep = torch.tensor([500.0], dtype=dtype)
    rope = [torch.arange(t), torch.arange(h // 2), torch.arange(w // 2)]
    scale = tuple(config["metrics"]["scale_factor"])

    def forward():
        return model(hidden_states=latents, encoder_hidden_states=text, pooled_projections=pooled, timestep=timestep,
                     visual_rope_pos=rope, text_rope_pos=torch.arange(text_tokens), scale_factor=scale,
                     return_dict=False)[0]

    best = float("inf")
    with torch.inference_mode():
        forward()
        for _ in range(repeat):
            start = time.perf_counter()
            forward()
            best = min(best, time.perf_counter() - start)
    print(f"torch dit {precision} {t * (h // 2) * (w // 2)} {best:.4f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], int(sys.argv[4]) if len(sys.argv) > 4 else 2)
    else:
        run(sys.argv[2], *map(int, sys.argv[3:7]), sys.argv[7], int(sys.argv[8]), int(sys.argv[9]))
