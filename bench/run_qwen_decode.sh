#!/usr/bin/env bash
# Greedy decoding speed of the Qwen2.5-VL-7B-shaped language model on the CPU, k5 (`generate`, BF16 and int8
# weights) vs transformers' `generate` (BF16), same random weights, prompt and threads; one process per run,
# runs interleaved torch / k5 bf16 / k5 int8, REPEAT rounds, the best of each side compared. k5's program also
# measures the memory bandwidth (multi-threaded read-sum, same threads) to put the decode GB/s against.
#
#   bench/run_qwen_decode.sh [BUILD_DIR] [THREADS] [LAYERS] [NEW_TOKENS] [REPEAT] [PROMPT]
#   (default build 2 4 32 3 64)
# Weights: bench/torch_qwen.py prepare, cached in /tmp/k5_qwen_bench<LAYERS> (no lm_head: both sides tie it to
# the embedding table). Writes bench/results/qwen-decode-cpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}; threads=${2:-2}; layers=${3:-4}; new=${4:-32}; repeat=${5:-3}; prompt=${6:-64}
dir=/tmp/k5_qwen_bench$layers
[ -f "$dir/model.safetensors" ] || python3 bench/torch_qwen.py prepare "$dir" --layers "$layers" --tokens 300
python3 - "$dir" "$prompt" <<'PY'
import sys
from safetensors.torch import load_file
d, n = sys.argv[1], int(sys.argv[2])
ids = load_file(f"{d}/inputs.safetensors")["input_ids"][0, :n].tolist()
open(f"{d}/prompt{n}.txt", "w").write(" ".join(map(str, ids)) + "\n")
PY
ids="$dir/prompt$prompt.txt"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
get() { sed -n "s/^$1 //p" "$2"; }
best_min() { sort -g | head -1; }
best_max() { sort -g | tail -1; }
t_tps=(); b_tps=(); i_tps=(); t_pre=(); b_pre=(); i_pre=(); b_gbs=(); i_gbs=(); bw=()
for r in $(seq "$repeat"); do
  python3 bench/torch_qwen_decode.py "$dir" --prompt-ids "$ids" --threads "$threads" --new-tokens "$new" > "$dir/dec_torch.log"
  t_tps+=("$(get torch_decode_tokens_per_s "$dir/dec_torch.log")"); t_pre+=("$(get torch_prefill_seconds "$dir/dec_torch.log")")
  for w in bf16 int8; do
    "$build/bench/bench_qwen_decode" "$dir/model.safetensors" "$ids" "$w" "$threads" "$new" 2 > "$dir/dec_k5_$w.log"
    bw+=("$(get k5_memory_bandwidth_gbs "$dir/dec_k5_$w.log")")
  done
  b_tps+=("$(get k5_decode_tokens_per_s "$dir/dec_k5_bf16.log")"); b_pre+=("$(get k5_prefill_seconds "$dir/dec_k5_bf16.log")")
  b_gbs+=("$(get k5_decode_gbs "$dir/dec_k5_bf16.log")")
  i_tps+=("$(get k5_decode_tokens_per_s "$dir/dec_k5_int8.log")"); i_pre+=("$(get k5_prefill_seconds "$dir/dec_k5_int8.log")")
  i_gbs+=("$(get k5_decode_gbs "$dir/dec_k5_int8.log")")
  echo "round $r: torch ${t_tps[-1]} tok/s, k5 bf16 ${b_tps[-1]} tok/s, k5 int8 ${i_tps[-1]} tok/s, bandwidth ${bw[-1]} GB/s"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
T=$(printf '%s\n' "${t_tps[@]}" | best_max); B=$(printf '%s\n' "${b_tps[@]}" | best_max); I=$(printf '%s\n' "${i_tps[@]}" | best_max)
BW=$(printf '%s\n' "${bw[@]}" | best_max)
TP=$(printf '%s\n' "${t_pre[@]}" | best_min); BP=$(printf '%s\n' "${b_pre[@]}" | best_min); IP=$(printf '%s\n' "${i_pre[@]}" | best_min)
GB_BF16=$(get k5_weight_gb_per_token "$dir/dec_k5_bf16.log"); GB_INT8=$(get k5_weight_gb_per_token "$dir/dec_k5_int8.log")
same() { python3 -c "import sys; a=sys.argv[1].split(); b=sys.argv[2].split(); print(sum(x==y for x,y in zip(a,b)), 'of', len(b))" "$1" "$2"; }
agree_bf16=$(same "$(get k5_ids "$dir/dec_k5_bf16.log")" "$(get torch_ids "$dir/dec_torch.log")")
agree_int8=$(same "$(get k5_ids "$dir/dec_k5_int8.log")" "$(get torch_ids "$dir/dec_torch.log")")
py() { python3 -c "print(f'{$1:$2}')"; }
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
out=bench/results/qwen-decode-cpu.md
python3 - "$out" <<PY
import sys
T, B, I, BW = $T, $B, $I, $BW
gb_b, gb_i = $GB_BF16, $GB_INT8
rows = [("PyTorch transformers \`generate\`, BF16", T, $TP, gb_b, "${t_tps[*]}"),
        ("k5 \`generate\`, BF16 weights (mapped)", B, $BP, gb_b, "${b_tps[*]}"),
        ("k5 \`generate\`, int8 weights", I, $IP, gb_i, "${i_tps[*]}")]
lines = [f"| {n} | {tps:.2f} | {1000/tps:.0f} ms | {pre:.3f} s | {gb*tps:.1f} GB/s ({100*gb*tps/BW:.0f}%) | {all_} |"
         for n, tps, pre, gb, all_ in rows]
open(sys.argv[1] + ".table", "w").write("\n".join(lines) + "\n")
PY
{
  echo "# Qwen2.5-VL-7B language model, greedy decoding on the CPU: k5 vs transformers \`generate\`"
  echo
  echo "Machine: $cpu, $(nproc) CPUs, $threads threads on both sides. Date: $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo "Load average (1/5/15 min) before the runs: $load_before; after: $load_after."
  echo "k5 build: \`$build\` (Release). PyTorch $(python3 -c 'import torch;print(torch.__version__)'), transformers $(python3 -c 'import transformers;print(transformers.__version__)')."
  echo
  echo "Command: \`bench/run_qwen_decode.sh $build $threads $layers $new $repeat $prompt\`"
  echo
  echo "## Setup"
  echo "- 7B shape (hidden 3584, intermediate 18944, 28 q / 4 kv heads, vocab 152064), **$layers of 28 layers**, random BF16"
  echo "  weights (\`bench/torch_qwen.py prepare\`), lm_head tied to the embedding table on both sides (the prepared file"
  echo "  has no lm_head.weight; PyTorch: \`Qwen2_5_VLForConditionalGeneration\` with tie_word_embeddings)."
  echo "- Prompt: the first $prompt ids of the prepared inputs; $new new tokens, greedy (do_sample false, no eos,"
  echo "  min_new_tokens = max_new_tokens on the PyTorch side)."
  echo "- Each process: one warm-up generate(1), then best of 2 of generate(1) (= prefill + one lm_head) and generate($new);"
  echo "  decode time per token = (generate($new) - generate(1)) / $(($new - 1)). Best of $repeat processes per side, interleaved."
  echo "- Bytes per decoded token: every projection weight of the $layers layers + lm_head read once"
  echo "  (BF16 $GB_BF16 GB; int8 $GB_INT8 GB incl. per-row scales; the KV cache and activations are < 2 MB)."
  echo "- Memory bandwidth: multi-threaded read-sum of a 1.5 GB buffer, $threads threads, best of 5, measured in each k5 run"
  echo "  (best over the runs: **$BW GB/s**; all: ${bw[*]})."
  echo
  echo "## Results ($layers layers, prompt $prompt, $new new tokens, $threads threads)"
  echo
  echo "| side | decode tokens/s (best) | per token | prefill (generate(1)) | weights streamed (of measured bandwidth) | all runs, tokens/s |"
  echo "|---|---|---|---|---|---|"
  cat "$out.table"
  echo
  echo "- Ratio torch decode time / k5 decode time: BF16 **$(py "$B/$T" .2f)**, int8 **$(py "$I/$T" .2f)** (target >= 1.5)."
  echo "- Prefill ratio torch / k5: BF16 $(py "$TP/$BP" .2f), int8 $(py "$TP/$IP" .2f)."
  echo "- Greedy ids equal to PyTorch's (last run): k5 bf16 $agree_bf16, k5 int8 $agree_int8."
  echo
  echo "## Where the time goes"
  echo
  echo "(written by hand after each run: load, perf profile, whether the target is met)"
} > "$out"
rm -f "$out.table"
cat "$out"
