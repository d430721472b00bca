#!/usr/bin/env bash
# Debian packages the tests need: Chromium (browser tests), PostgreSQL, fonts, poppler (PDF checks),
# Node.js and npm (to type-check the browser JavaScript with TypeScript's tsc).
# Installs only what is missing, and only where apt-get can run (root); otherwise says what to install.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v pg_lsclusters >/dev/null || need+=(postgresql)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
command -v pdftotext >/dev/null || need+=(poppler-utils)
command -v tc >/dev/null || need+=(iproute2)  # ip netns and tc tbf for the shaped-link tests (tests/netlink)
command -v npx >/dev/null || need+=(nodejs npm)  # tsc --checkJs over web/static/js (scripts/checkjs.sh)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "note: install ${need[*]} (apt-get install ${need[*]}) for the browser and PostgreSQL tests" >&2
fi
