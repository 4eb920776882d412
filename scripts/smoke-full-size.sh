#!/usr/bin/env bash
# Full-size smoke test with random weights in $WORK (default /tmp/k5_smoke); prints time and peak RSS.
#   lite, t2i  DiTs with the real Video Lite (d 1792, 32 blocks) and Image Lite (d 2560, 50 blocks) shapes
#              (~4 GB and ~12 GB BF16), recognised by `k5 info`, one forward on a small latent
#   qwen       the Qwen2.5-VL-7B language model (28 layers, 15 GB BF16, bench/torch_qwen.py), a 300-token forward
#   vae        the HunyuanVideo decoder (real channels, bench/torch_vae.py) decoding one 17-frame 768x512 tile
#              (the unit a 121-frame 768x512 decode repeats 14 times) frame by frame
#   vae-full   the whole 121-frame 768x512 decode (latent 31x64x96: 14 tiles, hours on 2 cores) frame by frame
#   lite-int8, t2i-int8   lite and t2i with `--weights-int8` (the blocks' GEMM weights quantised at load)
# Needs python3 + torch + safetensors (to write weights and inputs).
#   scripts/smoke-full-size.sh [BUILD_DIR] [lite|t2i|lite-int8|t2i-int8|qwen|vae|vae-full|all]  (all = lite + t2i)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}; which=${2:-all}; work=${WORK:-/tmp/k5_smoke}
mkdir -p "$work"
configs=../shared/k5-official/configs
smoke() {  # NAME CONFIG T H W CHANNELS [forward dit options]
  local name=$1 config=$2 options=${7:-}
  [ -f "$work/$name.safetensors" ] || "$build/k5" create-random-dit --config "$config" --output "$work/$name.safetensors"
  "$build/k5" info "$work/$name.safetensors"
  python3 - "$work/$name.in.safetensors" "$3" "$4" "$5" "$6" <<'PY'
import sys, torch
from safetensors.torch import save_file
path, t, h, w, c = sys.argv[1], *map(int, sys.argv[2:6])
g = torch.Generator().manual_seed(0)
save_file({"x": torch.randn(t, h, w, c, generator=g), "text_embed": torch.randn(32, 3584, generator=g),
           "pooled_text_embed": torch.randn(1, 768, generator=g), "time": torch.tensor([500.0])}, path)
PY
  # shellcheck disable=SC2086  # the options are words
  /usr/bin/time -f "$name $options: forward wall %e s, peak RSS %M KB" "$build/k5" forward dit --config "$config" \
    --weights "$work/$name.safetensors" --inputs "$work/$name.in.safetensors" --output "$work/$name.out.safetensors" \
    $options
}
if [ "$which" = lite ] || [ "$which" = all ]; then smoke lite "$configs/k5_lite_t2v_5s_sft_sd.yaml" 2 16 16 33; fi
if [ "$which" = t2i ] || [ "$which" = all ]; then smoke t2i "$configs/k5_lite_t2i_sft_hd.yaml" 1 32 32 16; fi
if [ "$which" = lite-int8 ]; then smoke lite "$configs/k5_lite_t2v_5s_sft_sd.yaml" 2 16 16 33 --weights-int8; fi
if [ "$which" = t2i-int8 ]; then smoke t2i "$configs/k5_lite_t2i_sft_hd.yaml" 1 32 32 16 --weights-int8; fi
if [ "$which" = qwen ]; then
  [ -f "$work/qwen/model.safetensors" ] || python3 bench/torch_qwen.py prepare "$work/qwen" --layers 28 --tokens 300
  /usr/bin/time -f "qwen 7B: wall %e s, peak RSS %M KB" "$build/k5" forward qwen --model-dir "$work/qwen/model.safetensors" \
    --inputs "$work/qwen/inputs.safetensors" --output "$work/qwen/out.safetensors" --precision bf16
fi
if [ "$which" = vae ]; then
  [ -f "$work/vae/weights.safetensors" ] || python3 bench/torch_vae.py prepare "$work/vae" --latent 5 64 96
  /usr/bin/time -f "vae 17x768x512 tile by frames: wall %e s, peak RSS %M KB" "$build/k5" forward vae-decode \
    --vae hunyuan --weights "$work/vae/weights.safetensors" --inputs "$work/vae/inputs.safetensors" \
    --output "$work/vae/out.safetensors" --by-frames on
fi
if [ "$which" = vae-full ]; then
  [ -f "$work/vae_full/weights.safetensors" ] || python3 bench/torch_vae.py prepare "$work/vae_full" --latent 31 64 96
  /usr/bin/time -f "vae 121x768x512 by frames: wall %e s, peak RSS %M KB" "$build/k5" forward vae-decode \
    --vae hunyuan --weights "$work/vae_full/weights.safetensors" --inputs "$work/vae_full/inputs.safetensors" \
    --output "$work/vae_full/out.safetensors" --by-frames on
fi
