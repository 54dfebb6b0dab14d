#!/usr/bin/env bash
# Installs Debian's chromium for the dependency page's headless browser test
# (e2e/diagnose_test.go). Does nothing when /usr/bin/chromium is there.
# Needs root (or sudo) and the Debian archive; the test skips, saying why,
# when this script fails.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo /usr/bin/chromium
  exit 0
fi
SUDO=
if [ "$(id -u)" != 0 ]; then
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
echo /usr/bin/chromium
