#!/usr/bin/env bash
# Installs what the test suite needs, idempotently: a Python virtualenv (.venv) with the aws CLI,
# boto3 and Selenium, rclone, s3cmd, s3fs, Chromium and its WebDriver (the bucket browser test)
# from Debian, and cargo-nextest. Safe to run again; does nothing when everything is there.
# Debian packages are installed as root, or with sudo when run by another user.
set -euo pipefail
cd "$(dirname "$0")/.."

# Runs a command as root: directly when root, else with sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "setup: needs root or sudo to run: $*" >&2
    return 1
  fi
}

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

# Other S3 clients the end-to-end tests drive (Debian packages).
missing=()
for pkg in rclone s3cmd s3fs; do command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
# Headless Chromium and chromedriver for tests/e2e/browser.rs (which fails without them).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
# `script` (util-linux) gives `ozone sh` a terminal in tests/e2e/shell.rs.
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
# Python with venv (ensurepip) for .venv below.
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! { [ -x .venv/bin/aws ] && .venv/bin/python -c 'import boto3' 2>/dev/null; }; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet awscli boto3
fi
.venv/bin/python -c 'import pytest' 2>/dev/null || .venv/bin/pip install --quiet pytest # tests/py suites
if ! .venv/bin/python -c 'import selenium' 2>/dev/null; then
  .venv/bin/pip install --quiet selenium
fi
.venv/bin/aws --version
