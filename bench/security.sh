#!/usr/bin/env bash
# Benchmark: what security costs on S3 throughput. Security on means mutual TLS on every
# internal port (gateway -> OM, SCM, datanodes; datanode -> datanode; raft), SigV4 checked
# against OM's secrets on every request, and the block tokens datanodes check. Measures
# large objects (MiB/s, PUT then GET) and small objects (ops/s), security off versus on,
# alternating off, on, off, on in one run since the machine is shared and noisy.
# Usage: bench/security.sh [large-count] [small-count]   (after `compose/build.sh --binary-only`;
#        OZONE_BIN=path picks the binary; SIZE (64MB) and SMALL_SIZE (4KB) the object sizes)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
LARGE=${1:-16}
SMALL=${2:-3000}
SIZE=${SIZE:-64MB}
SMALL_SIZE=${SMALL_SIZE:-4KB}
run() {
  local security=$1 dir creds=()
  dir=$(mktemp -d /tmp/ozone-bench-sec-XXXXXX)
  start_cluster "$dir" --set ozone.security.enabled="$security"
  if [ "$security" = true ]; then
    local out
    out=$(OZONE_CONF_DIR="$dir/conf" "$BIN" s3 getsecret -u bench)
    creds=(--access-key "$(sed -n 's/^awsAccessKey=//p' <<<"$out")"
      --secret "$(sed -n 's/^awsSecret=//p' <<<"$out")")
  fi
  echo "== security $security, $(nproc) cores: $LARGE x $SIZE (4 concurrent), $SMALL x $SMALL_SIZE (32 concurrent)"
  "$BIN" freon s3bench -e "$EP" "${creds[@]}" --size "$SIZE" --count "$LARGE" --concurrency 4 \
    --small-size "$SMALL_SIZE" --small-count "$SMALL" --small-concurrency 32 | grep -E '^(PUT|GET)' || true
  stop_cluster "$dir"
}
for _ in 1 2; do
  run false
  run true
done
