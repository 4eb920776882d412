#!/usr/bin/env bash
# HunyuanVideo VAE decode, k5 vs PyTorch (official vae.py) on the CPU with the same thread count, on a
# realistic-channel decoder (random weights, bench/torch_vae.py). Runs are interleaved (torch, k5 oneDNN conv,
# k5 im2col conv) REPEAT times; the best of each is reported with the ratio torch / k5.
#
#   bench/run_vae.sh [BUILD_DIR] [THREADS] [REPEAT] [T H W]     (default build-vae 2 2, latent 2 16 16)
# Needs /tmp/k5_vae.py (the official vae.py, see tools/golden/vae.py).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-vae}; threads=${2:-2}; repeat=${3:-2}
latent=("${4:-2}" "${5:-16}" "${6:-16}")
dir=/tmp/k5_vae_bench_${latent[0]}x${latent[1]}x${latent[2]}
[ -f "$dir/weights.safetensors" ] || python3 bench/torch_vae.py prepare "$dir" --latent "${latent[@]}"
k5_run() {
  K5_CONV=$1 "$build/k5" forward vae-decode --vae hunyuan --config "$dir/config.json" --weights "$dir/weights.safetensors" \
    --inputs "$dir/inputs.safetensors" --output "$dir/k5_out.safetensors" --no-tile -t "$threads" 2>&1 |
    sed -n 's/.* in \([0-9.]*\) s/\1/p'
}
best() { sort -g | head -1; }
torch_times=(); dnnl_times=(); im2col_times=()
for _ in $(seq "$repeat"); do
  torch_times+=("$(python3 bench/torch_vae.py run "$dir" --threads "$threads" | sed -n 's/torch_decode_seconds //p')")
  dnnl_times+=("$(k5_run dnnl)")
  im2col_times+=("$(k5_run im2col)")
done
t=$(printf '%s\n' "${torch_times[@]}" | best); d=$(printf '%s\n' "${dnnl_times[@]}" | best)
i=$(printf '%s\n' "${im2col_times[@]}" | best)
echo "latent 16x${latent[0]}x${latent[1]}x${latent[2]}, threads $threads, best of $repeat"
echo "torch (official vae.py) decode: $t s   all: ${torch_times[*]}"
echo "k5 oneDNN conv decode:          $d s   all: ${dnnl_times[*]}   ratio torch/k5 $(python3 -c "print(f'{$t/$d:.2f}')")"
echo "k5 im2col+sgemm decode:         $i s   all: ${im2col_times[*]}   ratio torch/k5 $(python3 -c "print(f'{$t/$i:.2f}')")"
k5_run dnnl >/dev/null
python3 bench/torch_vae.py compare "$dir"
