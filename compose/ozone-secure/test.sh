#!/usr/bin/env bash
# End-to-end test of the secure compose cluster (run by the test suite, tests/e2e/compose.rs,
# wherever a Docker Engine answers; runnable by hand after compose/build.sh):
#
#   1. `up -d --scale datanode=3`: every service turns healthy; SCM's CA issued a certificate to
#      SCM, OM, the gateway and each datanode (`ozone admin cert list`, as an administrator);
#   2. a user's secret from `ozone s3 getsecret`: the aws CLI writes objects (multipart
#      included) and reads them back identical; a wrong secret and no credentials get 403;
#   3. a container that is not a cluster node, on the cluster's network, is refused by every
#      internal port: plaintext, and TLS without a certificate;
#   4. `down` then `up`: the objects are still there, the nodes keep their certificates;
#   5. teardown: containers, network and volumes are removed, also when a step fails.
#
# Environment: as compose/ozone/test.sh (OZONE_IMAGE, COMPOSE_PROJECT_NAME, OZONE_S3G_PORT,
# OZONE_S3G_WEBADMIN_PORT, OZONE_COMPOSE, AWS, PYTHON, OZONE_TEST_KEEP).
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=../compose-tool.sh
source ../compose-tool.sh

export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-ozonesecure$$}"
export OZONE_IMAGE="${OZONE_IMAGE:-ozone-rs:latest}"
export OZONE_S3G_PORT="${OZONE_S3G_PORT:-9878}"
export OZONE_S3G_WEBADMIN_PORT="${OZONE_S3G_WEBADMIN_PORT:-19878}"
AWS="${AWS:-aws}"
PYTHON="${PYTHON:-python3}"
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
ENDPOINT=""
BUCKET=secure-test
START=$SECONDS

log() { printf '[compose secure test %4ds] %s\n' "$((SECONDS - START))" "$*"; }
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

resolve_endpoint() {
  local published
  published="$(compose port s3g 9878)" || fail "s3g publishes no port for 9878"
  ENDPOINT="http://127.0.0.1:${published##*:}"
  log "S3 on $ENDPOINT"
}
s3() { "$AWS" --endpoint-url "$ENDPOINT" --cli-read-timeout 120 "$@"; }
admin() { compose exec -T scm ozone admin "$@"; }
jq_py() { "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

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
          *) bad="$bad ${line}" ;;
        esac
      done
    done
    [ -z "$bad" ] && [ "$dn" = "$want_dn" ] && return 0
    [ "$SECONDS" -lt "$deadline" ] ||
      fail "services not healthy in time (healthy datanodes: $dn of $want_dn; not ready:$bad)"
    sleep 2
  done
}

eventually() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what: not true within ${secs}s"
    sleep 2
  done
}
pipeline_of_three() {
  admin pipeline list --json | jq_py "sum(1 for p in d if p['state']=='OPEN' and len(p['nodes'])==3)" | grep -qvx 0
}
certificates_of_every_node() {
  local roles
  roles="$(admin cert list --json | jq_py "' '.join(sorted(c['role'] for c in d))")"
  for want in datanode om s3g scm; do
    [[ " $roles " == *" $want "* ]] || return 1
  done
  [ "$(tr ' ' '\n' <<<"$roles" | grep -cx datanode)" -ge 3 ]
}

log "image $OZONE_IMAGE, project $COMPOSE_PROJECT_NAME"
docker image inspect "$OZONE_IMAGE" >/dev/null 2>&1 || fail "image $OZONE_IMAGE is missing: run compose/build.sh"

# 1. Up with three datanodes, every node with a certificate.
compose up -d --scale datanode=3
wait_healthy 3
resolve_endpoint
eventually 60 "an open pipeline of 3 datanodes" pipeline_of_three
eventually 30 "certificates for SCM, OM, the gateway and 3 datanodes" certificates_of_every_node
admin cert list
log "every node holds a certificate from SCM's CA"

# 2. S3 with a real secret; wrong or missing credentials refused.
secret_out="$(compose exec -T om ozone s3 getsecret -u tester)"
export AWS_ACCESS_KEY_ID="$(sed -n 's/^awsAccessKey=//p' <<<"$secret_out" | tr -d '\r')"
export AWS_SECRET_ACCESS_KEY="$(sed -n 's/^awsSecret=//p' <<<"$secret_out" | tr -d '\r')"
[ -n "$AWS_SECRET_ACCESS_KEY" ] || fail "no secret from getsecret: $secret_out"
s3 s3 mb "s3://$BUCKET" >/dev/null
mkdir -p "$work/src" "$work/got"
for spec in small:1024 mib20:20971520; do
  head -c "${spec##*:}" /dev/urandom >"$work/src/${spec%%:*}"
  s3 s3 cp --only-show-errors "$work/src/${spec%%:*}" "s3://$BUCKET/${spec%%:*}" || fail "PUT ${spec%%:*}"
done
read_all() {
  for name in small mib20; do
    rm -f "$work/got/$name"
    s3 s3 cp --only-show-errors "s3://$BUCKET/$name" "$work/got/$name" || fail "$1: GET $name"
    cmp -s "$work/src/$name" "$work/got/$name" || fail "$1: $name differs"
  done
  log "$1: every object read back identical"
}
read_all "signed by a user's secret"
if AWS_SECRET_ACCESS_KEY=wrong s3 s3 ls "s3://$BUCKET" >"$work/wrong.out" 2>&1; then
  fail "a wrong secret listed the bucket"
fi
grep -q "SignatureDoesNotMatch\|AccessDenied\|403" "$work/wrong.out" || fail "wrong secret: $(cat "$work/wrong.out")"
code="$(curl -s -o /dev/null -w '%{http_code}' "$ENDPOINT/$BUCKET/small")"
[ "$code" = 403 ] || fail "an anonymous GET answered $code"
log "wrong and missing credentials refused (403)"

# 3. A stranger on the cluster's network is refused by OM and SCM: in plaintext, and over TLS
#    without a certificate (it trusts the CA but holds no admin credential).
network="$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$(compose ps -q scm)")"
stranger() { docker run --rm --network "$network" --user 1000:1000 "$@"; }
refused() {
  local what=$1 out
  shift
  if out="$("$@" 2>&1)"; then
    fail "$what answered a stranger: $out"
  fi
  log "$what refuses a stranger: $(tr '\n' ' ' <<<"$out" | cut -c1-160)"
}
refused "SCM (plaintext)" stranger -e OZONE-SITE.XML_ozone.scm.names=scm "$OZONE_IMAGE" admin datanode list
refused "OM (plaintext)" stranger -e OZONE-SITE.XML_ozone.om.address=om:9862 "$OZONE_IMAGE" sh volume list
tls_stranger=(stranger --env-file docker-config -e OZONE-SITE.XML_ozone.om.admin.secret.file=/nonexistent
  -v "${COMPOSE_PROJECT_NAME}_secrets:/secrets:ro" "$OZONE_IMAGE")
refused "SCM (TLS, no certificate)" "${tls_stranger[@]}" admin datanode list
refused "OM (TLS, no certificate)" "${tls_stranger[@]}" sh volume list

# 4. Down and up: same data, and the nodes keep their certificates (only the administrator's
#    tool gets new ones).
node_certs() { admin cert list --json | jq_py "len([c for c in d if c['role'] != 'admin'])"; }
before="$(node_certs)"
compose down -t 5
compose up -d --scale datanode=3
wait_healthy 3
resolve_endpoint
read_all "after down and up"
after="$(node_certs)"
[ "$before" = "$after" ] || fail "the nodes were issued new certificates at restart: $before before, $after after"
log "node certificates: $before before and after the restart"
log "PASSED"
