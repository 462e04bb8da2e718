#!/usr/bin/env bash
# Benchmark: starts a local cluster from the release binary, runs `ozone freon s3bench`
# (64 MiB objects x4 concurrent, 4 KiB objects x32 concurrent), then streams one 2 GiB object up
# and down first (fresh gateway) and prints the S3 gateway's peak RSS during that transfer.
# Usage: bench/s3g-rss.sh   (after `cargo build --release --bin ozone`)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${OZONE_BIN:-target/release/ozone}
DIR=$(mktemp -d /tmp/ozone-bench-XXXXXX)
UP=
cleanup() {
  [ -n "$UP" ] && kill "$UP" 2>/dev/null && wait "$UP" 2>/dev/null || true
  for p in "$DIR"/*/pid; do [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
"$BIN" cluster up --data-dir "$DIR" --s3g-port 0 >"$DIR/up.out" 2>"$DIR/up.err" &
UP=$!
for _ in $(seq 1 240); do
  grep -q '^S3 endpoint:' "$DIR/up.out" 2>/dev/null && break
  sleep 0.5
done
EP=$(sed -n 's/^S3 endpoint: //p' "$DIR/up.out")
[ -n "$EP" ] || { echo "cluster did not start"; cat "$DIR/up.err"; exit 1; }
echo "cluster at $EP ($(nproc) cores)"
S3G=$(cat "$DIR/s3g/pid")
rss() { awk -v k="$1" '$1 == k":" {printf "%.1f MiB", $2/1024}' "/proc/$S3G/status"; }
echo "s3g RSS at start: $(rss VmRSS)"
"$BIN" freon s3bench -e "$EP" --size 2GB --count 1 --concurrency 1 --small-count 0
echo "s3g peak RSS during the 2 GiB PUT+GET: $(rss VmHWM)"
"$BIN" freon s3bench -e "$EP"
echo "s3g peak RSS after the whole benchmark: $(rss VmHWM)"
