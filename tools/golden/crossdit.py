#!/usr/bin/env python3
"""Goldens for the CrossDiT (k5 forward dit / sample) from the official Kandinsky 5 code.

The official repository (kandinskylab/kandinsky-5) is read at generation time from OFFICIAL_DIR (default
/tmp/k5off: a checkout of it; never committed here). Tiny configs, every parameter randomised (the
zero-initialised modulations too). The reference runs in float32: the official helpers that round to bfloat16
(apply_scale_shift_norm, apply_gate_sum, apply_rotary) are replaced by the same arithmetic without the cast,
and NABLA's flex_attention by the equivalent dense attention over the official block mask (full 64x64 blocks).

Writes tests/golden/crossdit/: weights_{cond,plain}.safetensors (official keys, BF16 values), one YAML config
per case, <case>.safetensors with the inputs and the expected output.
"""
import math
import os
import sys
import types

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

OFFICIAL = os.environ.get("OFFICIAL_DIR", "/tmp/k5off")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden", "crossdit")

# The official generation_utils imports torchvision for image resizing only; stub it when absent.
if "torchvision" not in sys.modules:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        tv = types.ModuleType("torchvision")
        tv.transforms = types.ModuleType("torchvision.transforms")
        tv.transforms.functional = types.ModuleType("torchvision.transforms.functional")
        sys.modules.update({"torchvision": tv, "torchvision.transforms": tv.transforms,
                            "torchvision.transforms.functional": tv.transforms.functional})
package = types.ModuleType("kandinsky")
package.__path__ = [os.path.join(OFFICIAL, "kandinsky")]
sys.modules["kandinsky"] = package
models_package = types.ModuleType("kandinsky.models")
models_package.__path__ = [os.path.join(OFFICIAL, "kandinsky", "models")]
sys.modules["kandinsky.models"] = models_package
import kandinsky.models.nn as knn  # noqa: E402
import kandinsky.models.dit as kdit  # noqa: E402
import kandinsky.models.utils as kutils  # noqa: E402
import kandinsky.generation_utils as kgen  # noqa: E402


def scale_shift_norm_f32(norm, x, scale, shift):
    return norm(x.float()) * (scale + 1.0) + shift


def gate_sum_f32(x, out, gate):
    return x + gate * out


def rotary_f32(x, rope):
    x_ = x.reshape(*x.shape[:-1], -1, 1, 2).to(torch.float32)
    return (rope * x_).sum(dim=-1).reshape(*x.shape)


def nabla_dense(self, query, key, value, sparse_params=None):
    # The official nabla() with flex_attention replaced by dense attention over the same block mask.
    q = query.unsqueeze(0).transpose(1, 2).contiguous()
    k = key.unsqueeze(0).transpose(1, 2).contiguous()
    v = value.unsqueeze(0).transpose(1, 2).contiguous()
    block_mask = kutils.nablaT_v2(q, k, sparse_params["sta_mask"], thr=sparse_params["P"])
    dense = block_mask.to_dense().bool()  # [1, H, n, n]
    KEPT.append(dense.float().mean().item())
    token_mask = dense.repeat_interleave(64, -1).repeat_interleave(64, -2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=token_mask)
    return out.transpose(1, 2).squeeze(0).contiguous().flatten(-2, -1)


KEPT = []
for module in (knn, kdit):
    module.apply_scale_shift_norm = scale_shift_norm_f32
    module.apply_gate_sum = gate_sum_f32
knn.apply_rotary = rotary_f32
knn.MultiheadSelfAttentionDec.nabla = nabla_dense
_fast_sta = kutils.fast_sta_nabla
kgen.fast_sta_nabla = lambda *a, **kw: _fast_sta(*a, **{**kw, "device": "cpu"})

TINY = dict(in_visual_dim=4, out_visual_dim=4, in_text_dim=32, in_text_dim2=16, time_dim=32, patch_size=(1, 2, 2),
            model_dim=64, ff_dim=128, num_text_blocks=1, num_visual_blocks=2, axes_dims=(4, 6, 6))


def make_model(seed, **overrides):
    params = {**TINY, **overrides}
    torch.manual_seed(seed)
    model = kdit.DiffusionTransformer3D(**params)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]))
            elif name.endswith("norm.weight"):
                p.normal_(1.0, 0.2)
            else:
                p.normal_(0.0, 0.2)
            p.copy_(p.to(torch.bfloat16).float())  # stored as BF16: exact in both
    return model.eval(), params


def yaml_config(path, params, scale_factor, attention, instruct=None):
    dp = dict(params)
    lines = ["metrics:", "  scale_factor:"] + [f"  - {v}" for v in scale_factor]
    lines += ["  resolution: 512", "model:", '  checkpoint_path: "./unused.safetensors"', "  num_steps: 3",
              "  guidance_weight: 3.0", "  dit_params:"]
    for key in ("in_visual_dim", "out_visual_dim", "time_dim", "model_dim", "ff_dim", "num_text_blocks",
                "num_visual_blocks", "in_text_dim", "in_text_dim2"):
        lines.append(f"    {key}: {dp[key]}")
    lines += ["    patch_size:"] + [f"    - {v}" for v in dp["patch_size"]]
    lines += ["    axes_dims:"] + [f"    - {v}" for v in dp["axes_dims"]]
    lines.append(f"    visual_cond: {'true' if dp.get('visual_cond') else 'false'}")
    if instruct:
        lines.append(f"    instruct_type: {instruct}")
    lines += ["  attention:", f"    type: {attention['type']}", "    causal: false", "    local: false",
              "    glob: false", "    window: 3"]
    if attention["type"] == "nabla":
        lines += [f"    P: {attention['P']}", f"    wT: {attention['wT']}", f"    wW: {attention['wW']}",
                  f"    wH: {attention['wH']}", "    add_sta: true", "    method: topcdf"]
    lines += ["  vae:", '    checkpoint_path: "./unused/"', f"    name: {'hunyuan' if instruct is None else 'flux'}",
              "  text_embedder:", "    qwen:", f"      emb_size: {dp['in_text_dim']}", '      checkpoint_path: "./q/"',
              "      max_length: 256", "    clip:", '      checkpoint_path: "./c/"', f"      emb_size: {dp['in_text_dim2']}",
              "      max_length: 77"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def conf_object(params, scale_factor, attention):
    ns = types.SimpleNamespace
    return ns(model=ns(dit_params=ns(patch_size=params["patch_size"]), attention=ns(**attention)),
              metrics=ns(scale_factor=scale_factor))


def text_inputs(generator, length, real, params):
    text = torch.randn(length, params["in_text_dim"], generator=generator)
    pooled = torch.randn(1, params["in_text_dim2"], generator=generator)
    mask = torch.zeros(1, length, dtype=torch.bool)
    mask[0, :real] = True
    return text, pooled, mask


def dit_case(name, model, params, conf, x, time, text, pooled, mask):
    T, H, W, _ = x.shape
    pos = [torch.arange(T), torch.arange(H // 2), torch.arange(W // 2)]
    sparse = kgen.get_sparse_params(conf, {"visual": x}, "cpu")
    KEPT.clear()
    with torch.no_grad():
        # The official pipeline passes the text with its batch axis and a mask; no mask = all tokens real.
        full = mask if mask is not None else torch.ones(1, text.shape[0], dtype=torch.bool)
        out = model(x, text[None], pooled, torch.tensor([time]), pos, torch.arange(text.shape[0]),
                    scale_factor=conf.metrics.scale_factor, sparse_params=sparse, attention_mask=full)
    tensors = {"x": x, "text_embed": text, "pooled_text_embed": pooled, "time": torch.tensor([time]),
               "velocity": out}
    if mask is not None:
        tensors["attention_mask"] = mask.to(torch.uint8)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, name + ".safetensors"))
    kept = f" kept {sum(KEPT) / len(KEPT):.3f}" if KEPT else ""
    print(f"{name}: velocity {list(out.shape)}{kept}")


def sample_case(name, model, params, conf, noise, steps, guidance, scale, gen, first_frame=None, edit=None):
    T, H, W, C = noise.shape
    text, pooled, mask = text_inputs(gen, 6, 4, params)
    null_text, null_pooled, null_mask = text_inputs(gen, 5, 5, params)
    pos = [torch.arange(T), torch.arange(H // 2), torch.arange(W // 2)]
    img = noise.clone()
    if edit is not None:
        img = torch.cat([img, edit, torch.ones_like(img[..., :1])], -1)
    with torch.no_grad():
        out = kgen.generate(model, "cpu", img, steps, {"text_embeds": text[None], "pooled_embed": pooled},
                            {"text_embeds": null_text[None], "pooled_embed": null_pooled}, pos, torch.arange(6),
                            torch.arange(5), guidance, scale, first_frame, conf, attention_mask=mask,
                            null_attention_mask=null_mask)
    tensors = {"noise": noise, "text_embed": text, "pooled_text_embed": pooled, "attention_mask": mask.to(torch.uint8),
               "null_text_embed": null_text, "null_pooled_text_embed": null_pooled,
               "null_attention_mask": null_mask.to(torch.uint8), "latents": out}
    if first_frame is not None:
        tensors["first_frame"] = first_frame
    if edit is not None:
        tensors["edit_latent"] = edit
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, name + ".safetensors"))
    print(f"{name}: latents {list(out.shape)} steps {steps} guidance {guidance} scale {scale}")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    dense = {"type": "flash"}
    cond_model, cond_params = make_model(1, visual_cond=True)
    plain_model, plain_params = make_model(2)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in cond_model.state_dict().items()},
              os.path.join(OUT, "weights_cond.safetensors"))
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in plain_model.state_dict().items()},
              os.path.join(OUT, "weights_plain.safetensors"))
    g = torch.Generator().manual_seed(5)

    # Dense T2V with visual_cond (Cin = 9), padded text mask, Lite SD scale factors.
    sf = (1.0, 2.0, 2.0)
    yaml_config(os.path.join(OUT, "t2v_cond.yaml"), cond_params, sf, dense)
    text, pooled, mask = text_inputs(g, 7, 5, cond_params)
    dit_case("t2v_cond", cond_model, cond_params, conf_object(cond_params, sf, dense),
             torch.randn(3, 4, 6, 9, generator=g), 937.5, text, pooled, mask)

    # T2I, non-square latent, no mask.
    sf = (1.0, 1.0, 1.0)
    yaml_config(os.path.join(OUT, "t2i.yaml"), plain_params, sf, dense, instruct=None)
    text, pooled, _ = text_inputs(g, 5, 5, plain_params)
    dit_case("t2i", plain_model, plain_params, conf_object(plain_params, sf, dense),
             torch.randn(1, 6, 10, 4, generator=g), 412.0, text, pooled, None)

    # NABLA: official windows at P 0.9 (Pro HD scale factors), and a sparse P with 1-block windows.
    sf = (1.0, 3.16, 3.16)
    for case, attention in (("nabla_p90", {"type": "nabla", "P": 0.9, "wT": 11, "wH": 3, "wW": 3}),
                            ("nabla_sparse", {"type": "nabla", "P": 0.3, "wT": 1, "wH": 1, "wW": 1})):
        attention.update(add_sta=True, method="topcdf")
        yaml_config(os.path.join(OUT, case + ".yaml"), plain_params, sf, attention)
        text, pooled, mask = text_inputs(g, 6, 4, plain_params)
        dit_case(case, plain_model, plain_params, conf_object(plain_params, sf, attention),
                 torch.randn(2, 32, 32, 4, generator=g), 700.0, text, pooled, mask)

    # Sampler: I2V (first frame) with CFG over 3 steps; I2I with an edit latent.
    sf = (1.0, 2.0, 2.0)
    sample_case("sample_i2v", cond_model, cond_params, conf_object(cond_params, sf, dense),
                torch.randn(3, 4, 6, 4, generator=g), 3, 3.0, 5.0, g, first_frame=torch.randn(1, 4, 6, 4, generator=g))
    i2i_model, i2i_params = make_model(1, instruct_type="channel")
    yaml_config(os.path.join(OUT, "i2i.yaml"), i2i_params, (1.0, 1.0, 1.0), dense, instruct="channel")
    sample_case("sample_i2i", i2i_model, i2i_params,
                conf_object(i2i_params, (1.0, 1.0, 1.0), dense), torch.randn(1, 4, 6, 4, generator=g), 3, 2.0, 3.0, g,
                edit=torch.randn(1, 4, 6, 4, generator=g))


if __name__ == "__main__":
    main()
