#!/usr/bin/env bash
# Full training steps of the reference net, images/s: tpipe-ml on flex and on LibTorch (the
# `torch` feature) against PyTorch itself, alternating so that background load hits all alike.
#
#   benches/compare_with_pytorch.sh [ROUNDS] [STEPS]
#
# Needs a Python environment with torch (TORCH_PYTHON, default: python3) and a tpipe-ml built
# against it (LIBTORCH_USE_PYTORCH=1 with that environment active); see README "Performance".
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
steps=${2:-40}
python=${TORCH_PYTHON:-python3}

cargo bench -p tpipe-ml --features torch --bench throughput --no-run 2>/dev/null
bench=$(cargo bench -p tpipe-ml --features torch --bench throughput --no-run 2>&1 \
  | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)

results=$(mktemp)
for round in $(seq "$rounds"); do
  "$bench" --cpu-only --frozen 0 --steps "$steps" \
    | awk '$1 == "flex" || $1 == "torch" { print "tpipe-ml on " $1 "\t" $4 }' >>"$results"
  "$python" benches/pytorch_reference.py --rounds 1 --steps "$steps" 2>/dev/null \
    | awk '/^torch/ { sub(",", "", $2); version = $2 } /^round/ { print "PyTorch " version "\t" $3 }' >>"$results"
done
# Every figure, then min / median / max per contender.
sort -t$'\t' -k1,1 -k2,2n "$results" | awk -F'\t' '
  { values[$1] = values[$1] " " $2; count[$1]++ }
  END {
    for (name in values) {
      n = split(substr(values[name], 2), v, " ")
      printf "%-36s min %7.1f  median %7.1f  max %7.1f img/s  (%d rounds: %s)\n",
        name, v[1], v[int((n + 1) / 2)], v[n], n, substr(values[name], 2)
    }
  }'
rm -f "$results"
