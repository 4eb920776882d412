"""Goldens for the Qwen2.5-VL language model (text path) and the CLIP text model.

Tiny random-weight configs run through transformers (fp32, eager/sdpa as configured by default); the weights
are saved with the key layout of the released checkpoints (Qwen: model.layers.N..., CLIP: text_model.*),
plus config.json files. Deterministic (seeded). Run: python3 tools/golden/text_encoders.py
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden", "text_encoders")


def randomise(model, seed):
    # Every parameter random (norm weights and biases too) so every path is live.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layer_norm" in name or "layernorm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=g))


def qwen():
    text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=1000, rms_norm_eps=1e-6, max_position_embeddings=256,
                hidden_act="silu", tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0})
    vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                  fullatt_block_indexes=[0], patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                  window_size=56)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, vocab_size=1000, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    randomise(model, 1)
    L = 12
    g = torch.Generator().manual_seed(2)
    input_ids = torch.randint(0, 1000, (1, L), generator=g)
    attention_mask = torch.ones(1, L, dtype=torch.int64)
    attention_mask[0, 9:] = 0  # right padding, as the Kandinsky embedder pads
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden = out.hidden_states[-1]
        last = model.model.language_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        unpadded = model(input_ids=input_ids[:, :9], output_hidden_states=True).hidden_states[-1]
    print("qwen: hidden_states[-1] == final-norm output:", torch.allclose(hidden, last, atol=1e-6),
          " real tokens vs unpadded run:", (hidden[:, :9] - unpadded).abs().max().item())
    # The released checkpoints name the language model model.*, the vision tower visual.*, and lm_head.
    state = {}
    for k, v in model.state_dict().items():
        if k.startswith("model.language_model."):
            state["model." + k[len("model.language_model."):]] = v
        elif k.startswith("model.visual."):
            state["visual." + k[len("model.visual."):]] = v
        else:
            state[k] = v
    state = {k: v.contiguous() for k, v in state.items()}
    save_file(state, os.path.join(OUT, "qwen_tiny.safetensors"))
    with open(os.path.join(OUT, "qwen_tiny_config.json"), "w") as f:
        f.write(config.to_json_string())
    # The released Qwen2.5-VL config.json style: text parameters at the top level, rope_scaling with mrope.
    released = {"architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
                "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "vocab_size": 1000, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                "hidden_act": "silu", "max_position_embeddings": 256, "tie_word_embeddings": False,
                "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
                "vision_config": vision}
    with open(os.path.join(OUT, "qwen_tiny_config_released.json"), "w") as f:
        json.dump(released, f, indent=2)
    save_file({"input_ids": input_ids.to(torch.int64), "attention_mask": attention_mask,
               "hidden_states": hidden.float().contiguous()}, os.path.join(OUT, "qwen_tiny_io.safetensors"))
    # Left padding too: padded query rows see no key at all; transformers still returns finite states there.
    left_mask = torch.ones(1, L, dtype=torch.int64)
    left_mask[0, :3] = 0
    with torch.no_grad():
        left = model(input_ids=input_ids, attention_mask=left_mask, output_hidden_states=True).hidden_states[-1]
    save_file({"input_ids": input_ids.to(torch.int64), "attention_mask": left_mask,
               "hidden_states": left.float().contiguous()}, os.path.join(OUT, "qwen_tiny_left_io.safetensors"))


def clip(name, eos_token_id):
    config = CLIPTextConfig(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                            layer_norm_eps=1e-5, projection_dim=16, bos_token_id=998, eos_token_id=eos_token_id,
                            pad_token_id=1)
    torch.manual_seed(0)
    model = CLIPTextModel(config).eval()
    randomise(model, 3)
    g = torch.Generator().manual_seed(4)
    # Like CLIPTokenizer with padding="max_length": BOS, words, EOS, then pad (= <|endoftext|>, the highest id).
    n_words = 10
    ids = [998] + torch.randint(2, 990, (n_words,), generator=g).tolist() + [999]
    mask = [1] * len(ids) + [0] * (77 - len(ids))
    ids = ids + [999] * (77 - len(ids))
    input_ids = torch.tensor([ids])
    attention_mask = torch.tensor([mask])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask)
    if name == "clip_tiny":  # same seeds and shapes -> the eos variant shares these weights
        # Released CLIPTextModel checkpoints prefix every key with text_model.
        state = {("" if k.startswith("text_model.") else "text_model.") + k: v.contiguous()
                 for k, v in model.state_dict().items()}
        save_file(state, os.path.join(OUT, f"{name}.safetensors"))
    with open(os.path.join(OUT, f"{name}_config.json"), "w") as f:
        f.write(config.to_json_string())
    save_file({"input_ids": input_ids, "attention_mask": attention_mask,
               "last_hidden_state": out.last_hidden_state.contiguous(),
               "pooler_output": out.pooler_output.contiguous()}, os.path.join(OUT, f"{name}_io.safetensors"))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    qwen()
    clip("clip_tiny", 2)         # legacy eos_token_id (the real checkpoint): pooled at argmax(input_ids)
    clip("clip_tiny_eos", 999)   # newer configs: pooled at the first eos_token_id
