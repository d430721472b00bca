#!/usr/bin/env bash
# Type-checks the browser code (ES modules with JSDoc types, no build step) with TypeScript's
# compiler in --checkJs mode (jsconfig.json). tsc comes from npm as a dev tool, pinned to a major
# version; nothing of it ships. Without npx (no Node.js) it says so and skips, except in CI.
set -euo pipefail
if ! command -v npx >/dev/null; then
  if [ -n "${CI:-}" ]; then echo "CI must type-check the JavaScript: apt-get install nodejs npm" >&2; exit 1; fi
  echo "note: install nodejs and npm to type-check web/static/js (skipped)" >&2
  exit 0
fi
npx -y -p typescript@5 tsc -p jsconfig.json
