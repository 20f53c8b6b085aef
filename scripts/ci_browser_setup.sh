#!/usr/bin/env bash
# Install the browser that `make test-browser` drives: Debian's Chromium, used by Playwright through
# executable_path=/usr/bin/chromium. Never `playwright install` (it downloads its own browser, which
# fails offline). Idempotent; needs root (or sudo) on a Debian/Ubuntu machine.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  /usr/bin/chromium --version || true
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
/usr/bin/chromium --version
