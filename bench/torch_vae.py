#!/usr/bin/env python3
"""PyTorch side of bench/run_vae.sh: a HunyuanVideo VAE decoder with the real channel widths
(block_out_channels 128/256/512/512, 16 latent channels) and seeded random weights.

  python3 bench/torch_vae.py prepare DIR --latent T H W   writes DIR/{config.json, weights.safetensors, inputs.safetensors}
  python3 bench/torch_vae.py run DIR --threads N [--repeat R] decodes with the official vae.py (untiled), writes
                                                          DIR/torch_out.safetensors, prints the best wall time
  python3 bench/torch_vae.py compare DIR                  relative L2 of DIR/k5_out.safetensors vs torch_out

The official kandinsky/models/vae.py is imported from --official (default /tmp/k5_vae.py; see tools/golden/vae.py).
"""
import argparse
import importlib.util
import json
import os
import time

import torch
from safetensors.torch import load_file, save_file

CONFIG = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 16,
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "act_fn": "silu",
    "norm_num_groups": 32, "scaling_factor": 0.476986, "spatial_compression_ratio": 8,
    "temporal_compression_ratio": 4, "mid_block_add_attention": True,
}


def official(path):
    spec = importlib.util.spec_from_file_location("k5_official_vae", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(args):
    torch.manual_seed(0)
    vae = official(args.official).AutoencoderKLHunyuanVideo(**CONFIG).eval()
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.normal_(1.0, 0.1)
            elif p.dim() == 1:
                p.normal_(0.0, 0.05)
    return vae


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["prepare", "run", "compare"])
    parser.add_argument("dir")
    parser.add_argument("--latent", type=int, nargs=3, default=[2, 16, 16])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--official", default="/tmp/k5_vae.py")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    torch.set_num_threads(args.threads)
    if args.action == "prepare":
        vae = build(args)
        state = {k: v.contiguous() for k, v in vae.state_dict().items() if not k.startswith("encoder.") and k != "quant_conv.weight" and k != "quant_conv.bias"}
        save_file(state, os.path.join(args.dir, "weights.safetensors"))
        with open(os.path.join(args.dir, "config.json"), "w") as f:
            json.dump(CONFIG, f)
        t, h, w = args.latent
        latents = torch.randn((1, 16, t, h, w), generator=torch.Generator().manual_seed(7))
        save_file({"latents": latents}, os.path.join(args.dir, "inputs.safetensors"))
    elif args.action == "run":
        vae = build(args)
        latents = load_file(os.path.join(args.dir, "inputs.safetensors"))["latents"]
        vae.use_tiling = False
        vae.use_framewise_decoding = False
        best = float("inf")
        with torch.no_grad():
            for _ in range(args.repeat):
                start = time.perf_counter()
                sample = vae._decode(latents).sample
                best = min(best, time.perf_counter() - start)
        save_file({"sample": sample.contiguous()}, os.path.join(args.dir, "torch_out.safetensors"))
        print(f"torch_decode_seconds {best:.3f}")
    else:
        a = load_file(os.path.join(args.dir, "k5_out.safetensors"))["sample"]
        b = load_file(os.path.join(args.dir, "torch_out.safetensors"))["sample"]
        print(f"relative_l2 {float((a - b).norm() / b.norm()):.3g}")


if __name__ == "__main__":
    main()
