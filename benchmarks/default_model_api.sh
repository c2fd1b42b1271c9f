#!/usr/bin/env bash
# What a user gets by default, before and after: bench_api on commit REV and on the working
# tree, interleaved, each tree training its OWN default model (`zmot train` of that tree), so a
# change of the default model (e.g. the hybrid tables) is measured with its serving cost.
# Needs the test stack (`make install`; starts it with `zmot infra up`). Prints; writes nothing.
#   bash benchmarks/default_model_api.sh REV [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bash benchmarks/default_model_api.sh REV [ROUNDS]}
rounds=${2:-3}
here=$PWD
export ZMOT_STATE_DIR=$here/.zmot/test ZMOT_KAFKA_BOOTSTRAP=127.0.0.1:19092 \
  ZMOT_REDIS_URL=redis://127.0.0.1:16379/0 ZMOT_API_PORT=18000 ZMOT_WORKER_WEB_PORT=16066
before=$here/.zmot/before-$(git rev-parse --short "$rev")
[ -d "$before" ] || git worktree add --detach "$before" "$rev" >/dev/null
ln -sfn "$here/.venv" "$before/.venv"
trap 'git worktree remove --force "$before" >/dev/null 2>&1 || true' EXIT
.venv/bin/zmot infra up
for r in $(seq "$rounds"); do
  for side in before after; do
    tree=$here
    [ "$side" = before ] && tree=$before
    echo "=== $side round $r $(date -u +%H:%M:%S)"
    (cd "$tree" && PYTHONPATH=$tree "$here/.venv/bin/python" benchmarks/bench_api.py --no-write \
      2>&1 | grep -E '^\||healthz|reached')
  done
done
