#!/usr/bin/env bash
# Unit tests of the browser code's pure modules (web/static/js/room/layout.js, …) with Node's
# own test runner: `node --test tests/js/`. Without node it says so and skips, except in CI.
set -euo pipefail
if ! command -v node >/dev/null; then
  if [ -n "${CI:-}" ]; then echo "CI must run the JavaScript unit tests: apt-get install nodejs" >&2; exit 1; fi
  echo "note: install nodejs to run tests/js (skipped)" >&2
  exit 0
fi
node --test tests/js/
