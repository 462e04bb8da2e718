# Sourced by compose/*/test.sh: defines `compose`, Docker Compose as found here: $OZONE_COMPOSE
# (a command, e.g. "docker compose"), else the `docker compose` plugin, else `docker-compose`.
if [ -n "${OZONE_COMPOSE:-}" ]; then
  read -ra COMPOSE <<<"$OZONE_COMPOSE"
elif docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  COMPOSE=(docker-compose)
else
  echo "no Docker Compose: neither \`docker compose\` (plugin) nor docker-compose runs" >&2
  exit 1
fi
compose() { "${COMPOSE[@]}" "$@"; }
