"""Qwen2.5-VL-7B-shaped language model on the CPU: weights for k5 and the PyTorch (transformers) timing.

  python3 bench/torch_qwen.py prepare DIR [--layers N] [--tokens L]   random BF16 weights (released key layout),
                                                                     config.json, inputs.safetensors
  python3 bench/torch_qwen.py run DIR [--threads T]                  transformers forward, BF16; prints
                                                                     torch_forward_seconds and peak RSS
The 7B shape: hidden 3584, intermediate 18944, 28 q / 4 kv heads, vocab 152064; --layers trims the depth.
"""
import argparse
import json
import math
import os
import resource
import struct
import time

import torch
from safetensors import safe_open
from safetensors.torch import save_file

SHAPE = dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
             vocab_size=152064, rms_norm_eps=1e-6, rope_theta=1000000.0, hidden_act="silu",
             max_position_embeddings=128000, tie_word_embeddings=False)


def prepare(args):
    os.makedirs(args.dir, exist_ok=True)
    config = dict(SHAPE, num_hidden_layers=args.layers, model_type="qwen2_5_vl",
                  architectures=["Qwen2_5_VLForConditionalGeneration"],
                  rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]})
    with open(os.path.join(args.dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    g = torch.Generator().manual_seed(0)
    D, F, hd = SHAPE["hidden_size"], SHAPE["intermediate_size"], SHAPE["hidden_size"] // SHAPE["num_attention_heads"]
    kv = SHAPE["num_key_value_heads"] * hd

    def rand(*shape, std=0.02):
        return (torch.randn(*shape, generator=g) * std).to(torch.bfloat16)

    # (name, shape, std, offset) in generation order; written tensor by tensor so the 28-layer file (15 GB)
    # never sits in memory.
    entries = [("model.embed_tokens.weight", (SHAPE["vocab_size"], D), 1.0, 0), ("model.norm.weight", (D,), 0.1, 1)]
    for i in range(args.layers):
        p = f"model.layers.{i}."
        entries += [(p + "input_layernorm.weight", (D,), 0.1, 1), (p + "post_attention_layernorm.weight", (D,), 0.1, 1),
                    (p + "self_attn.q_proj.weight", (D, D), 0.02, 0), (p + "self_attn.q_proj.bias", (D,), 0.02, 0),
                    (p + "self_attn.k_proj.weight", (kv, D), 0.02, 0), (p + "self_attn.k_proj.bias", (kv,), 0.02, 0),
                    (p + "self_attn.v_proj.weight", (kv, D), 0.02, 0), (p + "self_attn.v_proj.bias", (kv,), 0.02, 0),
                    (p + "self_attn.o_proj.weight", (D, D), 0.02, 0),
                    (p + "mlp.gate_proj.weight", (F, D), 0.02, 0), (p + "mlp.up_proj.weight", (F, D), 0.02, 0),
                    (p + "mlp.down_proj.weight", (D, F), 0.02, 0)]
    header, offset = {}, 0
    for name, shape, _, _ in entries:
        size = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(os.path.join(args.dir, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for _, shape, std, base in entries:
            f.write((base + rand(*shape, std=std)).view(torch.int16).numpy().tobytes())
    ids = torch.randint(0, SHAPE["vocab_size"], (1, args.tokens), generator=g)
    save_file({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, os.path.join(args.dir, "inputs.safetensors"))


def run(args):
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.dir, "config.json")) as f:
        c = json.load(f)
    config = Qwen2_5_VLTextConfig(**{k: c[k] for k in SHAPE if k != "rope_theta"}, num_hidden_layers=c["num_hidden_layers"],
                                  rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24],
                                                   "rope_theta": c["rope_theta"]})
    start = time.time()
    with torch.device("meta"):
        model = Qwen2_5_VLTextModel(config)
    state = {}
    with safe_open(os.path.join(args.dir, "model.safetensors"), "pt") as f:
        for k in f.keys():
            state[k[len("model."):]] = f.get_tensor(k)
    model.load_state_dict(state, assign=True)
    del state
    model = model.to(torch.bfloat16).eval()
    model.rotary_emb.inv_freq = model.rotary_emb.compute_default_rope_parameters(config)[0]
    with safe_open(os.path.join(args.dir, "inputs.safetensors"), "pt") as f:
        ids, mask = f.get_tensor("input_ids"), f.get_tensor("attention_mask")
    load = time.time() - start
    with torch.no_grad():
        start = time.time()
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        seconds = time.time() - start
    if args.output:
        save_file({"hidden_states": out.float().contiguous()}, args.output)
    print(f"torch_load_seconds {load:.2f}")
    print(f"torch_forward_seconds {seconds:.3f}")
    print(f"torch_peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["prepare", "run"])
    parser.add_argument("dir")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    prepare(args) if args.mode == "prepare" else run(args)
