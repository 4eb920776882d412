"""Goldens for the text-conditioning step (`k5 encode-text`, src/pipelines/text_conditioning).

The reference is the official Kandinsky 5 embedder itself: kandinsky/models/text_embedders.py is read from the
official repository (kandinskylab/kandinsky-5, a local mirror given by --official or $K5_OFFICIAL_REPO) into a
temporary package at generation time and never copied into k5. Its constructors load 7B/CLIP-L checkpoints,
so they are bypassed: the objects are made with object.__new__ and given
  - a tiny random Qwen2_5_VLForConditionalGeneration (fp32, real vocab_size 151936, hidden 16, 2 layers),
  - a stand-in for AutoProcessor that is the real Qwen tokenizer (<shared>/tokenizers/qwen2.5/tokenizer.json)
    called with the processor's keyword arguments (for text without images the Qwen2.5-VL processor only
    tokenises),
  - a tiny random CLIPTextModel (vocab 49408, hidden 16) and the real CLIP tokenizer
    (tests/golden/tokenizers/clip), max_length 77,
then Kandinsky5TextEmbedder.encode runs exactly as generation_utils.py calls it (one prompt at a time, the
default text_token_padding=True). torchvision (only used for image_edit resizing) is stubbed.

Real token ids need the full embedding tables (151936 x 16 and 49408 x 16), too big for a golden, so only the
rows of the ids the cases use are stored; every other row is zeroed in the reference model too, which changes
nothing (those rows are never read) and makes the C++ test's rebuilt folder identical to the reference model.

Outputs (tests/golden/encode_text/):
  qwen_config.json, clip_config.json       config.json of text_encoder/ and text_encoder2/
  weights.safetensors                      qwen.<released key> / clip.<key> (all but the embeddings),
                                           qwen.embed_ids I32 [K], qwen.embed_rows F32 [K, 16], same for clip
  cases.json                               [{name, content, prompt, negative, max_length}]
  expected.safetensors                     <name>.{text_embed, pooled_text_embed, attention_mask} and null_*
Run: python3 tools/golden/encode_text.py [--official /path/to/kandinsky-5 git dir or checkout]
"""
import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types

# tools/golden/tokenizers.py would shadow the `tokenizers` package transformers imports.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "encode_text")
SHARED = os.environ.get("K5_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
QWEN_JSON = os.path.join(SHARED, "tokenizers", "qwen2.5", "tokenizer.json")
CLIP_DIR = os.path.join(ROOT, "tests", "golden", "tokenizers", "clip")
VIDEO_NEGATIVE = ("Static, 2D cartoon, cartoon, 2d animation, paintings, images, worst quality, low quality, ugly, "
                  "deformed, walking backwards")

CASES = [
    {"name": "video", "content": "video", "max_length": 256,
     "prompt": "A red fox runs through a snowy forest at dawn, the camera follows it low to the ground.",
     "negative": VIDEO_NEGATIVE},
    {"name": "image", "content": "image", "max_length": 512,
     "prompt": "Портрет кота в шляпе, акварель 🎩 — \"watercolor\" style, 3 cats & 2 dogs", "negative": ""},
    # 10,000 characters: the Qwen ids are truncated to max_length + crop_start (the closing <|im_end|> is cut
    # off too), CLIP to 77.
    {"name": "long", "content": "image2video", "max_length": 256,
     "prompt": ("a tiny robot waters the garden and " * 400)[:10000], "negative": VIDEO_NEGATIVE},
    {"name": "short", "content": "video", "max_length": 16,
     "prompt": "Two astronauts play chess on the Moon while Earth rises slowly behind them, wide shot.",
     "negative": VIDEO_NEGATIVE},
]


def official_module(official):
    """kandinsky/models/text_embedders.py from the official repository, imported from a temporary package."""
    if os.path.isdir(os.path.join(official, "kandinsky")):
        source = open(os.path.join(official, "kandinsky", "models", "text_embedders.py")).read()
    else:  # a bare mirror
        source = subprocess.check_output(["git", "--git-dir", official, "show",
                                          "HEAD:kandinsky/models/text_embedders.py"], text=True)
    package = tempfile.mkdtemp(prefix="k5_official_")
    atexit.register(shutil.rmtree, package, ignore_errors=True)
    os.makedirs(os.path.join(package, "k5_official_ref", "models"))
    open(os.path.join(package, "k5_official_ref", "__init__.py"), "w").close()
    open(os.path.join(package, "k5_official_ref", "models", "__init__.py"), "w").close()
    with open(os.path.join(package, "k5_official_ref", "models", "utils.py"), "w") as f:
        f.write("def freeze(model):\n    for p in model.parameters():\n        p.requires_grad = False\n"
                "    return model\n")
    with open(os.path.join(package, "k5_official_ref", "models", "text_embedders.py"), "w") as f:
        f.write(source)
    for name in ["torchvision", "torchvision.transforms", "torchvision.transforms.functional"]:
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    sys.modules["torchvision.transforms"].functional = sys.modules["torchvision.transforms.functional"]
    sys.path.insert(0, package)
    import k5_official_ref.models.text_embedders as module
    return module


class TextOnlyProcessor:
    """The Qwen2.5-VL processor for text without images or videos: the tokenizer with the same arguments."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, text, images=None, videos=None, **kwargs):
        assert images is None and videos is None
        return self.tokenizer(text, **kwargs)


def randomise(model, seed):
    # Every parameter random (norm weights and biases too) so every path is live.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layer_norm" in name or "layernorm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def keep_rows(table, ids):
    """Zeroes every embedding row but `ids`; returns (ids I32 [K], rows F32 [K, D])."""
    ids = torch.tensor(sorted(ids), dtype=torch.int64)
    rows = table[ids].clone()
    with torch.no_grad():
        table.zero_()
        table[ids] = rows
    return ids.to(torch.int32), rows.contiguous()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--official", default=os.environ.get("K5_OFFICIAL_REPO",
                                                             "/work/.mirror/kandinskylab+kandinsky-5/repo"))
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    official = official_module(args.official)

    qwen_tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=QWEN_JSON, pad_token="<|endoftext|>")
    qwen_tokenizer.padding_side = "right"
    clip_tokenizer = transformers.CLIPTokenizer.from_pretrained(CLIP_DIR)

    text = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, vocab_size=151936, rms_norm_eps=1e-6, max_position_embeddings=1024,
                hidden_act="silu", tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 1000000.0})
    vision = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=16,
                  fullatt_block_indexes=[0], patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                  window_size=56)
    qwen_config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, vocab_size=151936,
                                   tie_word_embeddings=False)
    torch.manual_seed(0)
    qwen = Qwen2_5_VLForConditionalGeneration(qwen_config).eval()
    randomise(qwen, 11)
    clip_config = CLIPTextConfig(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                                 bos_token_id=0, eos_token_id=2, pad_token_id=1, projection_dim=16)
    clip = CLIPTextModel(clip_config).eval()
    randomise(clip, 12)

    # The ids every case uses, as the official calls tokenise them.
    qwen_ids, clip_ids = set(), set()
    templates = official.Qwen2_5_VLTextEmbedder.PROMPT_TEMPLATE
    for case in CASES:
        for prompt in (case["prompt"], case["negative"]):
            full = "\n".join(templates["template"][case["content"]]).format(prompt)
            length = case["max_length"] + templates["crop_start"][case["content"]]
            qwen_ids.update(qwen_tokenizer([full], max_length=length, truncation=True,
                                           padding="max_length")["input_ids"][0])
            clip_ids.update(clip_tokenizer([prompt], max_length=77, truncation=True,
                                           padding="max_length")["input_ids"][0])
    qwen_embed_ids, qwen_embed_rows = keep_rows(qwen.model.language_model.embed_tokens.weight.data, qwen_ids)
    clip_embed_ids, clip_embed_rows = keep_rows(clip.embeddings.token_embedding.weight.data, clip_ids)

    qwen_embedder = object.__new__(official.Qwen2_5_VLTextEmbedder)
    qwen_embedder.model = qwen
    qwen_embedder.processor = TextOnlyProcessor(qwen_tokenizer)
    qwen_embedder.text_token_padding = True  # the default of every official get_*_pipeline
    clip_embedder = object.__new__(official.ClipTextEmbedder)
    clip_embedder.model = clip
    clip_embedder.tokenizer = clip_tokenizer
    clip_embedder.max_length = 77
    embedder = object.__new__(official.Kandinsky5TextEmbedder)
    embedder.embedder = qwen_embedder
    embedder.clip_embedder = clip_embedder

    expected = {}
    for case in CASES:
        qwen_embedder.max_length = case["max_length"]
        for prefix, prompt in (("", case["prompt"]), ("null_", case["negative"])):
            with torch.no_grad():
                embeds, cu_seqlens, mask = embedder.encode([prompt], type_of_content=case["content"])
            text_embed = embeds["text_embeds"][0]
            assert text_embed.shape[0] == case["max_length"] == int(cu_seqlens[-1])
            name = case["name"] + "." + prefix
            expected[name + "text_embed"] = text_embed.float().contiguous()
            expected[name + "pooled_text_embed"] = embeds["pooled_embed"].float().contiguous()
            expected[name + "attention_mask"] = mask.to(torch.uint8).contiguous()
            print(f"{case['name']:6s} {prefix or 'prompt':6s} text_embed {tuple(text_embed.shape)}, "
                  f"{int(mask.sum())} real tokens, pooled {tuple(embeds['pooled_embed'].shape)}")

    weights = {"qwen.embed_ids": qwen_embed_ids, "qwen.embed_rows": qwen_embed_rows,
               "clip.embed_ids": clip_embed_ids, "clip.embed_rows": clip_embed_rows}
    for key, value in qwen.state_dict().items():
        # The released layout (model.layers.N...); the vision tower, lm_head and the embedding are left out.
        if key.startswith("model.language_model.") and "embed_tokens" not in key:
            weights["qwen.model." + key[len("model.language_model."):]] = value.float().contiguous()
    for key, value in clip.state_dict().items():
        if "token_embedding" not in key and "position_ids" not in key:
            # Released CLIPTextModel checkpoints prefix every key with text_model.
            weights["clip." + ("" if key.startswith("text_model.") else "text_model.") + key] = \
                value.float().contiguous()
    save_file(weights, os.path.join(OUT, "weights.safetensors"))
    save_file(expected, os.path.join(OUT, "expected.safetensors"))
    with open(os.path.join(OUT, "qwen_config.json"), "w") as f:
        f.write(qwen_config.to_json_string())
    with open(os.path.join(OUT, "clip_config.json"), "w") as f:
        f.write(clip_config.to_json_string())
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(CASES, f, ensure_ascii=False, indent=1)
    print("Qwen rows kept:", len(qwen_embed_ids), " CLIP rows kept:", len(clip_embed_ids))


if __name__ == "__main__":
    main()
