#!/usr/bin/env bash
# The Slurm executor against the local executor, on a one-node Slurm this script starts (as
# root; tests/slurm/cluster.sh). Prints, for each case, the wall time and the executor's own
# figures (jobs submitted, squeue calls):
#   - overhead: N trivial nodes that each go to Slurm (submission to record, per node);
#   - pipelines/quick.yaml through Slurm and locally, from an empty cache;
#   - the same pipeline again, fully cached (nothing submitted, no squeue call).
#
#   benches/slurm.sh [N] [pipeline]      # defaults: 40 pipelines/quick.yaml
#
# Uses target/release/tpipe (cargo build --release first).
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-40}
pipeline=${2:-pipelines/quick.yaml}
tpipe=$PWD/target/release/tpipe
cluster_script=$PWD/tests/slurm/cluster.sh   # absolute: the cases below change folder
work=$(mktemp -d /tmp/tpipe-slurm-bench.XXXXXX)
cluster="$work/cluster"
env=$("$cluster_script" start "$cluster")
eval "$env"
trap '"$cluster_script" stop "$cluster" >/dev/null 2>&1; rm -rf "$work"' EXIT

# Poll as fast as a small cluster answers; the defaults (2 s up to 60 s) suit a busy one.
config='[executor.slurm]
poll_min_seconds = 0.2
poll_max_seconds = 2
'

project() {
  local dir="$work/$1"
  mkdir -p "$dir"
  printf '%s' "$config" >"$dir/tpipe.toml"
  echo "$dir"
}

timed() { # label, command...
  local started ended
  started=$(date +%s.%N)
  "${@:2}" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  ended=$(date +%s.%N)
  printf '%-44s %8.2f s   %s\n' "$1" "$(awk "BEGIN { print $ended - $started }")" \
    "$(grep '^slurm:' "$work/err" | head -1 | sed 's/^slurm: //')"
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; Slurm: $(sbatch --version)"

dir=$(project overhead)
{
  echo "nodes:"
  echo "  \"n{i}\": { kind: number, matrix: { i: 100..=$((99 + nodes)) }, value: \"{i}\", resources: { local: false } }"
} >"$dir/pipeline.yaml"
cd "$dir"
timed "$nodes trivial nodes through Slurm" env TPIPE_TEST_KINDS=1 "$tpipe" run pipeline.yaml --executor slurm
timed "$nodes trivial nodes, local" env TPIPE_TEST_KINDS=1 "$tpipe" run pipeline.yaml --cache local-cache
cd - >/dev/null

for executor in slurm local; do
  dir=$(project "grid-$executor")
  sed 's#publish: results/#publish: published/#' "$pipeline" >"$dir/pipeline.yaml"
  cd "$dir"
  timed "$pipeline, $executor, empty cache" "$tpipe" run pipeline.yaml --executor "$executor"
  timed "$pipeline, $executor, fully cached" "$tpipe" run pipeline.yaml --executor "$executor"
  cd - >/dev/null
done
