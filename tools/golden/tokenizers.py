#!/usr/bin/env python3
"""Goldens for k5's BPE tokenizers (src/models/bpe/): exact token ids from the Hugging Face references.

Writes tests/golden/tokenizers/:
  clip/vocab.json, clip/merges.txt  the openai/clip-vit-large-patch14 vocabulary in Hugging Face format, built
                                    from open_clip's bpe_simple_vocab_16e6.txt.gz (pass --clip-bpe PATH; get it
                                    with `pip download --no-deps open-clip-torch` and unzip
                                    open_clip/bpe_simple_vocab_16e6.txt.gz)
  corpus.json                       {"strings": [{text, qwen, clip}], "moviegen": [...hashes...],
                                     "clip_padded": [...], "kandinsky": [...]}

References: Qwen: tokenizers.Tokenizer.from_file(<shared>/tokenizers/qwen2.5/tokenizer.json).encode(text,
add_special_tokens=False) (Qwen2TokenizerFast adds nothing either); CLIP: transformers.CLIPTokenizer (in
transformers 5 this is the `tokenizers`-backed tokenizer; there is no separate slow class any more) loaded from
the committed vocab.json + merges.txt. Kandinsky prompts: the official text_embedders.py call (template joined
with newlines, str.format, truncation to max_length + crop_start, padding="max_length", or padding=True for
image_edit), with the templates read from a local copy of text_embedders.py named by K5_TEXT_EMBEDDERS_PY.

The long MovieGen columns (expanded_prompt, ru_expanded_prompt) are stored as (row, column, length, FNV-1a
hash of the ids) so the corpus stays small; the test reads the CSV from the shared folder.

Usage: python3 tools/golden/tokenizers.py --clip-bpe /tmp/oc/bpe.txt.gz
"""
import argparse
import csv
import gzip
import json
import os
import random
import sys
import unicodedata

# This file is named like the `tokenizers` package: keep its folder off the import path.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "tests", "golden", "tokenizers")
QWEN_JSON = os.path.join(SHARED, "tokenizers", "qwen2.5", "tokenizer.json")
MOVIEGEN = os.path.join(SHARED, "k5-official", "benchmark", "moviegen_bench.csv")


def bytes_to_unicode():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    codes = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + n)
            n += 1
    return dict(zip(printable, [chr(c) for c in codes]))


def build_clip_vocab(bpe_gz):
    lines = gzip.open(bpe_gz).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(os.path.join(OUT, "clip"), exist_ok=True)
    with open(os.path.join(OUT, "clip", "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({token: i for i, token in enumerate(vocab)}, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(OUT, "clip", "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


# The official Kandinsky 5 templates (kandinsky/models/text_embedders.py), read at generation time.
def official_templates():
    import ast

    path = os.environ.get("K5_TEXT_EMBEDDERS_PY")
    if not path or not os.path.exists(path):
        return None
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PROMPT_TEMPLATE" for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def edge_strings(rng):
    s = [
        "", " ", "  ", "\t", "\n", "\r\n", "\r", "\n\n\n", " \n ", "a\tb\tc", "line1\r\nline2\r\n", "\t\t  \n\t x",
        "hello world", " hello", "hello ", "  hello  world  ", "Hello, World!", "HELLO", "it's I'M you'LL we'd they've",
        "don't 'S 'T 'Re 'VE 'M 'LL 'D 'ſ", "'s's's", "a'sb", "''''", "e\u0301", "cafe\u0301", "Cafe\u0301 na\u0131ve",
        "A\u030a\u0323", "\u1e9b\u0323", "\u212b", "\u00c5", "\uac00\u11a8", "\u1100\u1161\u11a8",
        "1234567890", "12345678901234567890123456789012345678901234567890", "3.14159 2,718 1e-10 0x1F",
        "!!!!!!", "??!!..,,;;", "...", "---===+++", "(((())))", "{\"a\": [1, 2]}", "<html><body>x</body></html>",
        "C++ -> std::vector<int>", "a+b=c", "~`@#$%^&*()_+-=[]{}|;':\",./<>?", "\\n \\t",
        "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u4e00\u53ea\u732b\u5728\u8349\u5730\u4e0a\u5954\u8dd1\u3002",
        "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
        "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!", "\u0395\u039b\u039b\u0397\u039d\u0399\u039a\u0391 \u03a3\u039f\u03a6\u039f\u03a3",
        "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u05e2\u05d1\u05e8\u05d9\u05ea", "\u0939\u093f\u0928\u094d\u0926\u0940",
        "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22", "\U0001f600", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
        "\U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5", "\U0001f3f3\ufe0f\u200d\U0001f308", "\u2764\ufe0f", "a\U0001f600b",
        "\U0001f9d1\U0001f3ff\u200d\U0001f4bb working", "\u00a0nbsp\u00a0", "ideo\u3000space", "em\u2003space",
        "nel\u0085x", "ls\u2028ps\u2029", "zw\u200bsp", "mongol\u180esep", "a \u180e b\u180e", "\u180e\u180e  x", "\x1c\x1d\x1e\x1f a\x1f", "\u2060\u200b\ufeff", "\u00bd \u2153 \u00b2 \u2460 \u0660\u0661",
        "\u2167 \u216b", "\u0130stanbul", "STRASSE stra\u00dfe", "\u1e9e", "\ufb01ne", "\u00c6SIR", "\u01c5",
        "\U0001d400\U0001d401", "\u0000", "\x01\x02\x7f", "\ufeffbom", "tab\tafter", "a  b   c    d",
        "trailing   ", "   leading", " \n\n  mixed \t\r\n end", "x\r\n\r\ny", "!\n", "a.\n\nb", "?\r\n",
        "<|im_start|>user\nhi<|im_end|>", "<|im_start|><|im_end|>", "<|endoftext|>", "x<|endoftext|>y",
        "<|vision_start|><|image_pad|><|vision_end|>", "<|im_start", "<|startoftext|>hi<|endoftext|>",
        "<|im_start|>system\nYou are a promt engineer.<|im_end|>\n<|im_start|>user\n\u732b<|im_end|>",
    ]
    alphabet = (list("aAzZ09 ''\t\n\r.,!?-_()") + ["\u00e9", "e\u0301", "\u4e2d", "\u6587", "\u0416", "\u03a3",
                "\U0001f600", "\u200d", "\U0001f3fb", "\u0661", "\u00a0", "\u3000", "<|im_end|>", "'s", "'LL",
                "123", "\u0300", "\u00df", "\u0130", "\u180e", "\x1f", "\u0085", "\u2028"])
    for _ in range(200):
        s.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
    # Random code points over all planes (surrogates excluded): Unicode-version corners of \\p{L}, \\p{N}, \\s.
    for _ in range(100):
        chars = []
        while len(chars) < rng.randint(1, 24):
            cp = rng.choice([rng.randint(0x20, 0x7F), rng.randint(0x80, 0x2FFF), rng.randint(0x3000, 0xFFFF),
                             rng.randint(0x10000, 0x1FFFF), 0x20, 0x0A])
            # Only code points assigned by Unicode 14 (PCRE2 10.42's tables): `tokenizers`' Oniguruma knows
            # newer versions, so letters added since (e.g. U+140C4, Unicode 16) are classified differently.
            if not 0xD800 <= cp <= 0xDFFF and unicodedata.category(chr(cp)) != "Cn":
                chars.append(chr(cp))
        s.append("".join(chars))
    return s


def long_prompt(rng, rows):
    text = " ".join(rows[i]["expanded_prompt"] + "\n" + rows[i]["ru_expanded_prompt"] for i in range(6))
    return text


def fnv1a(ids):
    h = 0xCBF29CE484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little", signed=True):
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return format(h, "016x")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip-bpe", help="open_clip bpe_simple_vocab_16e6.txt.gz (rebuilds clip/ when given)")
    args = parser.parse_args()
    if args.clip_bpe:
        build_clip_vocab(args.clip_bpe)

    from tokenizers import Tokenizer
    import transformers

    qwen = Tokenizer.from_file(QWEN_JSON)
    qwen_fast = transformers.PreTrainedTokenizerFast(tokenizer_file=QWEN_JSON, pad_token="<|endoftext|>")
    clip = transformers.CLIPTokenizer.from_pretrained(os.path.join(OUT, "clip"))

    def q(text):
        return qwen.encode(text, add_special_tokens=False).ids

    def c(text):
        return clip(text, add_special_tokens=False)["input_ids"]

    rng = random.Random(5)
    rows = list(csv.DictReader(open(MOVIEGEN, encoding="utf-8", newline="")))
    strings = edge_strings(rng)
    strings += [r["prompt"] for r in rows] + [r["ru_prompt"] for r in rows]
    strings.append(" " * 20000 + "x" + "\n" * 10000 + "a" * 50000 + "\U0001f600" * 3000 + "\t \r\n" * 2000)
    strings.append(long_prompt(rng, rows))  # stays last: the speed test uses it
    corpus = {"strings": [], "moviegen": [], "clip_padded": [], "kandinsky": [], "kandinsky_images": []}
    for text in strings:
        qid = q(text)
        corpus["strings"].append({"text": text, "qwen": qid, "clip": c(text)})
    for i, r in enumerate(rows):
        for column in ("expanded_prompt", "ru_expanded_prompt"):
            qid, cid = q(r[column]), c(r[column])
            corpus["moviegen"].append({"row": i, "column": column, "text_bytes": len(r[column].encode()),
                                       "qwen_length": len(qid), "qwen_fnv1a": fnv1a(qid),
                                       "clip_length": len(cid), "clip_fnv1a": fnv1a(cid)})
    # The official CLIP call: max_length 77, truncation, special tokens, padding to max_length.
    for text in [strings[i] for i in (0, 1, 10, 17, 60)] + [rows[0]["prompt"], rows[1]["expanded_prompt"],
                                                           rows[2]["ru_expanded_prompt"], "<|endoftext|> x"]:
        enc = clip(text, max_length=77, truncation=True, add_special_tokens=True, padding="max_length")
        corpus["clip_padded"].append({"text": text, "ids": enc["input_ids"], "mask": enc["attention_mask"]})

    templates = official_templates()
    if templates:
        for content, max_length in (("video", 256), ("image", 512), ("image_edit", 512), ("image2video", 256)):
            template = "\n".join(templates["template"][content])
            crop_start = templates["crop_start"][content]
            prefix_ids = q(template.split("{}")[0])
            for text in ("", "A cat.", rows[3]["prompt"], rows[4]["expanded_prompt"], rows[5]["ru_expanded_prompt"]):
                # Newest official code: padding="max_length" except image_edit (padding=True, one prompt: none).
                padding = True if content == "image_edit" else "max_length"
                enc = qwen_fast([template.format(text)], truncation=True, padding=padding,
                                max_length=max_length + crop_start)
                corpus["kandinsky"].append({"content": content, "prompt": text, "max_length": max_length,
                                            "crop_start": crop_start, "prefix_tokens": len(prefix_ids),
                                            "ids": enc["input_ids"][0], "mask": enc["attention_mask"][0]})
        # image_edit with source images: the official text gets one <|vision_start|><|image_pad|><|vision_end|>
        # per image and a closing <|im_end|>; the processor repeats <|image_pad|> grid.prod() // merge_size**2
        # times (Qwen2_5_VLProcessor.replace_image_token) and tokenises without truncation or padding.
        template = "\n".join(templates["template"]["image_edit"])
        for text, counts in (("Make the sky red.", [4]), (rows[6]["prompt"], [2, 3])):
            full = template.format(text) + "".join("<|vision_start|>" + "<|image_pad|>" * n + "<|vision_end|>"
                                                  for n in counts) + "<|im_end|>"
            enc = qwen_fast([full], truncation=True, padding=True, max_length=None)
            corpus["kandinsky_images"].append({"prompt": text, "image_token_counts": counts,
                                               "ids": enc["input_ids"][0], "mask": enc["attention_mask"][0]})
    else:
        print("K5_TEXT_EMBEDDERS_PY not set: no Kandinsky template goldens")
    with open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(corpus, f, ensure_ascii=False, separators=(",", ":"))
    print(len(corpus["strings"]), "strings,", len(corpus["moviegen"]), "MovieGen hashes,",
          os.path.getsize(os.path.join(OUT, "corpus.json")), "bytes")


if __name__ == "__main__":
    main()
