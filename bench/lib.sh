# Shared by the bench scripts: a local cluster from the release binary.
# start_cluster DIR [cluster up args...]: starts `ozone cluster up` in DIR, sets EP (S3 endpoint)
# and UP (its pid); stop_cluster DIR: stops it and removes DIR.
BIN=${OZONE_BIN:-target/release/ozone}
start_cluster() {
  local dir=$1; shift
  "$BIN" cluster up --data-dir "$dir" --s3g-port 0 "$@" >"$dir/up.out" 2>"$dir/up.err" &
  UP=$!
  for _ in $(seq 1 240); do
    grep -q '^S3 endpoint:' "$dir/up.out" 2>/dev/null && break
    sleep 0.5
  done
  EP=$(sed -n 's/^S3 endpoint: //p' "$dir/up.out")
  if [ -z "$EP" ]; then echo "cluster did not start"; cat "$dir/up.err"; kill "$UP"; exit 1; fi
}
stop_cluster() {
  local dir=$1
  kill "$UP" 2>/dev/null && wait "$UP" 2>/dev/null || true
  for p in "$dir"/*/pid; do [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null || true; done
  rm -rf "$dir"
}
