#!/usr/bin/env bash
# Compile meetings/locale/*/LC_MESSAGES/messages.po into .mo files (gitignored).
# meetings/i18n.py uses a .mo only when it is newer than its .po, so this is optional in
# development and part of building a release.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-.venv/bin/python}"

"$PYTHON" -m babel.messages.frontend compile -d meetings/locale -D messages --statistics
