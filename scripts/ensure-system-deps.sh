#!/usr/bin/env bash
# Install the Debian packages the test suite drives (Chromium, coturn), only when missing
# (apt-get update once, then).
set -euo pipefail
needed=()
[ -x /usr/bin/chromium ] || needed+=(chromium)
[ -x /usr/bin/turnserver ] || needed+=(coturn)
command -v pg_isready >/dev/null || needed+=(postgresql-client)
if [ ${#needed[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${needed[*]} (run as root, or: sudo apt-get install ${needed[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${needed[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${needed[@]}" >/dev/null
[ -x /usr/bin/chromium ] || { echo "chromium did not install" >&2; exit 1; }
[ -x /usr/bin/turnserver ] || { echo "coturn did not install" >&2; exit 1; }
