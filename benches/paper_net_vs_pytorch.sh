#!/usr/bin/env bash
# One base net of pipelines/paper.yaml (benches/paper-base.yaml), tpipe's default build against
# plain PyTorch (benches/paper_net_pytorch.py) on the same data, net and solver: one training
# alone, then two side by side; rounds alternate so that background load hits all alike.
#
#   benches/paper_net_vs_pytorch.sh [ROUNDS]
#
# Figures are training images per second of the training loop (tpipe: the record's
# `images_per_second`; PyTorch: the script's), min / median / max over the rounds. Alone, PyTorch
# runs with all cores; side by side, each process gets one thread (PyTorch's best setting here)
# and tpipe runs both nets in one `tpipe run` with its defaults. Needs a built tpipe (TPIPE,
# default target/release/tpipe), Fashion-MNIST (apt-get install dataset-fashion-mnist) and a
# Python with torch (TORCH_PYTHON, default the CI's virtualenv).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
python=${TORCH_PYTHON:-/var/cache/tpipe-ci/torch-venv/bin/python}
tpipe=${TPIPE:-target/release/tpipe}
cache=$(mktemp -d)
results=$(mktemp)
trap 'rm -rf "$cache" "$results"' EXIT

"$tpipe" run benches/paper-base.yaml --cache "$cache" --target split_similar_s0 >/dev/null 2>&1
rate() {
  "$tpipe" show benches/paper-base.yaml "$1" --cache "$cache" --json |
    python3 -c 'import json, sys; print(round(json.load(sys.stdin)["metrics"]["images_per_second"], 1))'
}
pytorch_rate() { awk '{ print $4 }'; }

for round in $(seq "$rounds"); do
  "$tpipe" run benches/paper-base.yaml --cache "$cache" --target baseA_s0 --force baseA_s0 >/dev/null 2>&1
  printf 'tpipe, one net alone\t%s\n' "$(rate baseA_s0)" >>"$results"
  printf 'PyTorch, one net alone\t%s\n' \
    "$("$python" benches/paper_net_pytorch.py 2>/dev/null | pytorch_rate)" >>"$results"
  "$tpipe" run benches/paper-base.yaml --cache "$cache" --force baseA_s0 --force baseB_s0 >/dev/null 2>&1
  for node in baseA_s0 baseB_s0; do
    printf 'tpipe, two side by side (each)\t%s\n' "$(rate "$node")" >>"$results"
  done
  for seed in 0 1; do
    "$python" benches/paper_net_pytorch.py --threads 1 --seed "$seed" 2>/dev/null |
      pytorch_rate | sed 's/^/PyTorch, two side by side (each)\t/' >>"$results" &
  done
  wait
done

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $("$python" -c 'import torch; print("PyTorch", torch.__version__)' 2>/dev/null)"
sort -t$'\t' -k1,1 -k2,2n "$results" | awk -f benches/min_median_max.awk | sort
