#!/usr/bin/env bash
# Runs on the GPU machine (device tool) in the repository root, as the call right after scripts/gpu-check.sh on the
# still-warm machine, with .gpu-bundle-k5 carried (scripts/gpu-bundle.sh; the first call's .gpu-bundle stays
# unpacked in build-gpu-bundle/, or carry .gpu-bundle instead in a first call). Issue 6's end-to-end timing:
# `k5 generate` of Video Lite T2V 5 s at 768x512 with the official defaults (50 steps, guidance 5, the prompt
# expanded by Qwen2.5-VL first) on the GPU, from a full-size random model folder (`k5 create-demo-model
# --full-size`, ~21 GB in /tmp, written once per machine). Wall time, each model's peak GPU memory (k5's log) and
# the process's peak RSS go to $OUT/e2e.txt, all within ~9.5 minutes (K5_E2E_SECONDS).
#   K5_E2E_STEPS (default 50) shortens the run when the device time left is short: the log keeps the step times.
set -uo pipefail
out=${OUT:-/tmp/k5-gpu-check}
mkdir -p "$out"
deadline=$((SECONDS + ${K5_E2E_SECONDS:-570}))
source scripts/gpu-env.sh || exit 1
[ -x "$bundle/k5" ] || { echo "no k5 binary here: carry .gpu-bundle-k5 (scripts/gpu-bundle.sh)" >&2; exit 1; }
model=/tmp/k5-lite-full
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  if [ ! -f "$model/README.txt" ]; then
    start=$SECONDS
    timeout $((deadline - SECONDS)) "$bundle/k5" create-demo-model --full-size --output "$model" || exit 1
    echo "full-size random model written in $((SECONDS - start)) s"
  fi
  timer=()
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -f "k5 generate: wall %e s, peak RSS %M KB")
  start=$SECONDS
  timeout $((deadline - SECONDS)) ${timer[@]+"${timer[@]}"} "$bundle/k5" generate -m "$model" --device cuda -v \
    -p "A red fox runs through a snowy birch forest at dawn, its breath steaming in the cold air" \
    -W 768 -H 512 --duration 5 --steps "${K5_E2E_STEPS:-50}" -s 7 --progress json -o /tmp/k5-e2e.mp4
  echo "k5 generate exit $?, $((SECONDS - start)) s by the script's clock"
} 2>&1 | tee "$out/e2e.txt"
