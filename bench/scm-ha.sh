#!/usr/bin/env bash
# Benchmark: block allocation throughput with 1 SCM and with 3 SCMs (HA, raft), as PUTs of
# small objects per second (each PUT allocates a block from the SCM leader), alternating
# 1, 3, 1, 3 in one run since the machine is shared and noisy.
# Usage: bench/scm-ha.sh [objects] [size]   (after `cargo build --release --bin ozone`)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
COUNT=${1:-5000}
SIZE=${2:-4096}
run() {
  local scms=$1 dir
  dir=$(mktemp -d /tmp/ozone-bench-scm-XXXXXX)
  start_cluster "$dir" --scms "$scms"
  echo "== $scms SCM(s), $(nproc) cores, $COUNT objects of $SIZE B, 64 concurrent"
  "$BIN" freon s3bench -e "$EP" --count 0 --small-size "$SIZE" --small-count "$COUNT" --small-concurrency 64 \
    | grep -E '^PUT' || true
  OZONE_CONF_DIR="$dir/conf" "$BIN" admin scm roles || true
  stop_cluster "$dir"
}
for round in 1 2; do
  run 1
  run 3
done
