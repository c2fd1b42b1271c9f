#!/usr/bin/env bash
# `zmot import`, `zmot train` and `zmot evaluate` with defaults on a scaled-up clickstream
# (benchmarks/scale_data.py), each timed by /usr/bin/time -v: wall time, peak RSS, artifact
# size. Figures go by hand to BENCHMARKS.md, "Offline at scale".
#   bash benchmarks/offline_scale.sh EVENTS ITEMS OUT_DIR [no-eval]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:?events}
items=${2:?catalog items}
out=${3:?out dir}
zmot=.venv/bin/zmot
mkdir -p "$out"
timed() { # timed NAME CMD...: run CMD, keep its stderr and time -v's report in OUT/NAME.log
  local name=$1
  shift
  /usr/bin/time -v -o "$out/$name.time" "$@" 2> "$out/$name.log"
  printf '%-9s wall %s, peak RSS %s MB\n' "$name" \
    "$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$out/$name.time")" \
    "$(($(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/$name.time") / 1024))"
}
.venv/bin/python benchmarks/scale_data.py --events "$events" --items "$items" --out "$out/raw.csv"
timed import "$zmot" import --format taobao "$out/raw.csv" --out "$out" --no-progress > "$out/import.txt"
cat "$out/import.txt"
timed train "$zmot" train --catalog "$out/catalog.jsonl" --events "$out/events.jsonl" \
  --out "$out/model" > "$out/train.txt"
cat "$out/train.txt"
du -sh "$out/model"
if [ "${4:-}" != no-eval ]; then
  timed evaluate "$zmot" evaluate --events "$out/events.jsonl" --catalog "$out/catalog.jsonl" \
    --split-ratio 0.8 --k 10,20 --json > "$out/metrics.json"
  .venv/bin/python -c "import json,sys; d=json.load(open(sys.argv[1])); m=d['methods']; \
print(d['n_predictions'], 'predictions of', d['n_users'], 'users;', \
', '.join(f'{k} {v[\"hr@10\"]:.3f}/{v[\"mrr@10\"]:.3f}' for k, v in m.items()))" "$out/metrics.json"
fi
