#!/usr/bin/env bash
# Before/after in one session: runs bench_stream and bench_api on an older commit and on the
# working tree, interleaved (before, after, before, after ...), with one venv, one broker, one
# Redis and one model, so the figures differ by the code alone. Prints; writes nothing.
# --own-models: bench_api only, each tree training its OWN default model (`zmot train` of that
# tree), so a change of the default model (e.g. the hybrid tables) is measured with its cost.
#   bash benchmarks/before_after.sh [--own-models] REV [ROUNDS]
#   (needs `make install`; starts the test stack and stops it again if it was not running)
set -euo pipefail
cd "$(dirname "$0")/.."
own_models=0
if [ "${1:-}" = --own-models ]; then
  own_models=1
  shift
fi
rev=${1:?usage: bash benchmarks/before_after.sh [--own-models] REV [ROUNDS]}
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
if [ "$own_models" = 1 ]; then
  api_args=(--no-write)  # bench_api makes a demo shop and trains that tree's default model
elif [ ! -f "$model/model/meta.json" ]; then
  .venv/bin/zmot demo-data --out "$model/data" --users 2000 --seed 1 >/dev/null
  .venv/bin/zmot train --events "$model/data/events.jsonl" --catalog "$model/data/catalog.jsonl" \
    --out "$model/model"
fi
if [ "$own_models" = 0 ]; then
  api_args=(--model-dir "$model/model" --catalog "$model/data/catalog.jsonl"
    --offers "$model/data/offers.jsonl" --no-write)
fi

run() {  # label tree script args...
  local label=$1 tree=$2 script=$3
  shift 3
  echo "=== $label $script $(date -u +%H:%M:%S)"
  (cd "$tree" && PYTHONPATH=$tree "$py" "benchmarks/$script" "$@" 2>&1 | grep -E '^\||healthz:|reached')
}
for _ in $(seq "$rounds"); do
  if [ "$own_models" = 0 ]; then
    run before "$before" bench_stream.py --no-write
    run after "$here" bench_stream.py --no-write
  fi
  run before "$before" bench_api.py "${api_args[@]}"
  run after "$here" bench_api.py "${api_args[@]}"
done
