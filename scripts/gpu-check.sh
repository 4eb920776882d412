#!/usr/bin/env bash
# Runs on the GPU machine (device tool) in the repository root, with .gpu-bundle carried (scripts/gpu-bundle.sh),
# in one call of at most ~9.5 minutes (every stage is cut at a shared deadline, the most important first; the
# end-to-end `k5 generate` timing is scripts/gpu-e2e.sh, a second call):
#   1. every GPU test (each CUDA op, the CrossDiT forward, the text encoders and the VAEs against the CPU / the
#      goldens; the --device cuda CLI tests run when a gpu-e2e.sh call left k5 on this machine, else skip);
#   2. the attention kernels at the models' shapes, each k5 kernel (bench_cuda_attention: wgmma overlapped and serial,
#      mma, wmma) and
#      PyTorch's SDPA backends / flex_attention (bench/torch_cuda_attention.py), at most 2 minutes in all: Video
#      Lite 5 s (47,616 tokens, 28 heads of 64), Video Lite 10 s with NABLA keeping ~10% of the blocks (93,696
#      tokens), Image Lite 1024x1024 (4,096 tokens, 20 heads of 128), Video Pro 5 s SD (32 heads of 128);
#   3. k5's copy of torch's CUDA generator against torch there (tools/golden/torch_random_cuda.py);
#   4. issue 6's DiT shapes, k5 (bench_dit, bf16) then the official code (bench/torch_dit_official.py) on the same
#      random full-size weights and the same inputs: Video Lite 5 s 768x512 dense, Image Lite 1024x1024, Video
#      Lite 10 s 768x512 with NABLA; 256 text tokens (the official padding, 100 real). A step with guidance is two
#      forwards.
# Logs go to $OUT (or /tmp/k5-gpu-check): gpu-tests.txt, attention-bench.txt, torch-cuda-rng.txt, dit-bench.txt,
# device.txt.
set -uo pipefail
out=${OUT:-/tmp/k5-gpu-check}
mkdir -p "$out"
deadline=$((SECONDS + ${K5_GPU_CHECK_SECONDS:-560}))
budget() {  # seconds for a command: at most $1, never past the deadline nor past $2 (a stage's own end) if given
  local end=${2:-$deadline}
  ((end > deadline)) && end=$deadline
  local left=$((end - SECONDS))
  ((left < $1)) && echo $((left > 1 ? left : 1)) || echo "$1"
}
source scripts/gpu-env.sh || exit 1
{ nvidia-smi -L; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nproc; } |
  tee "$out/device.txt"
# One line per finished test with its time (not --gtest_brief): if the stage is cut, the log still says how far it got.
timeout "$(budget 200)" "$bundle/k5_gpu_tests" 2>&1 | grep -v '^\[ RUN' | tee "$out/gpu-tests.txt"
attention_end=$((SECONDS + 120))  # the whole stage, so the DiT timings keep their time
for shape in "47616 28 64" "93696 28 64 5 0.1" "4096 20 128" "47616 32 128"; do
  ((attention_end - SECONDS > 5)) || break
  set -- $shape
  timeout "$(budget 30 $attention_end)" "$bundle/bench_cuda_attention" "$1" "$2" "$3" "${4:-5}" "${5:-1}" 2>&1
  timeout "$(budget 60 $attention_end)" python3 bench/torch_cuda_attention.py "$1" "$2" "$3" "${4:-5}" "${5:-1}" 2>&1 |
    grep -E '^torch|Error'
done | tee "$out/attention-bench.txt"
timeout "$(budget 60)" python3 tools/golden/torch_random_cuda.py "$out/torch_cuda_rng.safetensors" &&
  K5_TORCH_CUDA_GOLDEN="$out/torch_cuda_rng.safetensors" timeout "$(budget 30)" "$bundle/k5_gpu_tests" \
    --gtest_filter='CudaGolden.*' 2>&1 | tee "$out/torch-cuda-rng.txt"
rm -f "$out/torch_cuda_rng.safetensors"
for shape in "k5_lite_t2v_5s_sft_sd 31 64 96" "k5_lite_t2i_sft_hd 1 128 128" "k5_lite_t2v_10s_sft_sd 61 64 96"; do
  set -- $shape
  config=$bundle/configs/$1.yaml weights=/tmp/$1.safetensors inputs=/tmp/$1.inputs.safetensors
  timeout "$(budget 120)" "$bundle/bench_dit" "$config" "$weights" "$2" "$3" "$4" 256 bf16 16 2 auto cuda "$inputs" 2>&1 |
    sed "s/^/$1 /"
  [ -f "$inputs" ] && timeout "$(budget 180)" python3 bench/torch_dit_official.py "$bundle/official" "$config" \
    "$weights" "$inputs" 2 cuda 2>&1 | grep -E '^torch|Error|error' | sed "s/^/$1 /"
  rm -f "$weights" "$inputs"
done | tee "$out/dit-bench.txt"
