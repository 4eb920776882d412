#!/usr/bin/env bash
# What keeping the models loaded saves `k5 serve`: two jobs in a row (other prompts, the same default negative
# prompt), with `--keep-models off` (each job loads every model and encodes both prompts) and `--keep-models auto`,
# on the full-size random-weight Video Lite T2V folder of `k5 create-demo-model --full-size` (written to MODEL_DIR
# when missing, ~21 GB). The jobs are short on purpose (one 512x512 frame, one step, guidance, no prompt
# expansion) so that loading is a visible share of them.
#
#   bench/run_keep_models.sh [BUILD_DIR] [MODEL_DIR] [THREADS] [SERVE OPTIONS...]   (default build /tmp/k5-full 2)
#   e.g. bench/run_keep_models.sh build /tmp/k5-full 2 --weights-int8 all
# Prints one line per job: the policy, the job's seconds, and the models loaded after it (GET /v1/model).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}; model=${2:-/tmp/k5-full}; threads=${3:-2}; shift $(($# < 3 ? $# : 3))
[ -d "$model/configs" ] || "$build/k5" create-demo-model --output "$model" --full-size
job() { echo "{\"prompt\": \"a red fox in the snow, take $1\", \"width\": 512, \"height\": 512, \"frames\": 1,
              \"steps\": 1, \"seed\": 1, \"rng\": \"cpu\", \"expand_prompt\": false}"; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for keep in off auto; do
  "$build/k5" serve -m "$model" --port 0 -t "$threads" --keep-models "$keep" "$@" 2> "$log" &
  server=$!
  port=
  for _ in $(seq 600); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$log"; kill "$server"; exit 1; }
  for n in 1 2; do
    id=$(curl -sf "localhost:$port/v1/generations" -d "$(job "$n")" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    while :; do
      state=$(curl -sf "localhost:$port/v1/generations/$id")
      status=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["status"])' "$state")
      [ "$status" = queued ] || [ "$status" = running ] || break
      sleep 1
    done
    [ "$status" = succeeded ] || { echo "job failed: $state"; kill "$server"; exit 1; }
    loaded=$(curl -sf "localhost:$port/v1/model" | python3 -c \
      'import json,sys; print(", ".join("%s %.2f GiB" % (m["component"], m["bytes"] / 2**30) for m in json.load(sys.stdin)["loaded"]) or "none")')
    seconds=$(python3 -c 'import json,sys; print("%.1f" % json.loads(sys.argv[1])["seconds"])' "$state")
    echo "keep-models $keep job $n: $seconds s; loaded after it: $loaded"
  done
  kill "$server"
  wait "$server" || true
done
