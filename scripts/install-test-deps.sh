#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain: the Python interop peers (into
# .venv-interop, see install-interop-peers.sh) and Debian's headless Chromium, which checks the
# HTML report. Run once as root (CI runs it from .ci/run). Idempotent.
set -euo pipefail
bash "$(dirname "$0")/install-interop-peers.sh"
if command -v chromium >/dev/null 2>&1; then
  echo "chromium: $(chromium --version 2>/dev/null || echo present)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install Chromium first: sudo apt-get update && sudo apt-get install -y chromium" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
echo "chromium: $(chromium --version)"
