# Inputs of the LoRA load benchmark (bench/results/lora-cpu.md), written to the current folder:
# lora_visual.safetensors, a random rank-32 BF16 adapter on every attention projection and both feed-forward layers
# of the 32 visual blocks of Video Lite (model_dim 1792, ff_dim 7168), and lite_in.safetensors, a tiny
# `k5 forward dit` input for the T2V Lite DiT (visual_cond: 33 latent channels).
import torch
from safetensors.torch import save_file
torch.manual_seed(0)
d, ff, r = 1792, 7168, 32
t = {}
for b in range(32):
    layers = []
    for att in ("self_attention", "cross_attention"):
        for p in ("to_query", "to_key", "to_value", "out_layer"):
            layers.append((f"visual_transformer_blocks.{b}.{att}.{p}", d, d))
    layers.append((f"visual_transformer_blocks.{b}.feed_forward.in_layer", d, ff))
    layers.append((f"visual_transformer_blocks.{b}.feed_forward.out_layer", ff, d))
    for name, i, o in layers:
        t[name + ".lora_A.weight"] = (torch.randn(r, i) * 0.02).bfloat16()
        t[name + ".lora_B.weight"] = (torch.randn(o, r) * 0.02).bfloat16()
save_file(t, "lora_visual.safetensors")
save_file({"x": torch.randn(1, 2, 2, 33), "text_embed": torch.randn(4, 3584), "pooled_text_embed": torch.randn(1, 768),
           "time": torch.tensor([500.0])}, "lite_in.safetensors")
