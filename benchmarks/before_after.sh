#!/usr/bin/env bash
# Before/after in one session: runs bench_stream and bench_api on an older commit and on the
# working tree, interleaved (before, after, before, after ...), with one venv, one broker, one
# Redis and one model, so the figures differ by the code alone. Prints; writes nothing.
#   bash benchmarks/before_after.sh REV [ROUNDS]     (needs `make install`; starts the test stack)
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bash benchmarks/before_after.sh REV [ROUNDS]}
rounds=${2:-2}
here=$PWD
before=$here/.zmot/before-$(git rev-parse --short "$rev")
export ZMOT_STATE_DIR=$here/.zmot/test ZMOT_KAFKA_BOOTSTRAP=127.0.0.1:19092 \
  ZMOT_REDIS_URL=redis://127.0.0.1:16379/0 ZMOT_API_PORT=18000 ZMOT_WORKER_WEB_PORT=16066
py=$here/.venv/bin/python
[ -d "$before" ] || git worktree add --detach "$before" "$rev" >/dev/null
ln -sfn "$here/.venv" "$before/.venv"
# Stop at the end what this script started (a stack that was already up stays up).
was_up=$(.venv/bin/zmot infra status --json | "$py" -c \
  'import json, sys; print(int(all(s["running"] for s in json.load(sys.stdin).values())))')
cleanup() {
  git worktree remove --force "$before" >/dev/null 2>&1 || true
  [ "$was_up" = 1 ] || .venv/bin/zmot infra down
}
trap cleanup EXIT

.venv/bin/zmot infra up
model=$here/.zmot/before-after-model
if [ ! -f "$model/model/meta.json" ]; then
  .venv/bin/zmot demo-data --out "$model/data" --users 2000 --seed 1 >/dev/null
  .venv/bin/zmot train --events "$model/data/events.jsonl" --catalog "$model/data/catalog.jsonl" \
    --out "$model/model"
fi
api_args=(--model-dir "$model/model" --catalog "$model/data/catalog.jsonl"
  --offers "$model/data/offers.jsonl" --no-write)

run() {  # label tree script args...
  local label=$1 tree=$2 script=$3
  shift 3
  echo "=== $label $script $(date -u +%H:%M:%S)"
  (cd "$tree" && PYTHONPATH=$tree "$py" "benchmarks/$script" "$@" 2>&1 | grep -E '^\||healthz:|reached')
}
for _ in $(seq "$rounds"); do
  run before "$before" bench_stream.py --no-write
  run after "$here" bench_stream.py --no-write
  run before "$before" bench_api.py "${api_args[@]}"
  run after "$here" bench_api.py "${api_args[@]}"
done
