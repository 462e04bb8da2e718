#!/usr/bin/env bash
# End-to-end test of the compose cluster (run by the test suite, tests/e2e/compose.rs, wherever a
# Docker Engine answers; runnable by hand after compose/build.sh):
#
#   1. `up -d --scale datanode=3`: every service turns healthy, three datanodes register by their
#      container names, a pipeline of three forms;
#   2. the aws CLI writes objects (0 B to 40 MiB, multipart included), lists them and reads them back;
#   3. `down` then `up`: every object is still there (named volumes), the datanodes come back
#      with the same uuids;
#   4. one datanode container is killed (SIGKILL; `docker kill` on one container of the service,
#      as `docker compose kill datanode` would kill every replica): every object is still readable;
#   5. the lost container is removed and the service scaled to 4: the new datanodes register and
#      take new writes; every container is again on 3 healthy replicas once SCM re-replicates
#      (checked when SCM has a replication manager: `ozone admin replicationmanager status`
#      answers or /prom has replication_manager metrics, or OZONE_EXPECT_REREPLICATION=1;
#      before that the under-replicated containers are printed);
#   6. teardown: containers, network and volumes are removed, also when a step fails.
#
# Environment: OZONE_IMAGE (default ozone-rs:latest), COMPOSE_PROJECT_NAME (default
# ozonetest<pid>), OZONE_S3G_PORT / OZONE_S3G_WEBADMIN_PORT (host ports, default 9878/19878),
# OZONE_COMPOSE (the Docker Compose command, default `docker compose`, else `docker-compose`),
# AWS (the aws CLI, default `aws`), PYTHON (default python3), OZONE_TEST_KEEP=1 keeps the
# cluster when a step fails.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=../compose-tool.sh
source ../compose-tool.sh

export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-ozonetest$$}"
export OZONE_IMAGE="${OZONE_IMAGE:-ozone-rs:latest}"
export OZONE_S3G_PORT="${OZONE_S3G_PORT:-9878}"
export OZONE_S3G_WEBADMIN_PORT="${OZONE_S3G_WEBADMIN_PORT:-19878}"
AWS="${AWS:-aws}"
PYTHON="${PYTHON:-python3}"
export AWS_ACCESS_KEY_ID=composetest AWS_SECRET_ACCESS_KEY=anything AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
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
BUCKET=compose-test
START=$SECONDS

log() { printf '[compose test %4ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() {
  log "FAILED: $*"
  exit 1
}

work="$(mktemp -d)"
teardown() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    log "state at failure:"
    compose ps || true
    compose logs --no-color --tail=40 || true
  fi
  if [ "$rc" != 0 ] && [ "${OZONE_TEST_KEEP:-}" = 1 ]; then
    log "OZONE_TEST_KEEP=1: leaving project $COMPOSE_PROJECT_NAME up"
  else
    log "teardown: removing containers, network and volumes of $COMPOSE_PROJECT_NAME"
    compose kill >/dev/null 2>&1 || true
    compose down -v --remove-orphans -t 1 >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

s3() { "$AWS" --endpoint-url "$ENDPOINT" --cli-read-timeout 120 "$@"; }
admin() { compose exec -T scm ozone admin "$@"; }

# Waits until the running containers of every service are healthy and `datanode` has $1 of them.
wait_healthy() {
  local want_dn=$1 deadline=$((SECONDS + ${2:-180})) line bad dn
  while :; do
    bad=""
    dn=0
    for svc in scm om datanode s3g; do
      for id in $(compose ps -q "$svc"); do
        line="$(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")"
        case "$line" in
          *" running healthy") [ "$svc" = datanode ] && dn=$((dn + 1)) ;;
          *" exited "* | *" exited") [ "$svc" = datanode ] || bad="$bad ${line}" ;;
          *) bad="$bad ${line}" ;;
        esac
      done
    done
    if [ -z "$bad" ] && [ "$dn" = "$want_dn" ]; then
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail "services not healthy in time (healthy datanodes: $dn of $want_dn; not ready:$bad)"
    fi
    sleep 2
  done
}

# Prints a Python expression's value over a JSON document on stdin.
jq_py() { "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

healthy_datanodes() { admin datanode list --json | jq_py "sum(1 for n in d if n['health']=='HEALTHY')"; }
healthy_datanodes_are() { [ "$(healthy_datanodes)" = "$1" ]; }

# Retries a command until it succeeds (for settling states such as pipelines forming).
eventually() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what: not true within ${secs}s"
    sleep 2
  done
}

three_registered_by_name() {
  admin datanode list --json | jq_py "sum(1 for n in d if n['health']=='HEALTHY' and 'datanode' in n['datanode']['host'])" | grep -qx 3
}
pipeline_of_three() {
  admin pipeline list --json | jq_py "sum(1 for p in d if p['state']=='OPEN' and len(p['nodes'])==3)" | grep -qvx 0
}

# The objects: sizes from empty to multi-block multipart.
mkdir -p "$work/src" "$work/got"
keys=()
for spec in empty:0 small:1024 mib3:3145728 mib20:20971520 mib40:41943040; do
  key="objects/${spec%%:*}"
  head -c "${spec##*:}" /dev/urandom >"$work/src/${spec%%:*}"
  keys+=("$key")
done

read_all() {
  local what=$1
  for key in "${keys[@]}"; do
    name="${key##*/}"
    rm -f "$work/got/$name"
    s3 s3 cp --only-show-errors "s3://$BUCKET/$key" "$work/got/$name" || fail "$what: GET $key"
    cmp -s "$work/src/$name" "$work/got/$name" || fail "$what: $key differs from what was written"
  done
  log "$what: all ${#keys[@]} objects read back identical"
}

log "image $OZONE_IMAGE, project $COMPOSE_PROJECT_NAME"
docker image inspect "$OZONE_IMAGE" >/dev/null 2>&1 || fail "image $OZONE_IMAGE is missing: run compose/build.sh"

# 1. Up with three datanodes.
compose up -d --scale datanode=3
wait_healthy 3
resolve_endpoint
compose ps
eventually 60 "3 datanodes registered by container name" three_registered_by_name
eventually 60 "an open pipeline of 3 datanodes" pipeline_of_three
admin datanode list
admin pipeline list
uuids_before="$(admin datanode list --json | jq_py "' '.join(sorted(n['datanode']['uuid'] for n in d))")"
log "up: all services healthy, 3 datanodes registered by name, pipeline of 3 open"

# 2. aws CLI round trip.
s3 s3 mb "s3://$BUCKET"
for key in "${keys[@]}"; do
  s3 s3 cp --only-show-errors "$work/src/${key##*/}" "s3://$BUCKET/$key"
done
listed="$(s3 s3 ls "s3://$BUCKET/objects/" | wc -l)"
[ "$listed" = "${#keys[@]}" ] || fail "listing shows $listed objects, expected ${#keys[@]}"
read_all "round trip"

# 3. down, then up: the volumes keep every object.
compose down
compose up -d --scale datanode=3
wait_healthy 3
resolve_endpoint
eventually 60 "3 datanodes back by container name" three_registered_by_name
uuids_after="$(admin datanode list --json | jq_py "' '.join(sorted(n['datanode']['uuid'] for n in d))")"
[ "$uuids_before" = "$uuids_after" ] || fail "datanodes changed identity across down/up: $uuids_before -> $uuids_after"
read_all "after down/up"

# 4. Kill one datanode: every object stays readable.
# sed, not head: it reads all of the output, so compose never dies of SIGPIPE (pipefail).
victim="$(compose ps -q datanode | sed -n 1p)"
victim_name="$(docker inspect -f '{{.Name}}' "$victim" | sed 's,^/,,')"
docker kill "$victim" >/dev/null
log "killed datanode container $victim_name"
read_all "one datanode killed"

# 5. The lost datanode is gone for good; scale the service to 4.
docker rm "$victim" >/dev/null
compose up -d --no-recreate --scale datanode=4
wait_healthy 4
eventually 90 "4 healthy datanodes registered" healthy_datanodes_are 4
admin datanode list
log "scaled to 4: $(healthy_datanodes) healthy datanodes registered"
eventually 90 "an open pipeline of 3 healthy datanodes after the loss" pipeline_of_three
head -c 5242880 /dev/urandom >"$work/src/after-scale"
keys+=("objects/after-scale")
s3 s3 cp --only-show-errors "$work/src/after-scale" "s3://$BUCKET/objects/after-scale"
read_all "scaled to 4"

# Replication: every replicated container on 3 replicas of healthy datanodes.
under_replicated() {
  local healthy
  healthy="$(admin datanode list --json | jq_py "' '.join(n['datanode']['uuid'] for n in d if n['health']=='HEALTHY')")"
  admin container list --all --json | HEALTHY="$healthy" "$PYTHON" -c "
import json, os, sys
healthy = set(os.environ['HEALTHY'].split())
short = [c['id'] for c in json.load(sys.stdin)
         if c['replication'] == 3
         and sum(1 for r in c['replicas'] if r['datanode']['uuid'] in healthy and r['state'] != 'UNHEALTHY') < 3]
print(' '.join(map(str, short)))"
}
# SCM re-replicates once it has a replication manager (issue 4): it answers
# `ozone admin replicationmanager status` (Ozone's command) or shows replication_manager
# metrics on /prom. OZONE_EXPECT_REREPLICATION=1 demands it regardless.
has_replication_manager() {
  [ "${OZONE_EXPECT_REREPLICATION:-}" = 1 ] ||
    admin replicationmanager status >/dev/null 2>&1 ||
    compose exec -T scm ozone health --contains replication_manager \
      http://127.0.0.1:9876/prom >/dev/null 2>&1
}
if has_replication_manager; then
  log "SCM has a replication manager: waiting for every container to be on 3 healthy replicas"
  deadline=$((SECONDS + 240))
  while short="$(under_replicated)" && [ -n "$short" ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "containers still under-replicated: $short"
    sleep 5
  done
  log "replication restored: every container has 3 healthy replicas"
  read_all "after re-replication"
else
  short="$(under_replicated)"
  log "NOTE: SCM has no replication manager yet (no \`ozone admin replicationmanager status\`," \
    "no replication_manager metrics; re-replication is issue 4): not waiting for replication" \
    "to be restored." \
    "Under-replicated containers now: ${short:-none}"
fi

log "PASSED in $((SECONDS - START))s"
