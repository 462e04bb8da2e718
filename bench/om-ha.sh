#!/usr/bin/env bash
# Benchmark: OM metadata operations per second, for 1 OM and for 3 OMs (HA, raft).
# Starts a local cluster from the release binary for each OM count and runs
# `ozone freon s3bench` with 0-byte objects, 64 concurrent: each PUT is two OM writes
# (OpenKey + CommitKey) and no data; each GET one OM read (LookupKey).
# Usage: bench/om-ha.sh [objects]   (after `cargo build --release --bin ozone`)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
COUNT=${1:-5000}
run() {
  local oms=$1 dir
  dir=$(mktemp -d /tmp/ozone-bench-om-XXXXXX)
  start_cluster "$dir" --oms "$oms"
  echo "== $oms OM(s), $(nproc) cores, $COUNT 0-byte objects, 64 concurrent"
  "$BIN" freon s3bench -e "$EP" --count 0 --small-size 0 --small-count "$COUNT" --small-concurrency 64 \
    | sed -n 's/^\(PUT\|GET\) 0 B x [0-9]* (64 concurrent): [0-9.]* MiB\/s, \(.*\)/\1 \2/p'
  OZONE_CONF_DIR="$dir/conf" "$BIN" admin om roles || true
  stop_cluster "$dir"
}
run 1
run 3
