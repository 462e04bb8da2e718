#!/usr/bin/env bash
# The fault-injection suite for long runs (tests/e2e/nemesis): mixed S3 load from several
# clients while a seeded nemesis SIGKILLs/restarts or SIGSTOPs/resumes one role at a time
# (a datanode, the OM leader of 3 OMs, SCM, the gateway), or on the Docker cluster cuts a
# datanode's or the OM leader's network; then checks that no acknowledged write was lost, no
# wrong byte served, no delete undone, and every container is back to 3 agreeing replicas.
#
#   bench/nemesis.sh [seconds] [seed]            # process cluster (default 900 s, a random seed)
#   bench/nemesis.sh docker [seconds] [seed]     # the three-OM compose cluster (network cuts)
#
# The seed is printed at the start and in the report; passing it again replays the same
# schedule of faults and the same client choices. Other knobs (environment): NEMESIS_CLIENTS (4),
# NEMESIS_KEYS per client (30), NEMESIS_MAX_SIZE (67108864), NEMESIS_DATANODES (4),
# NEMESIS_REPAIR_TIMEOUT in s (120), NEMESIS_GAP_MIN_MS/MAX_MS (2000/6000) and
# NEMESIS_FAULT_MIN_MS/MAX_MS (2000/10000); NEMESIS_REPLICAS=report (replicas not repaired in
# time are reported, not a failure); NEMESIS_IMAGE (Docker: an image to use instead of
# building one from the static binary). The binary under test: $OZONE_BIN, else the newest
# release build (the Docker mode needs the static one: bash compose/build.sh --binary-only).
# The output is also kept in nemesis-<mode>-<seed>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=processes
test=nemesis::long_run
if [ "${1:-}" = docker ]; then
  mode=docker
  test=nemesis::docker_network_cuts
  shift
fi
export NEMESIS_SECONDS="${1:-900}"
export NEMESIS_SEED="${2:-$(( (RANDOM << 15 | RANDOM) % 1000000000 ))}"
log="nemesis-$mode-$NEMESIS_SEED.log"
echo "nemesis: $mode, $NEMESIS_SECONDS s, seed $NEMESIS_SEED; log in $log"
cargo test -p ozone-tests --test e2e -- --ignored --exact "$test" --nocapture 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
