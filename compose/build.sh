#!/usr/bin/env bash
# Builds the statically linked `ozone` binary and the `FROM scratch` image around it:
#
#   compose/build.sh                 # binary + image (tag: $OZONE_IMAGE, default ozone-rs:latest)
#   compose/build.sh --binary-only   # just the static binary (what .ci/run uses)
#   compose/build.sh --image-only    # just the image, from the binary already built
#                                    # (or from $OZONE_BIN)
#
# The binary is target/x86_64-unknown-linux-gnu/release/ozone: glibc linked statically
# (`+crt-static`; the musl target is not installable here). It runs on the host as well, so the
# test suite drives this one release build too.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target=x86_64-unknown-linux-gnu
binary="$root/target/$target/release/ozone"
# --image-only may take another (static) binary: OZONE_BIN.
if [ "${1:-}" = --image-only ] && [ -n "${OZONE_BIN:-}" ]; then
  binary="$OZONE_BIN"
fi
image="${OZONE_IMAGE:-ozone-rs:latest}"

build_binary=1
build_image=1
case "${1:-}" in
  "") ;;
  --binary-only) build_image=0 ;;
  --image-only) build_binary=0 ;;
  *) echo "usage: $0 [--binary-only|--image-only]" >&2; exit 2 ;;
esac

if [ "$build_binary" = 1 ]; then
  # --target keeps build scripts and proc-macros dynamic (RUSTFLAGS then applies to the target only).
  (cd "$root" && RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --target "$target" --bin ozone)
fi

if [ "$build_image" = 1 ]; then
  if [ ! -x "$binary" ]; then
    echo "$binary is missing: run $0 --binary-only first" >&2
    exit 1
  fi
  if ! file_out="$(file -b "$binary" 2>/dev/null)" || [[ "$file_out" != *static* ]]; then
    # `file` may be absent; ldd is the fallback check.
    if ldd "$binary" >/dev/null 2>&1; then
      echo "$binary is dynamically linked; a FROM scratch image needs the static build" >&2
      exit 1
    fi
  fi
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT
  cp "$binary" "$ctx/ozone"
  # The release profile keeps line tables (for backtraces); the image does without: ~6x smaller.
  if command -v strip >/dev/null 2>&1; then
    strip --strip-debug "$ctx/ozone"
  fi
  cp "$root/compose/Dockerfile" "$ctx/Dockerfile"
  mkdir -m 1777 "$ctx/tmp"
  mkdir -m 0755 "$ctx/data"
  chmod 1777 "$ctx/tmp"
  # The classic builder: the engine here has no BuildKit/buildx, and the image needs neither.
  DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$ctx" 2>&1 >/dev/null |
    { grep -v -e DEPRECATED -e 'BuildKit is currently disabled' -e 'environment-variable' -e '^$' || true; } >&2
  echo "built image $image ($(docker image inspect -f '{{.Size}}' "$image") bytes) from $binary"
fi
