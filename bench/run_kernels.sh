#!/usr/bin/env bash
# GEMM and attention, k5 vs PyTorch on this CPU, same shapes and threads, runs interleaved (k5, torch, k5,
# torch) and the best of each kept. Writes bench/results/kernels-cpu.md.
#   bench/run_kernels.sh [BUILD_DIR] [THREADS] [REPEAT]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}; threads=${2:-2}; repeat=${3:-3}
out=$(mktemp -d)
for round in 1 2; do
  "$build/bench/bench_kernels" "$threads" "$repeat" >"$out/k5.$round"
  python3 bench/torch_kernels.py "$threads" "$repeat" >"$out/torch.$round"
done
python3 - "$out" "$threads" <<'PY' >bench/results/kernels-cpu.md
import collections, glob, platform, subprocess, sys
out, threads = sys.argv[1], sys.argv[2]
best = collections.defaultdict(lambda: float("inf"))
nabla = ""
peaks = {}
for path in glob.glob(out + "/*"):
    for line in open(path):
        parts = line.split()
        if parts[0] == "nabla":
            nabla = line.strip()
            continue
        if parts[0] == "peak":
            peaks[parts[1]] = max(peaks.get(parts[1], 0), float(parts[2]))
            continue
        side, case, dtype, seconds = parts[0], parts[1], parts[2], float(parts[3])
        best[(side, case, dtype)] = min(best[(side, case, dtype)], seconds)
model = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
print("# CPU kernels: k5 vs PyTorch\n")
print(f"Machine: {model}, {threads} threads; {platform.platform()}. Command: `bench/run_kernels.sh build {threads}`.")
print("Runs interleaved (k5, torch, k5, torch), best time of each side kept. Peak = measured register-only")
print(f"FMA / VDPBF16PS throughput on {threads} threads: fp32 {peaks.get('fp32', 0):.0f} GFLOP/s, "
      f"bf16 {peaks.get('bf16', 0):.0f} GFLOP/s.\n")
print("GEMM: `ops::linear` (fp32: F32 activations and weights; bf16: BF16 activations and weights) vs `F.linear`")
print("on fp32 / bf16 tensors. Attention: `ops::attention` in fp32 / bf16 precision vs")
print("`F.scaled_dot_product_attention` on fp32 / bf16 tensors (one sequence, no mask).\n")
print("| case | dtype | k5 GFLOP/s | PyTorch GFLOP/s | ratio (torch time / k5 time) | k5 % of peak |")
print("|---|---|---|---|---|---|")
def flops(case):
    fields = dict((f[0], int(f[1:])) for f in case.split("_")[1:])
    if case.startswith("gemm"):
        return 2 * fields["m"] * fields["k"] * fields["n"]
    return 4 * fields["n"] ** 2 * fields["d"] * fields["h"]
for (side, case, dtype), seconds in sorted(best.items()):
    if side != "torch":
        continue
    k5 = best.get(("k5", case, dtype))
    if k5 is None:
        continue
    peak = peaks.get(dtype, 0)
    print(f"| {case} | {dtype} | {flops(case) / k5 / 1e9:.0f} | {flops(case) / seconds / 1e9:.0f} | "
          f"{seconds / k5:.2f} | {100 * flops(case) / k5 / 1e9 / peak:.0f}% |")
print("\nNABLA block-sparse attention vs k5 dense attention, same shape (2 heads, head_dim 64), bf16 mode, last run:")
print(f"`{nabla}`")
PY
rm -rf "$out"
cat bench/results/kernels-cpu.md
