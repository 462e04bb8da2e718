#!/usr/bin/env bash
# End-to-end test of the three-SCM, three-OM compose cluster (run by tests/e2e/compose.rs
# wherever a Docker Engine answers; runnable by hand after compose/build.sh):
#   1. `up -d --scale datanode=3`: every service turns healthy and the three OMs elect a leader;
#   2. the aws CLI writes objects and reads them back;
#   3. the OM leader's container is killed: another OM leads, writes succeed again and every
#      object reads back; the killed OM is started again and rejoins as a follower;
#   4. the same for the SCM leader: another SCM leads, new objects (new blocks) are written and
#      every object reads back; the killed SCM is started again and rejoins;
#   5. teardown: containers, network and volumes are removed, also when a step fails.
# Environment as compose/ozone/test.sh: OZONE_IMAGE, COMPOSE_PROJECT_NAME, OZONE_S3G_PORT,
# OZONE_S3G_WEBADMIN_PORT, OZONE_COMPOSE, AWS.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=../compose-tool.sh
source ../compose-tool.sh

export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-ozonehatest$$}"
export OZONE_IMAGE="${OZONE_IMAGE:-ozone-rs:latest}"
export OZONE_S3G_PORT="${OZONE_S3G_PORT:-9878}"
export OZONE_S3G_WEBADMIN_PORT="${OZONE_S3G_WEBADMIN_PORT:-19878}"
AWS="${AWS:-aws}"
export AWS_ACCESS_KEY_ID=composetest AWS_SECRET_ACCESS_KEY=anything AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_CA_BUNDLE
ENDPOINT="http://127.0.0.1:${OZONE_S3G_PORT##*:}"
# The S3 port as published: OZONE_S3G_PORT may leave the host port to Docker ("127.0.0.1:"
# publishes on a port the engine picks, which no other test can take meanwhile), so it is read
# back after every `up`.
resolve_endpoint() {
  local published
  published="$(compose port s3g 9878)" || fail "s3g publishes no port for 9878"
  ENDPOINT="http://127.0.0.1:${published##*:}"
  log "S3 on $ENDPOINT"
}
START=$SECONDS
log() { printf '[compose-ha test %4ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() { log "FAILED: $*"; exit 1; }

work="$(mktemp -d)"
teardown() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    compose ps || true
    compose logs --no-color --tail=40 || true
  fi
  log "teardown: removing containers, network and volumes of $COMPOSE_PROJECT_NAME"
  compose kill >/dev/null 2>&1 || true
  compose down -v --remove-orphans -t 1 >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

s3() { "$AWS" --endpoint-url "$ENDPOINT" --cli-read-timeout 120 "$@"; }

# Waits until every running container of the project is healthy and 3 datanodes run.
wait_healthy() {
  local deadline=$((SECONDS + 180)) all ok dn
  while :; do
    ok=1; dn=0
    for id in $(compose ps -q); do
      all="$(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")"
      case "$all" in
        *" running healthy") case "$all" in *datanode*) dn=$((dn + 1)) ;; esac ;;
        *" exited"*) ;;
        *) ok=0 ;;
      esac
    done
    [ "$ok" = 1 ] && [ "$dn" -ge 3 ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || fail "services not healthy in time"
    sleep 2
  done
}

# The leader of role $1's service (om, scm) as container $2 sees it.
leader() {
  compose exec -T "$2" ozone admin "$1" roles --json 2>/dev/null |
    tr -d ' \n' | grep -o "\"leader\":\"$1[0-9]\"" | grep -o "$1[0-9]" | sed -n 1p
}

log "up -d --scale datanode=3"
compose up -d --scale datanode=3 >/dev/null
wait_healthy
resolve_endpoint
log "healthy"

s3 s3 mb s3://ha-bucket >/dev/null
for i in 1 2 3; do head -c $((i * 3000000)) /dev/urandom > "$work/o$i"; s3 s3 cp --only-show-errors "$work/o$i" "s3://ha-bucket/o$i"; done
log "3 objects written"

lead=""
for _ in $(seq 1 30); do lead="$(leader om om1 || true)"; [ -n "$lead" ] && break; sleep 1; done
[ -n "$lead" ] || fail "no OM leader reported by om roles"
log "OM leader is $lead; killing it"
compose kill "$lead" >/dev/null
t0=$SECONDS
until s3 s3 cp --only-show-errors "$work/o1" s3://ha-bucket/after-failover 2>/dev/null; do
  [ $((SECONDS - t0)) -lt 60 ] || fail "no write succeeded within 60 s of the leader's loss"
  sleep 1
done
log "writes succeed again $((SECONDS - t0)) s after the leader was killed"
for i in 1 2 3; do
  s3 s3 cp --only-show-errors "s3://ha-bucket/o$i" "$work/back$i"
  cmp -s "$work/o$i" "$work/back$i" || fail "o$i differs after failover"
done
other=om1; [ "$lead" = om1 ] && other=om2
new="$(leader om "$other" || true)"
[ -n "$new" ] && [ "$new" != "$lead" ] || fail "no new leader (got '$new')"
log "new leader $new; every object reads back; restarting $lead"
compose start "$lead" >/dev/null
wait_healthy
s3 s3 cp --only-show-errors "$work/o2" s3://ha-bucket/after-rejoin

slead=""
for _ in $(seq 1 30); do slead="$(leader scm scm1 || true)"; [ -n "$slead" ] && break; sleep 1; done
[ -n "$slead" ] || fail "no SCM leader reported by scm roles"
log "SCM leader is $slead; killing it during writes"
# Uploads running across the kill: each one the CLI acknowledges must read back.
: > "$work/during.ok"
(
  for i in $(seq 1 20); do
    if s3 s3 cp --only-show-errors "$work/o1" "s3://ha-bucket/during-scm-kill-$i" 2>/dev/null; then
      echo "$i" >> "$work/during.ok"
    fi
  done
) &
writer=$!
sleep 1
compose kill "$slead" >/dev/null
t0=$SECONDS
# A new object needs new blocks: SCM allocates them.
until s3 s3 cp --only-show-errors "$work/o3" s3://ha-bucket/after-scm-failover 2>/dev/null; do
  [ $((SECONDS - t0)) -lt 90 ] || fail "no write succeeded within 90 s of the SCM leader's loss"
  sleep 1
done
log "writes succeed again $((SECONDS - t0)) s after the SCM leader was killed"
wait "$writer" || true
acked=$(wc -l < "$work/during.ok")
[ "$acked" -gt 0 ] || fail "no upload running across the SCM leader's loss was acknowledged"
for i in $(cat "$work/during.ok"); do
  s3 s3 cp --only-show-errors "s3://ha-bucket/during-scm-kill-$i" "$work/during"
  cmp -s "$work/o1" "$work/during" || fail "during-scm-kill-$i was acknowledged but differs"
done
log "$acked of 20 uploads running across the kill were acknowledged; all read back"
for i in 1 2 3; do
  s3 s3 cp --only-show-errors "s3://ha-bucket/o$i" "$work/back$i"
  cmp -s "$work/o$i" "$work/back$i" || fail "o$i differs after the SCM failover"
done
other=scm1; [ "$slead" = scm1 ] && other=scm2
new="$(leader scm "$other" || true)"
[ -n "$new" ] && [ "$new" != "$slead" ] || fail "no new SCM leader (got '$new')"
log "new SCM leader $new; every object reads back; restarting $slead"
compose start "$slead" >/dev/null
wait_healthy
s3 s3 cp --only-show-errors "$work/o1" s3://ha-bucket/after-scm-rejoin
log "PASSED"
