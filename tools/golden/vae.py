#!/usr/bin/env python3
"""Goldens for the VAEs (tests/golden/vae/): tiny random-weight configs run by the reference code.

HunyuanVideo: the official Kandinsky 5 `kandinsky/models/vae.py` (AutoencoderKLHunyuanVideo with its own
tiling), read from a local copy at generation time and never committed:
    git -C <mirror of kandinskylab/kandinsky-5> show HEAD:kandinsky/models/vae.py > /tmp/k5_vae.py
FLUX: diffusers' AutoencoderKL.

Usage: python3 tools/golden/vae.py [--official /tmp/k5_vae.py] [--out tests/golden/vae]
Deterministic (seeded); float32 on the CPU.
"""
import argparse
import importlib.util
import json
import os

import torch
from safetensors.torch import save_file

HUNYUAN_CONFIG = {
    "_class_name": "AutoencoderKLHunyuanVideo",
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "down_block_types": ["HunyuanVideoDownBlock3D"] * 3,
    "up_block_types": ["HunyuanVideoUpBlock3D"] * 3,
    "block_out_channels": [8, 16, 16],
    "layers_per_block": 1,
    "act_fn": "silu",
    "norm_num_groups": 4,
    "scaling_factor": 0.476986,
    "spatial_compression_ratio": 4,
    "temporal_compression_ratio": 4,
    "mid_block_add_attention": True,
}
# apply_tiling(tile=(1, frames + 1, height, width), stride=(frames, height, width)) in sample units.
HUNYUAN_TILE = (1, 9, 16, 16)
HUNYUAN_STRIDE = (4, 12, 12)

FLUX_CONFIG = {
    "_class_name": "AutoencoderKL",
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [8, 16, 16],
    "layers_per_block": 1,
    "act_fn": "silu",
    "norm_num_groups": 4,
    "sample_size": 32,
    "scaling_factor": 0.3611,
    "shift_factor": 0.1159,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "mid_block_add_attention": True,
    "force_upcast": True,
}


def randomise(module, generator):
    """Every parameter random: default init for convs/linears re-drawn, norm affines off their 1/0 init."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if "norm" in name and name.endswith("weight"):
                parameter.copy_(1.0 + 0.2 * noise)
            elif parameter.dim() == 1:
                parameter.copy_(0.1 * noise)
            else:
                fan_in = parameter[0].numel()
                parameter.copy_(noise * (1.5 / fan_in) ** 0.5)


def load_official(path):
    spec = importlib.util.spec_from_file_location("k5_official_vae", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hunyuan(official, out_dir):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1234)
    config = {k: v for k, v in HUNYUAN_CONFIG.items() if not k.startswith("_")}
    vae = official.AutoencoderKLHunyuanVideo(**config).eval()
    randomise(vae, generator)
    latents = torch.randn((1, 4, 5, 7, 7), generator=generator)
    sample = torch.rand((1, 3, 17, 28, 28), generator=generator) * 2 - 1
    tensors = {"decode.latents": latents, "encode.sample": sample}
    with torch.no_grad():
        vae.use_tiling = False
        vae.use_framewise_decoding = False
        tensors["decode.untiled"] = vae._decode(latents).sample
        posterior = official.DiagonalGaussianDistribution(vae._encode(sample))
        tensors["encode.untiled.mean"] = posterior.mean
        tensors["encode.untiled.logvar"] = posterior.logvar
        # One latent frame (the causal upsamplers' single-frame path); its own generator keeps the rest stable.
        single = torch.randn((1, 4, 1, 7, 7), generator=torch.Generator().manual_seed(99))
        tensors["decode.single.latents"] = single
        tensors["decode.single"] = vae._decode(single).sample
        vae.use_framewise_decoding = True
        vae.apply_tiling(HUNYUAN_TILE, HUNYUAN_STRIDE)
        tensors["decode.tiled"] = vae._decode(latents).sample
        posterior = official.DiagonalGaussianDistribution(vae._encode(sample))
        tensors["encode.tiled.mean"] = posterior.mean
        tensors["encode.tiled.logvar"] = posterior.logvar
    metadata = {"tile": json.dumps(HUNYUAN_TILE), "stride": json.dumps(HUNYUAN_STRIDE)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "hunyuan_cases.safetensors"),
              metadata=metadata)
    save_file({k: v.detach().contiguous() for k, v in vae.state_dict().items()},
              os.path.join(out_dir, "hunyuan_weights.safetensors"))
    with open(os.path.join(out_dir, "hunyuan_config.json"), "w") as f:
        json.dump(HUNYUAN_CONFIG, f, indent=2)


def flux(out_dir):
    from diffusers import AutoencoderKL
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(4321)
    config = {k: v for k, v in FLUX_CONFIG.items() if not k.startswith("_")}
    vae = AutoencoderKL(**config).eval()
    randomise(vae, generator)
    latents = torch.randn((1, 4, 12, 12), generator=generator)
    image = torch.rand((1, 3, 48, 48), generator=generator) * 2 - 1
    tensors = {"decode.latents": latents, "encode.sample": image}
    with torch.no_grad():
        for tiled in (False, True):
            vae.use_tiling = tiled
            name = "tiled" if tiled else "untiled"
            tensors[f"decode.{name}"] = vae._decode(latents).sample
            posterior = DiagonalGaussianDistribution(vae._encode(image))
            tensors[f"encode.{name}.mean"] = posterior.mean
            tensors[f"encode.{name}.logvar"] = posterior.logvar
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "flux_cases.safetensors"))
    save_file({k: v.detach().contiguous() for k, v in vae.state_dict().items()},
              os.path.join(out_dir, "flux_weights.safetensors"))
    with open(os.path.join(out_dir, "flux_config.json"), "w") as f:
        json.dump(FLUX_CONFIG, f, indent=2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--official", default="/tmp/k5_vae.py")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../../tests/golden/vae"))
    parser.add_argument("--only", choices=["hunyuan", "flux"], default=None)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    if args.only in (None, "hunyuan"):
        hunyuan(load_official(args.official), args.out)
    if args.only in (None, "flux"):
        flux(args.out)


if __name__ == "__main__":
    main()
