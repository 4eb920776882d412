"""Qwen2.5-VL-7B-shaped language model, greedy decoding speed with transformers' `generate` (PyTorch side of
bench/run_qwen_decode.sh).

  python3 bench/torch_qwen_decode.py DIR --prompt-ids FILE [--threads T] [--new-tokens N] [--repeat R]

DIR is bench/torch_qwen.py prepare's folder (random BF16 weights, released key layout, no lm_head).
The model is Qwen2_5_VLForConditionalGeneration in BF16 with tie_word_embeddings: lm_head is the embedding
table, as k5 does for a checkpoint without lm_head.weight (the vision tower is a tiny 1-block stand-in: text-only
prompts never run it). After one warm-up generate(max_new_tokens=1): prefill = best of R
generate(max_new_tokens=1), full = best of R generate(max_new_tokens=N, min_new_tokens=N, do_sample=False,
no eos); decode time per token = (full - prefill) / (N - 1). Prints `torch_* VALUE` lines.
"""
import argparse
import json
import os
import time
import warnings

import torch
from safetensors import safe_open

SHAPE_KEYS = ["hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "vocab_size",
              "rms_norm_eps", "hidden_act", "max_position_embeddings"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--prompt-ids", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)

    with open(os.path.join(args.dir, "config.json")) as f:
        c = json.load(f)
    D = c["hidden_size"]
    text = {k: c[k] for k in SHAPE_KEYS}
    text.update(num_hidden_layers=c["num_hidden_layers"], tie_word_embeddings=True,
                rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": c["rope_theta"]})
    vision = dict(depth=1, hidden_size=64, intermediate_size=64, num_heads=2, out_hidden_size=D, fullatt_block_indexes=[0])
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True)

    start = time.time()
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    state = {}
    with safe_open(os.path.join(args.dir, "model.safetensors"), "pt") as f:
        for k in f.keys():
            state["model.language_model." + k[len("model."):]] = f.get_tensor(k)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    del state
    assert not unexpected, unexpected
    assert all(k.startswith("model.visual.") or k == "lm_head.weight" for k in missing), missing
    lm = model.model.language_model
    model.lm_head.weight = lm.embed_tokens.weight  # tied (the same storage, as transformers ties it)
    model.model.visual = Qwen2_5_VisionTransformerPretrainedModel._from_config(config.vision_config)
    lm.rotary_emb.inv_freq = lm.rotary_emb.compute_default_rope_parameters(config.text_config)[0]
    lm.rotary_emb.original_inv_freq = lm.rotary_emb.inv_freq
    model = model.to(torch.bfloat16).eval()
    meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    assert not meta, meta
    gen = model.generation_config
    gen.eos_token_id = None
    gen.pad_token_id = 0
    gen.bos_token_id = None
    gen.do_sample = False
    gen.temperature = gen.top_k = gen.top_p = None
    with open(args.prompt_ids) as f:
        ids = torch.tensor([[int(t) for t in f.read().split()]], dtype=torch.long)
    mask = torch.ones_like(ids)
    print(f"torch_load_seconds {time.time() - start:.2f}")

    n = args.new_tokens

    def generate(tokens):
        start = time.time()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens,
                                 do_sample=False)
        return time.time() - start, out[0, ids.shape[1]:].tolist()

    generate(1)  # warm-up
    prefill = full = float("inf")
    new = []
    for _ in range(args.repeat):
        prefill = min(prefill, generate(1)[0])
        t, new = generate(n)
        full = min(full, t)
    assert len(new) == n, len(new)
    per_token = (full - prefill) / (n - 1)
    print(f"torch_prompt_tokens {ids.shape[1]}")
    print(f"torch_new_tokens {n}")
    print(f"torch_prefill_seconds {prefill:.4f}")
    print(f"torch_generate_seconds {full:.4f}")
    print(f"torch_decode_seconds_per_token {per_token:.5f}")
    print(f"torch_decode_tokens_per_s {1 / per_token:.3f}")
    print("torch_ids " + " ".join(map(str, new)))


if __name__ == "__main__":
    main()
