"""The official Kandinsky 5 DiT forward, timed on the same weights and inputs as bench_dit (issue 6's comparison).

    python3 bench/torch_dit_official.py OFFICIAL_REPO CONFIG.yaml WEIGHTS.safetensors INPUTS.safetensors REPEAT
                                        [cuda|cpu]

OFFICIAL_REPO is a checkout of kandinskylab/kandinsky-5 (read at run time, never part of k5). Its DiT modules and
its `get_sparse_params` are imported unchanged; the package's __init__ is skipped, since it only re-exports the
pipeline builders, which pull in every other model (diffusers, peft, omegaconf). The forward runs as the official
`generate_sample` runs it: BF16 weights loaded with `assign=True`, torch.autocast(bfloat16), the attention engine
"auto" (flash-attn 3 / 2 / sage when installed, else the compiled SDPA), NABLA's sparse parameters from the config,
its torch.compile'd pieces compiled during the warm-up forwards. WEIGHTS and INPUTS are the files bench_dit writes
(official key layout; the `k5 forward dit` input layout), so both sides see the same model and the same tokens,
and NABLA keeps the same blocks. Prints `torch dit bf16 TOKENS SECONDS` (best of REPEAT) and the peak memory.
"""
import os
import sys
import time
import types

import torch
import yaml
from safetensors.torch import load_file


class Conf(dict):
    """Attribute access over the YAML, as the official code reads its OmegaConf config."""

    def __getattr__(self, name):
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        return Conf(value) if isinstance(value, dict) else value


def import_official(repo):
    package = types.ModuleType("kandinsky")
    package.__path__ = [os.path.join(repo, "kandinsky")]
    sys.modules["kandinsky"] = package
    torch._dynamo.config.suppress_errors = True  # as the official kandinsky/utils.py sets it
    from kandinsky.generation_utils import get_sparse_params
    from kandinsky.models import attention
    from kandinsky.models.dit import get_dit
    return get_dit, get_sparse_params, attention


def main(repo, config_path, weights_path, inputs_path, repeat, device):
    get_dit, get_sparse_params, attention = import_official(repo)
    conf = Conf(yaml.safe_load(open(config_path)))
    dit_params = dict(conf.model.dit_params, attention_engine="auto")
    dit = get_dit(dit_params)
    dit.load_state_dict(load_file(weights_path, device="cpu"), assign=True)
    dit = dit.to(device).eval()
    engine = attention.SelfAttentionEngine("auto").get_attention()
    weights_gib = torch.cuda.memory_allocated() / 2**30 if device == "cuda" else 0.0

    inputs = load_file(inputs_path, device=device)
    x = inputs["x"].to(torch.bfloat16)
    text = inputs["text_embed"].to(torch.bfloat16).unsqueeze(0)  # [1, L, D], as the padded official encoder
    pooled = inputs["pooled_text_embed"].to(torch.bfloat16)
    length = text.shape[1]
    mask = inputs["attention_mask"].bool() if "attention_mask" in inputs else None
    timestep = inputs["time"].float()
    t, h, w = x.shape[0], x.shape[1], x.shape[2]
    patch = conf.model.dit_params.patch_size
    visual_rope_pos = [torch.arange(t), torch.arange(h // patch[1]), torch.arange(w // patch[2])]
    sparse_params = get_sparse_params(conf, {"visual": x[..., :conf.model.dit_params.in_visual_dim]}, device)

    def forward():
        with torch._dynamo.utils.disable_cache_limit():
            return dit(x, text, pooled, timestep, visual_rope_pos, torch.arange(length),
                       scale_factor=conf.metrics.scale_factor, sparse_params=sparse_params, attention_mask=mask)

    def synchronize():
        if device == "cuda":
            torch.cuda.synchronize()

    best = float("inf")
    with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16):
        start = time.perf_counter()
        for _ in range(2):  # compiles the torch.compile'd pieces (dynamic shapes: the second call may recompile)
            forward()
        synchronize()
        warmup = time.perf_counter() - start
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(repeat):
            synchronize()
            start = time.perf_counter()
            forward()
            synchronize()
            best = min(best, time.perf_counter() - start)
    tokens = t * (h // patch[1]) * (w // patch[2])
    print(f"torch dit bf16 {tokens} {best:.4f}", flush=True)
    attention_type = "nabla (flex_attention)" if sparse_params is not None else getattr(engine, "__name__", engine)
    print(f"torch dit attention {attention_type}, warm-up (compile) {warmup:.1f} s", flush=True)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"torch dit GPU memory weights {weights_gib:.2f} GiB, peak {peak:.2f} GiB", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]),
         sys.argv[6] if len(sys.argv) > 6 else "cuda")
