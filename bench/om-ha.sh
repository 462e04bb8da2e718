#!/usr/bin/env bash
# Benchmark: OM metadata operations per second, for 1 OM and for 3 OMs (HA, raft).
# Starts a local cluster from the release binary for each OM count and runs
# `ozone freon s3bench` with 0-byte objects, 64 concurrent: each PUT is two OM writes
# (OpenKey + CommitKey) and no data; each GET one OM read (LookupKey).
# Usage: bench/om-ha.sh [objects]   (after `cargo build --release --bin ozone`)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${OZONE_BIN:-target/release/ozone}
COUNT=${1:-5000}
run() {
  local oms=$1 dir up ep
  dir=$(mktemp -d /tmp/ozone-bench-om-XXXXXX)
  "$BIN" cluster up --data-dir "$dir" --s3g-port 0 --oms "$oms" >"$dir/up.out" 2>"$dir/up.err" &
  up=$!
  for _ in $(seq 1 240); do
    grep -q '^S3 endpoint:' "$dir/up.out" 2>/dev/null && break
    sleep 0.5
  done
  ep=$(sed -n 's/^S3 endpoint: //p' "$dir/up.out")
  if [ -z "$ep" ]; then echo "cluster did not start"; cat "$dir/up.err"; kill "$up"; exit 1; fi
  echo "== $oms OM(s), $(nproc) cores, $COUNT 0-byte objects, 64 concurrent"
  "$BIN" freon s3bench -e "$ep" --count 0 --small-size 0 --small-count "$COUNT" --small-concurrency 64 \
    | sed -n 's/^\(PUT\|GET\) 0 B x [0-9]* (64 concurrent): [0-9.]* MiB\/s, \(.*\)/\1 \2/p'
  OZONE_CONF_DIR="$dir/conf" "$BIN" admin om roles || true
  kill "$up" 2>/dev/null && wait "$up" 2>/dev/null || true
  for p in "$dir"/*/pid; do [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null || true; done
  rm -rf "$dir"
}
run 1
run 3
