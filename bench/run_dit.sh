#!/usr/bin/env bash
# CrossDiT forward, k5 vs PyTorch (diffusers Kandinsky5Transformer3DModel) on the CPU: Video Lite architecture
# (d 1792, 2 text + BLOCKS visual blocks, random weights), batch 1, 100 text tokens, ~1,500 and ~8,000 visual
# tokens, same threads, runs interleaved, best of REPEAT; also k5 with int8 weights (--weights-int8) against
# PyTorch's bf16. Writes bench/results/dit-cpu.md.
#   bench/run_dit.sh [BUILD_DIR] [THREADS] [REPEAT] [BLOCKS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}; threads=${2:-2}; repeat=${3:-2}; blocks=${4:-2}
dir=/tmp/k5_dit_bench_$blocks
[ -f "$dir/dit.safetensors" ] || python3 bench/torch_dit.py prepare "$dir" --blocks "$blocks"
log=$(mktemp)
run_k5() {  # T H W PRECISION
  "$build/bench/bench_dit" "$dir/config.yaml" "$dir/dit.safetensors" "$1" "$2" "$3" 100 "$4" "$threads" "$repeat" >>"$log"
}
run_case() {  # T H W PRECISION
  run_k5 "$@"
  python3 bench/torch_dit.py run "$dir" "$1" "$2" "$3" 100 "$4" "$threads" "$repeat" 2>/dev/null | grep '^torch' >>"$log"
}
run_case 15 20 20 fp32
run_case 15 20 20 bf16
run_k5 15 20 20 int8
run_case 20 40 40 bf16
run_k5 20 40 40 int8
python3 - "$log" "$threads" "$blocks" <<'PY' >bench/results/dit-cpu.md
import subprocess, sys
log, threads, blocks = sys.argv[1], sys.argv[2], sys.argv[3]
times = {}
for line in open(log):
    side, _, precision, tokens, seconds = line.split()
    times[(side, precision, tokens)] = float(seconds)
model = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
print("# CrossDiT forward on the CPU: k5 vs PyTorch\n")
print(f"Machine: {model}, {threads} threads. Command: `bench/run_dit.sh build {threads}`. Model: Video Lite")
print(f"architecture (d 1792, ff 7168, head_dim 64, visual_cond) with 2 text and {blocks} visual blocks, random weights,")
print("batch 1, 100 text tokens, dense attention. PyTorch: diffusers `Kandinsky5Transformer3DModel` 0.42.1, torch")
print("2.15; fp32 = float32 weights and activations; bf16 = bfloat16 weights and activations with the time embedding")
print("and modulations in float32 (diffusers' `_keep_in_fp32_modules`), PyTorch's fastest CPU setting. k5: `--precision`")
print("fp32 / bf16; int8 = bf16 with the blocks' attention and feed-forward weights int8 (`--weights-int8`),")
print("compared with PyTorch's bf16. Best of the repeats, one forward each.\n")
print("| visual tokens | precision | k5 s | PyTorch s | ratio (PyTorch / k5) |")
print("|---|---|---|---|---|")
for (side, precision, tokens), seconds in times.items():
    if side != "k5":
        continue
    torch = times.get(("torch", "bf16" if precision == "int8" else precision, tokens))
    label = "int8 weights (PyTorch: bf16)" if precision == "int8" else precision
    print(f"| {tokens} | {label} | {seconds:.3f} | {torch:.3f} | {torch / seconds:.2f} |")
PY
rm -f "$log"
cat bench/results/dit-cpu.md
