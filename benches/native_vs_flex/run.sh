#!/usr/bin/env bash
# Are nets trained on the native CPU path worse (or better) than flex's? Paired over nets: the
# same pipeline, seeds and data on both backends, then native − flex in held-out top-1 and in
# training accuracy, per net (issue 25's experiment; its figures are in the README, "Is the
# native path right?").
#
#   benches/native_vs_flex/run.sh [SEEDS] [BATCHES]    # defaults: 50 and "16 15"
#
# The task: an image folder of Fashion-MNIST PNGs (60 per class, written by make_images.py from
# the Debian package) read at 32×32×3, so the colour path, crop and flip run too; the
# 8-16-16-16-16 / 64-64 net, 12 epochs; SEEDS random splits × tasks A and B = 2·SEEDS nets per
# backend and batch size. Batch 16 leaves a last batch of one image each epoch, batch 15 none.
# 50 seeds took 8-9 minutes on 2 cores (4 × 100 trainings; Intel Xeon, 2026-12-05). Needs a
# built tpipe (TPIPE, default target/release/tpipe) and a Python with SciPy (PYTHON, default
# the virtualenv .ci/run makes, after `pip install scipy` in it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seeds=${1:-50}
batches=${2:-16 15}
tpipe=$(realpath "${TPIPE:-$here/../../target/release/tpipe}")
python=${PYTHON:-/var/cache/tpipe-ci/torch-venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
python3 "$here/make_images.py" data/images
for batch in $batches; do
  sed -e "s/@BATCH@/$batch/" -e "s/@LAST_SEED@/$((seeds - 1))/" "$here/pipeline.yaml" > "batch$batch.yaml"
  for backend in native flex; do
    "$tpipe" run "batch$batch.yaml" --cache "cache-$batch-$backend" --backend "$backend" >/dev/null
  done
done
TPIPE="$tpipe" "$python" "$here/paired.py" "$seeds" $batches
