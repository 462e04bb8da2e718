#!/usr/bin/env bash
# Installs what the test suite needs, idempotently: a Python virtualenv (.venv) with the aws CLI
# and boto3, rclone, s3cmd and s3fs from Debian, and cargo-nextest. Safe to run again; does nothing when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

# Other S3 clients the end-to-end tests drive (Debian packages).
missing=()
for pkg in rclone s3cmd s3fs; do command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! { [ -x .venv/bin/aws ] && .venv/bin/python -c 'import boto3' 2>/dev/null; }; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet awscli boto3
fi
.venv/bin/aws --version
