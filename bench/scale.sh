#!/usr/bin/env bash
# Benchmark: one cluster (default settings, 3 datanodes) loaded with many keys and objects.
#  1. `ozone freon omkg` writes KEYS empty keys into s3v/big (through OM only) and 1,000 into
#     s3v/thousand; `ozone freon list-probe` times listing pages in both buckets.
#  2. `ozone freon s3kg` writes OBJECTS objects of 4 KiB into s3v/small through the gateway.
# Then prints containers per datanode (replicas SCM knows), open files, VmRSS and VmHWM of every
# role.
# Usage: bench/scale.sh [keys] [objects]   (defaults 1000000 and 200000; after
#        `cargo build --release --bin ozone`; OZONE_BIN=path picks another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${OZONE_BIN:-target/release/ozone}
KEYS=${1:-1000000}
OBJECTS=${2:-200000}
DIR=$(mktemp -d /tmp/ozone-bench-scale-XXXXXX)
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
export OZONE_CONF_DIR="$DIR/conf"
echo "cluster at $EP ($(nproc) cores), $KEYS keys, $OBJECTS objects"

echo "== omkg: $KEYS empty keys in s3v/big"
"$BIN" freon omkg -n "$KEYS" -t 64 -p k -v s3v -b big
"$BIN" freon omkg -n 1000 -t 16 -p k -v s3v -b thousand >/dev/null
echo "== list-probe: 1,000 keys"
"$BIN" freon list-probe -e "$EP" -b thousand --samples 20
echo "== list-probe: $KEYS keys"
"$BIN" freon list-probe -e "$EP" -b big --samples 20

echo "== s3kg: $OBJECTS objects of 4 KiB in s3v/small"
"$BIN" freon s3kg -e "$EP" -n "$OBJECTS" -t 32 -s 4KB -p o -b small

echo "== after the load"
"$BIN" admin container list --all --json >"$DIR/containers.json"
python3 - "$DIR/containers.json" <<'EOF'
import collections, json, sys
cs = json.load(open(sys.argv[1]))
per_dn = collections.Counter()
for c in cs:
    for r in c["replicas"]:
        per_dn[r["datanode"]["uuid"]] += 1
print(f"containers: {len(cs)} in SCM; replicas per datanode: {sorted(per_dn.values())}")
EOF
for p in "$DIR"/*/pid; do
  role=$(basename "$(dirname "$p")")
  pid=$(cat "$p")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  rss=$(awk '$1 == "VmRSS:" {printf "%.0f", $2/1024}' "/proc/$pid/status")
  hwm=$(awk '$1 == "VmHWM:" {printf "%.0f", $2/1024}' "/proc/$pid/status")
  echo "$role: open files $fds, VmRSS $rss MiB, VmHWM $hwm MiB"
done
