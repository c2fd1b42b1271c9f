#!/usr/bin/env bash
# Reproduces the README's quality tables with DEFAULTS (no --config): imports each shared
# sample, evaluates on a time split 0.8 (both slices: every target and items new to the
# shopper), writes each report, and prints one markdown table per data set.
#   bash benchmarks/eval_defaults.sh [OUT_DIR]      (default .zmot/eval-defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.zmot/eval-defaults}
data=${ZMOT_SHARED_DATA:-../shared/data}
zmot=.venv/bin/zmot
for spec in taobao:taobao-userbehavior-10k.csv rees46:rees46-2019-oct-sample.csv \
  diginetica:diginetica-train-item-views-sample.csv; do
  fmt=${spec%%:*}
  dir=$out/$fmt
  mkdir -p "$dir"
  "$zmot" import --format "$fmt" "$data/${spec#*:}" --out "$dir" --no-progress > "$dir/import.log" 2>&1
  "$zmot" evaluate --events "$dir/events.jsonl" --catalog "$dir/catalog.jsonl" --split-ratio 0.8 \
    --k 10,20 --out "$dir/report" --json --dump-predictions "$dir/predictions.jsonl" \
    > "$dir/metrics.json" 2> "$dir/evaluate.log"
done
.venv/bin/python benchmarks/eval_table.py "$out"/*/report/metrics.json
# what a cap on the shopper's own items (placement max_seen) trades between any and new targets
for dir in "$out"/*/; do
  [ -f "$dir/predictions.jsonl" ] && .venv/bin/python benchmarks/new_frontier.py "$dir/predictions.jsonl"
done
