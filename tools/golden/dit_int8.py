#!/usr/bin/env python3
"""Goldens for the CrossDiT with int8 weights (k5 --weights-int8; src/models/crossdit/crossdit_weights.h).

The official model of tools/golden/crossdit.py (its float32 patches of the official code) with the golden
weights, whose block GEMM layers (self- and cross-attention q, k, v, out; feed-forward in, out: every nn.Linear
inside text_transformer_blocks / visual_transformer_blocks but the modulations) are replaced by what k5's int8
weights stand for: per output row, scale = max|w| / 127 and q = round(w * (1 / scale)) (half away from zero,
clamped to +-127), all in float32 as src/ops/linear_int8.cpp computes them; the layer then uses q * scale.

Writes tests/golden/crossdit/int8.safetensors: the velocity of the t2i and t2v_cond cases with those weights,
and t2i_lora_a: the t2i case with LoRA adapter a of tools/golden/lora.py loaded as the official code loads it
(PEFT), merged into the base weights by PEFT, then quantised (k5 merges adapters before quantising).

Run: OFFICIAL_DIR=<checkout of kandinskylab/kandinsky-5> python3 tools/golden/dit_int8.py (PyPI torch,
safetensors, peft, einops). Deterministic.
"""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
import json  # noqa: E402

import torch  # noqa: E402
from peft import LoraConfig  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402


def golden_module(name):
    spec = importlib.util.spec_from_file_location(name + "_golden", os.path.join(HERE, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cg = golden_module("crossdit")
lg = golden_module("lora")

CROSSDIT = os.path.join(HERE, "..", "..", "tests", "golden", "crossdit")

# case: (model seed, model overrides, weights file, scale factors)
CASES = {"t2i": (2, {}, "weights_plain.safetensors", (1.0, 1.0, 1.0)),
         "t2v_cond": (1, {"visual_cond": True}, "weights_cond.safetensors", (1.0, 2.0, 2.0))}


def int8_weight(w):
    """k5's quantize_int8 round trip of a [out, in] weight, in float32."""
    w = w.float()
    scale = w.abs().amax(dim=1) / 127.0
    inverse = torch.where(scale > 0, 1.0 / scale, torch.zeros_like(scale))
    product = (w * inverse[:, None]).double()  # exact; rounding half away from zero as std::lround
    q = (torch.sign(product) * torch.floor(product.abs() + 0.5)).clamp(-127, 127).float()
    return q * scale[:, None]


def quantize_blocks(model):
    count = 0
    for name, module in model.named_modules():
        if (isinstance(module, torch.nn.Linear) and "transformer_blocks." in name and "modulation" not in name
                and "lora_" not in name):
            with torch.no_grad():
                module.weight.copy_(int8_weight(module.weight))
            count += 1
    return count


def velocity(model, params, case, scale_factor):
    x, text, pooled = case["x"], case["text_embed"], case["pooled_text_embed"]
    mask = case["attention_mask"].bool() if "attention_mask" in case else torch.ones(1, text.shape[0], dtype=torch.bool)
    conf = cg.conf_object(params, scale_factor, {"type": "flash"})
    T, H, W, _ = x.shape
    pos = [torch.arange(T), torch.arange(H // 2), torch.arange(W // 2)]
    sparse = cg.kgen.get_sparse_params(conf, {"visual": x}, "cpu")
    with torch.no_grad():
        return model(x, text[None], pooled, case["time"], pos, torch.arange(text.shape[0]),
                     scale_factor=scale_factor, sparse_params=sparse, attention_mask=mask.reshape(1, -1))


def main():
    out = {}
    for name, (seed, overrides, weights, scale_factor) in CASES.items():
        model, params = cg.make_model(seed, **overrides)
        model.load_state_dict({k: v.float() for k, v in load_file(os.path.join(CROSSDIT, weights)).items()})
        case = load_file(os.path.join(CROSSDIT, name + ".safetensors"))
        plain = velocity(model, params, case, scale_factor)
        assert torch.allclose(plain, case["velocity"], rtol=1e-5, atol=1e-5), f"the {name} case does not reproduce"
        layers = quantize_blocks(model)
        out[name] = velocity(model, params, case, scale_factor).contiguous()
        error = ((out[name] - plain).norm() / plain.norm()).item()
        print(f"{name}: {layers} int8 layers, velocity {list(out[name].shape)}, relative L2 vs unquantised {error:.4f}")

    # LoRA adapter a, merged by PEFT into the base layers, then quantised.
    model, params = lg.plain_model()
    folder = os.path.join(lg.OUT, "a")
    with open(os.path.join(folder, "config_lora.json")) as f:
        config = LoraConfig(**json.load(f))
    lg.official_load(model, config, "a", load_file(os.path.join(folder, "lora.safetensors")))
    lg.activate(model, "a")
    case = load_file(os.path.join(CROSSDIT, "t2i.safetensors"))
    with_a = velocity(model, params, case, CASES["t2i"][3])
    expected = load_file(os.path.join(lg.OUT, "velocity.safetensors"))["velocity_a"]
    assert torch.allclose(with_a, expected, rtol=1e-5, atol=1e-5), "adapter a does not reproduce"
    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.merge()
    layers = quantize_blocks(model)
    out["t2i_lora_a"] = velocity(model, params, case, CASES["t2i"][3]).contiguous()
    error = ((out["t2i_lora_a"] - with_a).norm() / with_a.norm()).item()
    print(f"t2i_lora_a: {layers} int8 layers, relative L2 vs unquantised {error:.4f}")
    save_file(out, os.path.join(CROSSDIT, "int8.safetensors"))


if __name__ == "__main__":
    main()
