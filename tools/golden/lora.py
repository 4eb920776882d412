#!/usr/bin/env python3
"""Goldens for LoRA adapters on the CrossDiT (src/models/crossdit/lora.h), from PEFT and the official code.

The adapters are applied the way the official pipelines apply them (t2v_pipeline.load_adapter: the key cleanup,
inject_adapter_in_model, set_peft_model_state_dict), on the tiny random DiT of tools/golden/crossdit.py (its
float32 patches of the official code; weights_plain.safetensors and the t2i case's inputs). Every lora_A and
lora_B is random (PEFT starts lora_B at zero).

Writes tests/golden/lora/:
- a/: lora.safetensors (keys "base_model.model.<layer>.lora_A.default.weight", a trigger in the metadata, one
  pair for a layer outside target_modules, which PEFT leaves alone) and config_lora.json (r, lora_alpha,
  target_modules by name, rank_pattern, alpha_pattern);
- b/: adapter_model.safetensors ("transformer.<layer>.lora_B.weight", stored as BF16) and adapter_config.json
  (use_rslora, target_modules as a regular expression);
- velocity.safetensors: the t2i case's velocity with adapter a, and with a plus b at multiplier 0.5 (both PEFT
  adapters active, b's lora_B scaled by 0.5);
- targeting/: for configs that exercise PEFT's module selection (exclude_modules, layers_to_transform with one or
  two layers_pattern, one with a group of its own, an exact name beside a last-component one, "all-linear" in both
  cases, regular expressions with Python's \\Z and a named group, rank and alpha patterns), a file with a pair for
  every linear layer of the DiT and the config; expected.json gives, per config, the layers PEFT injects and their
  scaling.

Run: OFFICIAL_DIR=<checkout of kandinskylab/kandinsky-5> python3 tools/golden/lora.py (PyPI torch, safetensors,
peft, einops). Deterministic: a second run rewrites the same bytes.
"""
import importlib.util
import json
import os
import sys

# This folder holds a tokenizers.py, which must not shadow the package transformers (under peft) imports.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
import torch  # noqa: E402
from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

# tools/golden/crossdit.py: the official modules with its float32 patches.
_spec = importlib.util.spec_from_file_location("crossdit_golden", os.path.join(HERE, "crossdit.py"))
cg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cg)

OUT = os.path.join(HERE, "..", "..", "tests", "golden", "lora")
CROSSDIT = os.path.join(HERE, "..", "..", "tests", "golden", "crossdit")


def plain_model():
    model, params = cg.make_model(2)
    model.load_state_dict({k: v.float() for k, v in load_file(os.path.join(CROSSDIT, "weights_plain.safetensors")).items()})
    return model, params


def random_pairs(model, adapter, generator):
    """Random lora_A / lora_B for every layer PEFT injected for `adapter`: {layer: (A, B)}."""
    pairs = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and adapter in module.lora_A:
            a = module.lora_A[adapter].weight
            b = module.lora_B[adapter].weight
            pairs[name] = (torch.randn(a.shape, generator=generator) / a.shape[1] ** 0.5,
                           torch.randn(b.shape, generator=generator) / b.shape[1] ** 0.5)
    return pairs


def official_load(model, config, adapter, state):
    """t2v_pipeline.load_adapter, from the file's keys on."""
    inject_adapter_in_model(config, model, adapter)
    cleaned = {}
    for key, value in state.items():
        for prefix in ["base_model.model.", "transformer."]:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        cleaned[key.replace(".default", "")] = value
    set_peft_model_state_dict(model, cleaned, adapter)


def activate(model, adapters):
    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.set_adapter(adapters)


def velocity(model, params):
    case = load_file(os.path.join(CROSSDIT, "t2i.safetensors"))
    x, text, pooled = case["x"], case["text_embed"], case["pooled_text_embed"]
    conf = cg.conf_object(params, (1.0, 1.0, 1.0), {"type": "flash"})
    T, H, W, _ = x.shape
    pos = [torch.arange(T), torch.arange(H // 2), torch.arange(W // 2)]
    sparse = cg.kgen.get_sparse_params(conf, {"visual": x}, "cpu")
    with torch.no_grad():
        out = model(x, text[None], pooled, case["time"], pos, torch.arange(text.shape[0]),
                    scale_factor=conf.metrics.scale_factor, sparse_params=sparse,
                    attention_mask=torch.ones(1, text.shape[0], dtype=torch.bool))
    return out, case["velocity"]


def save_adapter(folder, file_name, config_name, config, pairs, key, metadata=None):
    os.makedirs(folder, exist_ok=True)
    tensors = {}
    for layer, (a, b) in pairs.items():
        tensors[key(layer, "A")] = a.contiguous()
        tensors[key(layer, "B")] = b.contiguous()
    save_file(tensors, os.path.join(folder, file_name), metadata=metadata)
    with open(os.path.join(folder, config_name), "w") as f:
        json.dump(config, f, indent=1)


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(11)
    model, params = plain_model()
    plain, expected_plain = velocity(model, params)
    assert torch.allclose(plain, expected_plain, rtol=1e-5, atol=1e-5), "the t2i case does not reproduce"

    # Adapter a: target_modules by name (the time-embedding and modulation layers included: k5 runs those as
    # float32 matrix-vector products), per-layer rank and alpha. A bare "out_layer" would also name the OutLayer
    # module, which PEFT refuses.
    config_a = {"r": 4, "lora_alpha": 6,
                "target_modules": ["to_query", "to_value", "self_attention.out_layer", "in_layer",
                                   "visual_modulation.out_layer"],
                "rank_pattern": {"feed_forward.in_layer": 2, "time_embeddings.in_layer": 3},
                "alpha_pattern": {"self_attention.to_query": 3.0, "in_layer": 5.0}, "lora_dropout": 0.0}
    probe, _ = plain_model()
    inject_adapter_in_model(LoraConfig(**config_a), probe, "a")
    pairs_a = random_pairs(probe, "a", g)
    stray = "visual_transformer_blocks.0.cross_attention.to_key"  # not targeted: PEFT ignores its weights
    pairs_stray = dict(pairs_a)
    pairs_stray[stray] = (torch.randn(4, params["model_dim"], generator=g), torch.randn(params["model_dim"], 4, generator=g))
    save_adapter(os.path.join(OUT, "a"), "lora.safetensors", "config_lora.json", config_a, pairs_stray,
                 lambda layer, ab: f"base_model.model.{layer}.lora_{ab}.default.weight", {"trigger": "orbit shot, "})
    state_a = load_file(os.path.join(OUT, "a", "lora.safetensors"))
    official_load(model, LoraConfig(**config_a), "a", state_a)
    activate(model, "a")
    with_a, _ = velocity(model, params)

    # Adapter b: a regular expression over the second visual block, rsLoRA scaling; at multiplier 0.5.
    config_b = {"r": 2, "lora_alpha": 5, "use_rslora": True,
                "target_modules": r".*visual_transformer_blocks\.1\..*(to_key|to_value|in_layer)"}
    probe, _ = plain_model()
    inject_adapter_in_model(LoraConfig(**config_b), probe, "b")
    pairs_b = random_pairs(probe, "b", g)
    pairs_b = {layer: (a.bfloat16(), b.bfloat16()) for layer, (a, b) in pairs_b.items()}  # stored as BF16
    save_adapter(os.path.join(OUT, "b"), "adapter_model.safetensors", "adapter_config.json", config_b, pairs_b,
                 lambda layer, ab: f"transformer.{layer}.lora_{ab}.weight")
    half = {k: (v.float() * 0.5 if ".lora_B." in k else v.float())
            for k, v in load_file(os.path.join(OUT, "b", "adapter_model.safetensors")).items()}
    official_load(model, LoraConfig(**config_b), "b", half)
    activate(model, ["a", "b"])
    with_a_b, _ = velocity(model, params)
    save_file({"velocity_a": with_a.contiguous(), "velocity_a_b_half": with_a_b.contiguous()},
              os.path.join(OUT, "velocity.safetensors"))
    print(f"velocity: plain vs a {((with_a - plain).norm() / plain.norm()).item():.3f}, "
          f"a vs a+b/2 {((with_a_b - with_a).norm() / with_a.norm()).item():.3f}")

    # PEFT's module selection and scaling, one config at a time.
    configs = {
        "exclude": {"r": 2, "lora_alpha": 3, "target_modules": ["to_query", "to_key", "in_layer"],
                    "exclude_modules": ["text_transformer_blocks.0.self_attention.to_key", "time_embeddings.in_layer"]},
        "layers": {"r": 2, "lora_alpha": 2, "target_modules": ["to_value", "feed_forward.out_layer"],
                   "layers_to_transform": [0, 5], "layers_pattern": ["text_transformer_blocks", "visual_transformer_blocks"]},
        # An exact name escapes layers_to_transform; a name by its last components does not.
        "exact_name": {"r": 2, "lora_alpha": 3, "layers_to_transform": [1], "layers_pattern": "visual_transformer_blocks",
                       "target_modules": ["visual_transformer_blocks.0.self_attention.to_query", "to_key"]},
        # A layers_pattern with a group of its own.
        "group_pattern": {"r": 2, "lora_alpha": 2, "target_modules": ["in_layer", "to_query"], "layers_to_transform": [1],
                          "layers_pattern": "(visual|text)_transformer_blocks"},
        "upper_all_linear": {"r": 2, "lora_alpha": 1, "target_modules": "ALL-LINEAR"},
        # Python's \Z anchor and a named group.
        "anchors": {"r": 2, "lora_alpha": 2, "target_modules": r"(?P<block>.*visual_transformer_blocks\.1)\..*to_key\Z"},
        "layers_pattern": {"r": 2, "lora_alpha": 4, "target_modules": ["in_layer"], "layers_to_transform": 0,
                           "layers_pattern": "visual_transformer_blocks"},
        "all_linear": {"r": 3, "lora_alpha": 7, "target_modules": "all-linear", "use_rslora": True},
        "patterns": {"r": 4, "lora_alpha": 8, "target_modules": r".*(self|cross)_attention\.to_.*",
                     "rank_pattern": {"to_query": 2, r"visual_transformer_blocks\.\d\.cross_attention\.to_key": 3},
                     "alpha_pattern": {"cross_attention.to_.*": 1.5}},
    }
    expected = {}
    shapes = {name: m.weight.shape for name, m in plain_model()[0].named_modules() if isinstance(m, torch.nn.Linear)}
    for name, config in configs.items():
        probe, _ = plain_model()
        inject_adapter_in_model(LoraConfig(**config), probe, "default")
        injected = {layer: module.scaling["default"] for layer, module in probe.named_modules()
                    if isinstance(module, LoraLayer)}
        pairs = random_pairs(probe, "default", g)
        for layer, (rows, columns) in shapes.items():
            if layer not in injected:
                pairs[layer] = (torch.randn(config["r"], columns, generator=g), torch.randn(rows, config["r"], generator=g))
        save_adapter(os.path.join(OUT, "targeting", name), "lora.safetensors", "config_lora.json", config, pairs,
                     lambda layer, ab: f"{layer}.lora_{ab}.weight")
        expected[name] = injected
        print(f"targeting {name}: {len(injected)} of {len(pairs)} layers")
    with open(os.path.join(OUT, "targeting", "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
