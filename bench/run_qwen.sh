#!/usr/bin/env bash
# Qwen2.5-VL-7B-shaped language model forward on the CPU, k5 vs PyTorch transformers, same threads, BF16
# weights on both sides, one process per run (each loads, then runs one forward; peak RSS from
# /usr/bin/time -v). Runs alternate torch / k5 REPEAT times; the best time of each side is compared.
#
#   bench/run_qwen.sh [BUILD_DIR] [THREADS] [LAYERS] [TOKENS] [REPEAT] [EXTRA_K5_FLAGS]
#   (default build-textenc 2 4 300 3)
# Weights are random (bench/torch_qwen.py prepare), cached in /tmp/k5_qwen_bench<LAYERS>.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-textenc}; threads=${2:-2}; layers=${3:-4}; tokens=${4:-300}; repeat=${5:-3}; extra=${6:-}
dir=/tmp/k5_qwen_bench$layers
[ -f "$dir/model.safetensors" ] || python3 bench/torch_qwen.py prepare "$dir" --layers "$layers" --tokens "$tokens"
rss() { sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$1" | awk '{printf "%.0f", $1/1024}'; }
best() { sort -g | head -1; }
torch_times=(); k5_times=(); torch_rss=(); k5_rss=()
for _ in $(seq "$repeat"); do
  /usr/bin/time -v python3 bench/torch_qwen.py run "$dir" --threads "$threads" --output "$dir/torch_out.safetensors" \
    > "$dir/torch.log" 2> "$dir/torch.time"
  torch_times+=("$(sed -n 's/torch_forward_seconds //p' "$dir/torch.log")"); torch_rss+=("$(rss "$dir/torch.time")")
  # shellcheck disable=SC2086
  /usr/bin/time -v "$build/k5" forward qwen --model-dir "$dir/model.safetensors" --inputs "$dir/inputs.safetensors" \
    --output "$dir/k5_out.safetensors" --precision bf16 -t "$threads" $extra > "$dir/k5.log" 2> "$dir/k5.time"
  k5_times+=("$(sed -n 's/.*forward \([0-9.e+-]*\) s.*/\1/p' "$dir/k5.time")"); k5_rss+=("$(rss "$dir/k5.time")")
done
t=$(printf '%s\n' "${torch_times[@]}" | best); k=$(printf '%s\n' "${k5_times[@]}" | best)
echo "Qwen2.5-7B shape, $layers layers, $tokens tokens, threads $threads, BF16 weights $extra, best of $repeat"
echo "torch forward: $t s   all: ${torch_times[*]}   peak RSS MB: ${torch_rss[*]}"
echo "k5 forward:    $k s   all: ${k5_times[*]}   peak RSS MB: ${k5_rss[*]}"
echo "ratio torch/k5: $(python3 -c "print(f'{$t/$k:.2f}')")"
python3 - "$dir" <<'PY'
import sys
from safetensors.torch import load_file
d = sys.argv[1]
a = load_file(f"{d}/k5_out.safetensors")["hidden_states"].double()
b = load_file(f"{d}/torch_out.safetensors")["hidden_states"].double()
print(f"relative L2 k5 vs torch (both BF16): {((a - b).norm() / b.norm()).item():.3g}")
PY
