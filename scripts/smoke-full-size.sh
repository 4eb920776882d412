#!/usr/bin/env bash
# Full-size smoke test: random-weight DiTs with the real Video Lite (d 1792, 32 blocks) and Image Lite
# (d 2560, 50 blocks) shapes are created in $WORK (default /tmp/k5_smoke; ~4 GB and ~12 GB in BF16), recognised
# by `k5 info`, and run one forward on a small latent; prints time and peak RSS. Needs python3 + safetensors
# (only to write the small input file).
#   scripts/smoke-full-size.sh [BUILD_DIR] [lite|t2i|all]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}; which=${2:-all}; work=${WORK:-/tmp/k5_smoke}
mkdir -p "$work"
configs=../shared/k5-official/configs
smoke() {  # NAME CONFIG T H W CHANNELS
  local name=$1 config=$2
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
  /usr/bin/time -f "$name: forward wall %e s, peak RSS %M KB" "$build/k5" forward dit --config "$config" \
    --weights "$work/$name.safetensors" --inputs "$work/$name.in.safetensors" --output "$work/$name.out.safetensors"
}
if [ "$which" = lite ] || [ "$which" = all ]; then smoke lite "$configs/k5_lite_t2v_5s_sft_sd.yaml" 2 16 16 33; fi
if [ "$which" = t2i ] || [ "$which" = all ]; then smoke t2i "$configs/k5_lite_t2i_sft_hd.yaml" 1 32 32 16; fi
