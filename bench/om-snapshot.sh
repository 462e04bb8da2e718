#!/usr/bin/env bash
# Benchmark: OM memory while a snapshot of N keys is built and sent to a follower.
# Starts a local cluster with 3 OMs (1 datanode) from the binary, stops one follower OM, writes
# N 0-byte keys (with `ozone freon omkg` when the binary has it, else 0-byte S3 PUTs from a
# small Python loop, 32 concurrent), with a low snapshot threshold and purge gap so the leader
# snapshots and purges its log; then starts the follower again: it is behind the leader's
# purged index, so the leader sends it its snapshot file. Prints the leader's VmHWM after the
# writes (every snapshot it built during them, the last one of about N keys, counts here), its
# peak VmRSS and the follower's while the follower catches up, the time that takes, and the
# snapshot file size.
# Usage: bench/om-snapshot.sh [keys]   (after `cargo build --release --bin ozone`;
#        OZONE_BIN=path picks another binary; LIST_PROBE=1 then times listing pages of the
#        bucket against one of 1,000 keys, with `ozone freon list-probe`)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${OZONE_BIN:-target/release/ozone}
N=${1:-100000}
THRESHOLD=${SNAPSHOT_THRESHOLD:-2000}
GAP=${PURGE_GAP:-100}
dir=$(mktemp -d /tmp/ozone-bench-snap-XXXXXX)
up=""
follower=""
cleanup() {
  [ -n "$follower" ] && kill "$follower" 2>/dev/null || true
  [ -n "$up" ] && kill "$up" 2>/dev/null && wait "$up" 2>/dev/null || true
  for p in "$dir"/*/pid; do [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null || true; done
  [ -n "$follower" ] && kill -9 "$follower" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$BIN" cluster up --data-dir "$dir" --s3g-port 0 --oms 3 --datanodes 1 \
  --set ozone.om.ratis.snapshot.auto.trigger.threshold="$THRESHOLD" \
  --set ozone.om.ratis.log.purge.gap="$GAP" >"$dir/up.out" 2>"$dir/up.err" &
up=$!
for _ in $(seq 1 240); do
  grep -q '^S3 endpoint:' "$dir/up.out" 2>/dev/null && break
  sleep 0.5
done
ep=$(sed -n 's/^S3 endpoint: //p' "$dir/up.out")
if [ -z "$ep" ]; then echo "cluster did not start"; cat "$dir/up.err"; exit 1; fi
export OZONE_CONF_DIR="$dir/conf"

roles() { "$BIN" admin om roles --json; }
field() { roles | jq -r "$1"; }
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { echo $(( $1 / 1024 )); }

leader_id=$(field '[.[] | select(.role == "LEADER")][0].id')
follower_id=$(field "[.[] | select(.role != \"LEADER\")][0].id")
leader_dir="$dir/om-${leader_id#om}"
follower_dir="$dir/om-${follower_id#om}"
leader_pid=$(cat "$leader_dir/pid")
kill "$(cat "$follower_dir/pid")"
while kill -0 "$(cat "$follower_dir/pid")" 2>/dev/null; do sleep 0.2; done
echo "== $N keys of 0 B, $(nproc) cores; leader $leader_id, follower $follower_id stopped" \
  "(snapshot threshold $THRESHOLD entries, purge gap $GAP)"

start=$(date +%s.%N)
if "$BIN" freon omkg --help >/dev/null 2>&1; then
  how="ozone freon omkg -t 32"
  "$BIN" freon omkg -n "$N" -t 32 --volume s3v --bucket snapbench | tail -n 3
else
  how="S3 PUTs, 32 concurrent"
  python3 - "$ep" "$N" <<'EOF'
import http.client, sys, threading, urllib.parse
ep, n = urllib.parse.urlparse(sys.argv[1]), int(sys.argv[2])
def conn():
    return http.client.HTTPConnection(ep.hostname, ep.port, timeout=60)
c = conn()
c.request("PUT", "/snapbench", body=b"")
r = c.getresponse(); r.read()
if r.status not in (200, 409):
    sys.exit(f"creating bucket: {r.status}")
T = 32
errors = []
def worker(t):
    c = conn()
    for i in range(t, n, T):
        c.request("PUT", f"/snapbench/key-{i:09d}", body=b"")
        r = c.getresponse(); r.read()
        if r.status != 200:
            errors.append(r.status); return
threads = [threading.Thread(target=worker, args=(t,)) for t in range(T)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit(f"PUT failed: {errors[0]}")
EOF
fi
fill=$(echo "$(date +%s.%N) - $start" | bc)
printf 'wrote %d keys (%s) in %.1f s\n' "$N" "$how" "$fill"

# Wait for the leader to purge past what the follower holds.
for _ in $(seq 1 120); do
  purged=$(field "[.[] | select(.id == \"$leader_id\")][0].purged_index")
  [ "$purged" -gt 0 ] && break
  sleep 0.5
done
roles | jq -c '.[] | {id, role, applied_index, snapshot_index, purged_index}'
hwm_fill=$(kb "$leader_pid" VmHWM)
snap_file=$(ls -1 "$leader_dir"/data/snapshot/snapshot-*.bin | tail -n 1)
snap_bytes=$(stat -c %s "$snap_file")
echo "leader after the writes: VmRSS $(mib "$(kb "$leader_pid" VmRSS)") MiB, VmHWM $(mib "$hwm_fill") MiB; snapshot file $(( snap_bytes / 1048576 )) MiB"

target=$(field "[.[] | select(.id == \"$leader_id\")][0].applied_index")
OZONE_CONF_DIR="$follower_dir/conf" "$BIN" om >>"$follower_dir/om-restart.log" 2>&1 &
follower=$!
start=$(date +%s.%N)
peak_leader=0
peak_follower=0
caught=""
for _ in $(seq 1 6000); do
  r=$(kb "$leader_pid" VmRSS); [ "${r:-0}" -gt "$peak_leader" ] && peak_leader=$r
  r=$(kb "$follower" VmRSS); [ "${r:-0}" -gt "$peak_follower" ] && peak_follower=$r
  applied=$(field "[.[] | select(.id == \"$follower_id\")][0].applied_index // 0" 2>/dev/null || echo 0)
  if [ "${applied:-0}" -ge "$target" ]; then caught=1; break; fi
  sleep 0.1
done
took=$(echo "$(date +%s.%N) - $start" | bc)
roles | jq -c '.[] | {id, role, applied_index, snapshot_index, purged_index}'
if grep -q "snapshot installed" "$follower_dir/om-restart.log"; then how="by snapshot"; else how="by log (no snapshot installed)"; fi
[ -n "$caught" ] || how="NOT caught up"
printf 'follower caught up %s in %.1f s\n' "$how" "$took"
echo "leader during catch-up: peak VmRSS $(mib "$peak_leader") MiB, VmHWM $(mib "$(kb "$leader_pid" VmHWM)") MiB"
echo "follower during catch-up: peak VmRSS $(mib "$peak_follower") MiB, VmHWM $(mib "$(kb "$follower" VmHWM)") MiB"

if [ "${LIST_PROBE:-}" = 1 ]; then
  "$BIN" freon omkg -n 1000 -t 8 --volume s3v --bucket thousand | tail -n 1
  echo "== list-probe: 1,000 keys"
  "$BIN" freon list-probe -e "$ep" -b thousand --samples 20
  echo "== list-probe: $N keys"
  "$BIN" freon list-probe -e "$ep" -b snapbench --samples 20
fi
