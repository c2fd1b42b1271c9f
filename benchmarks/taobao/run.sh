#!/usr/bin/env bash
# Reproduces the Taobao figures in the README: import the shared sample, evaluate with the
# tuned config (benchmarks/taobao/tuned.json, written by `zmot tune`), write the report.
#   bash benchmarks/taobao/run.sh [OUT_DIR]      (default .zmot/eval-taobao)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-.zmot/eval-taobao}
data=${ZMOT_SHARED_DATA:-../shared/data}
zmot=.venv/bin/zmot
"$zmot" import --format taobao "$data/taobao-userbehavior-10k.csv" --out "$out" --no-progress
"$zmot" evaluate --events "$out/events.jsonl" --split-ratio 0.8 --catalog "$out/catalog.jsonl" \
  --config benchmarks/taobao/tuned.json --k 10,20 --out "$out/report" --json > "$out/metrics.json"
echo "metrics: $out/metrics.json   report: $out/report/report.html"
