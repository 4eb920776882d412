"""Goldens for Qwen2.5-VL text generation (src/models/qwen25vl/qwen_generate, the official prompt expansion).

A tiny random Qwen2_5_VLForConditionalGeneration (text hidden 32, 2 layers, 4 query / 2 key-value heads,
head_dim 8, mrope_section [1, 1, 2], vocab_size 512, untied lm_head) in float32 on one CPU thread. Every
parameter is random and scaled so greedy decoding wanders over many tokens instead of repeating one.

Cases (transformers' own `generate`, max_new_tokens 24, prompt ids drawn below 512):
  greedy          do_sample=False
  qwen_config     the Qwen2.5-VL-7B-Instruct generation_config.json values: do_sample=True, temperature 0.1,
                  top_k 1, top_p 0.001, repetition_penalty 1.05 (sampling that top-k 1 makes deterministic)
  penalty         do_sample=False, repetition_penalty 1.3 (a penalty strong enough to change the tokens)
  eos             greedy with eos_token_id [<the 10th greedy token>, 7]: stops after that token, which is kept
  sample          do_sample=True, temperature 1.3, top_k 0, top_p 1 (every token a candidate)
  sample_filtered do_sample=True, temperature 0.9, top_k 40, top_p 0.95, repetition_penalty 1.1
The generator is seeded with torch.manual_seed(42) right before each call (transformers.set_seed in the
official pipelines), so the sampling cases pin torch.multinomial's CPU stream.
M-RoPE (`mrope`): a prompt whose middle is a fake image span (random input embeddings, positions t=const,
h/w on a 2x3 grid, text after it continuing at max + 1), run through the model with explicit position_ids
[3, 1, L]: logits of every position; then greedy steps with a KV cache at positions max + 1 + step (what
generate does with rope_deltas), the generated ids and each step's logits.
Chat template: the Qwen2.5-VL processor's apply_chat_template(tokenize=False, add_generation_prompt=True)
with the chat_template of Qwen/Qwen2.5-VL-7B-Instruct's chat_template.json (text below, as published) and
the real Qwen tokenizer (<shared>/tokenizers/qwen2.5/tokenizer.json), for the messages the official
pipelines build; plus decode cases (skip_special_tokens=True, clean_up_tokenization_spaces=False).

Outputs (tests/golden/qwen_generate/): config.json, generation_config.json (the 7B values),
weights.safetensors (transformers 5 keys, language model + lm_head), expected.safetensors, cases.json.
Run: python3 tools/golden/qwen_generate.py
"""
import json
import os
import sys

# tools/golden/tokenizers.py would shadow the `tokenizers` package transformers imports.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (GenerationConfig, PreTrainedTokenizerFast, Qwen2_5_VLConfig,  # noqa: E402
                          Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLImageProcessor,
                          Qwen2VLVideoProcessor)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "qwen_generate")
SHARED = os.environ.get("K5_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
QWEN_JSON = os.path.join(SHARED, "tokenizers", "qwen2.5", "tokenizer.json")
VOCAB = 512
NEW_TOKENS = 24

# chat_template.json of Qwen/Qwen2.5-VL-7B-Instruct (the same text as Qwen2-VL's original template).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}")

# The generation values of Qwen/Qwen2.5-VL-7B-Instruct's generation_config.json, as carried unchanged by the
# Qwen2.5-VL-7B derivatives on the Hub (e.g. nbeerbower/Dumpling-Qwen2.5-VL-7B) and the Qwen2-VL releases.
QWEN_GENERATION_CONFIG = {"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True,
                          "eos_token_id": [151645, 151643], "repetition_penalty": 1.05, "temperature": 0.1,
                          "top_p": 0.001, "top_k": 1}


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / p.shape[1] ** 0.5))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def build_model():
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=VOCAB, rms_norm_eps=1e-6, max_position_embeddings=512,
                hidden_act="silu", tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0})
    vision = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=32,
                  fullatt_block_indexes=[0], patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                  window_size=56)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, vocab_size=VOCAB, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    randomise(model, 1)
    return model


def generate(model, prompt, **kwargs):
    config = GenerationConfig(max_new_tokens=NEW_TOKENS, pad_token_id=0, bos_token_id=1,
                              eos_token_id=kwargs.pop("eos_token_id", [VOCAB + 5]), **kwargs)
    torch.manual_seed(42)
    with torch.no_grad():
        out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), generation_config=config,
                             output_logits=True, return_dict_in_generate=True)
    new = out.sequences[0, prompt.shape[1]:]
    logits = torch.cat([l.float() for l in out.logits], dim=0)  # raw logits of each step [n, vocab]
    return new.tolist(), logits


def mrope_case(model, g):
    # 4 text tokens, a 1x2x3 "image" of 6 embeddings, 6 text tokens.
    text_a = torch.randint(0, VOCAB, (4,), generator=g)
    text_b = torch.randint(0, VOCAB, (6,), generator=g)
    embed = model.model.language_model.embed_tokens
    image = torch.randn(6, 32, generator=g)
    with torch.no_grad():
        inputs_embeds = torch.cat([embed(text_a), image, embed(text_b)], dim=0)
    rows = [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]
    for i in range(2):
        for j in range(3):
            rows[0].append(4)
            rows[1].append(4 + i)
            rows[2].append(4 + j)
    start = 4 + 3  # max position of the image span + 1
    for k in range(6):
        for r in rows:
            r.append(start + k)
    positions = torch.tensor(rows, dtype=torch.int64)  # [3, L]
    L = positions.shape[1]
    with torch.no_grad():
        full = model(inputs_embeds=inputs_embeds[None], position_ids=positions[:, None, :], use_cache=False)
        # Greedy continuation with a KV cache, positions max + 1 + step on all three rows.
        out = model(inputs_embeds=inputs_embeds[None], position_ids=positions[:, None, :], use_cache=True)
        cache = out.past_key_values
        step_logits = [out.logits[0, -1]]
        next_position = int(positions.max()) + 1
        tokens = []
        for step in range(NEW_TOKENS):
            token = int(torch.argmax(step_logits[-1]))
            tokens.append(token)
            pos = torch.full((3, 1, 1), next_position + step, dtype=torch.int64)
            out = model(input_ids=torch.tensor([[token]]), position_ids=pos, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            step_logits.append(out.logits[0, -1])
    return {"text_a": text_a.tolist(), "text_b": text_b.tolist(), "positions": rows, "length": L,
            "tokens": tokens}, {"mrope.image_embeds": image, "mrope.logits": full.logits[0].float(),
                                "mrope.step_logits": torch.stack(step_logits[:-1]).float()}


def chat_cases():
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=QWEN_JSON)
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tokenizer,
                                    video_processor=Qwen2VLVideoProcessor(),
                                    chat_template=CHAT_TEMPLATE)
    image = Image.new("RGB", (56, 56))
    instruction = ("You are a prompt beautifier. Rewrite \"{prompt}\" with rich detail.\n"
                   "Answer only with the expanded prompt.").format(prompt="Кот в шляпе 🎩, watercolor")
    messages = {
        "text": [{"role": "user", "content": [{"type": "text", "text": instruction}]}],
        "image_then_text": [{"role": "user", "content": [{"type": "image", "image": image},
                                                        {"type": "text", "text": instruction}]}],
        "text_then_image": [{"role": "user", "content": [{"type": "text", "text": instruction},
                                                        {"type": "image", "image": image}]}],
        "string_content": [{"role": "user", "content": "  spaces kept \n"}],
    }
    chats = []
    for name, message in messages.items():
        rendered = processor.apply_chat_template(message, tokenize=False, add_generation_prompt=True)
        content = [{"type": c["type"], "text": c.get("text", "")} for c in message[0]["content"]] \
            if isinstance(message[0]["content"], list) else message[0]["content"]
        chats.append({"name": name, "content": content, "rendered": rendered,
                      "ids": tokenizer.encode(rendered, add_special_tokens=False)})
    decodes = []
    for text in ["A red fox runs through a snowy forest.", "Портрет кота в шляпе, акварель",
                 "emoji 🎩🦊 and 中文 — \"quotes\"  double  spaces\n\tnew line"]:
        ids = tokenizer.encode("<|im_start|>assistant\n" + text + "<|im_end|>", add_special_tokens=False)
        decodes.append({"ids": ids, "text": tokenizer.decode(ids, skip_special_tokens=True,
                                                             clean_up_tokenization_spaces=False)})
    # " 🎩" is three byte-level tokens; without the last one the UTF-8 is cut (decoded lossily).
    cut = tokenizer.encode("x 🎩", add_special_tokens=False)[:-1]
    decodes.append({"ids": cut, "text": tokenizer.decode(cut, skip_special_tokens=True,
                                                         clean_up_tokenization_spaces=False)})
    return chats, decodes


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    model = build_model()
    g = torch.Generator().manual_seed(3)
    prompt = torch.randint(0, VOCAB, (1, 20), generator=g)
    expected = {}
    cases = {"prompt": prompt[0].tolist(), "generate": []}

    greedy, logits = generate(model, prompt, do_sample=False)
    expected["greedy.logits"] = logits
    cases["generate"].append({"name": "greedy", "config": {"do_sample": False}, "tokens": greedy})
    qwen_values = {k: QWEN_GENERATION_CONFIG[k] for k in ("do_sample", "temperature", "top_k", "top_p",
                                                          "repetition_penalty")}
    tokens, _ = generate(model, prompt, **qwen_values)
    cases["generate"].append({"name": "qwen_config", "config": qwen_values, "tokens": tokens})
    tokens, _ = generate(model, prompt, do_sample=False, repetition_penalty=1.3)
    cases["generate"].append({"name": "penalty", "config": {"do_sample": False, "repetition_penalty": 1.3},
                              "tokens": tokens})
    eos = [greedy[9], 7]
    tokens, _ = generate(model, prompt, do_sample=False, eos_token_id=eos)
    cases["generate"].append({"name": "eos", "config": {"do_sample": False, "eos_token_id": eos},
                              "tokens": tokens})
    sample = {"do_sample": True, "temperature": 1.3, "top_k": 0, "top_p": 1.0}
    tokens, _ = generate(model, prompt, **sample)
    cases["generate"].append({"name": "sample", "config": sample, "tokens": tokens})
    filtered = {"do_sample": True, "temperature": 0.9, "top_k": 40, "top_p": 0.95, "repetition_penalty": 1.1}
    tokens, _ = generate(model, prompt, **filtered)
    cases["generate"].append({"name": "sample_filtered", "config": filtered, "tokens": tokens})
    for case in cases["generate"]:
        print(case["name"], len(set(case["tokens"])), "distinct of", len(case["tokens"]), case["tokens"])

    mrope, tensors = mrope_case(model, g)
    cases["mrope"] = mrope
    expected.update(tensors)
    print("mrope", mrope["tokens"])
    cases["chat"], cases["decode"] = chat_cases()

    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("model.visual.")}
    save_file(state, os.path.join(OUT, "weights.safetensors"))
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(OUT, "expected.safetensors"))
    model.config.to_json_file(os.path.join(OUT, "config.json"))
    with open(os.path.join(OUT, "generation_config.json"), "w") as f:
        json.dump(QWEN_GENERATION_CONFIG, f, indent=2)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
