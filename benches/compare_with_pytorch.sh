#!/usr/bin/env bash
# Training steps of the reference net, images/s: tpipe-ml's native path (the default) and flex
# against PyTorch itself, alternating so that background load hits all alike.
#
#   benches/compare_with_pytorch.sh [ROUNDS] [STEPS] [FROZEN]
#
# FROZEN (default 0: the full step) freezes layers 1..N on both sides, e.g. 5 for the paper's
# AnB at n = 5 (tpipe-ml runs the frozen layers every step here, as PyTorch does: no feature
# cache). Needs a Python environment with torch (TORCH_PYTHON, default the CI's virtualenv).
# WITH_TORCH=1 also measures tpipe-ml on LibTorch, which needs tpipe-ml built against that
# environment (LIBTORCH_USE_PYTORCH=1 with it active); see README "Performance".
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
steps=${2:-40}
frozen=${3:-0}
python=${TORCH_PYTHON:-/var/cache/tpipe-ci/torch-venv/bin/python}
features=()
[[ ${WITH_TORCH:-0} == 1 ]] && features=(--features torch)

bench=$(cargo bench -p tpipe-ml "${features[@]}" --bench throughput --no-run 2>&1 |
  sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq "$rounds"); do
  "$bench" --cpu-only --frozen "$frozen" --steps "$steps" |
    awk '($1 == "native" || $1 == "flex" || $1 == "torch") && $3 == "images" { print "tpipe-ml on " $1 "\t" $4 }' >>"$results"
  "$python" benches/pytorch_reference.py --rounds 1 --steps "$steps" --frozen "$frozen" 2>/dev/null |
    awk '/^torch/ { sub(",", "", $2); version = $2 } /^round/ { print "PyTorch " version "\t" $3 }' >>"$results"
done
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; frozen layers: $frozen"
sort -t$'\t' -k1,1 -k2,2n "$results" | awk -f benches/min_median_max.awk | sort
