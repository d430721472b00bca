#!/usr/bin/env bash
# Extract the translatable messages into meetings/locale/messages.pot, update (or create)
# the Vietnamese and English catalogs from it, then compile them.
#
#   scripts/messages.sh            # from the project root (or anywhere)
#   PYTHON=/path/to/python scripts/messages.sh
#
# After running it, translate the new empty msgstr entries of
# meetings/locale/vi/LC_MESSAGES/messages.po (tests/test_i18n.py fails until you do).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-.venv/bin/python}"
BABEL=("$PYTHON" -m babel.messages.frontend)

LOCALE_DIR=meetings/locale
POT="$LOCALE_DIR/messages.pot"
DOMAIN=messages
LANGS=(vi en)

mkdir -p "$LOCALE_DIR"

# (a) Extract Python sources and Jinja2 templates (see babel.cfg). `_`, `gettext`, `N_` and
# `ngettext` are Babel defaults too; they are listed so the set is explicit. No source
# locations and sorted output keep the diffs of the template and catalogs small.
# The template is replaced only when more than its creation date changed.
tmp_pot="$(mktemp)"
trap 'rm -f "$tmp_pot"' EXIT
"${BABEL[@]}" extract \
    -F babel.cfg \
    -k _ -k N_ -k gettext -k ngettext:1,2 \
    -o "$tmp_pot" \
    --no-location --sort-output \
    --project=giaoban --version=0.1.0 \
    --copyright-holder="the Giao Ban authors" \
    . 2>&1 | { grep -vE '^(extracting messages from|writing PO template file to) ' || true; }
if [[ -f "$POT" ]] && cmp -s <(grep -v '^"POT-Creation-Date:' "$POT") <(grep -v '^"POT-Creation-Date:' "$tmp_pot"); then
    echo "unchanged $POT"
else
    cp "$tmp_pot" "$POT"
    echo "wrote $POT"
fi

# (b) Update each catalog from the template, creating it the first time. No fuzzy guesses:
# a changed message comes back untranslated, so the test flags it. Messages gone from the
# sources are dropped (git history keeps their translations).
for lang in "${LANGS[@]}"; do
    "${BABEL[@]}" update \
        -i "$POT" -d "$LOCALE_DIR" -D "$DOMAIN" -l "$lang" \
        --init-missing --no-fuzzy-matching --ignore-obsolete --ignore-pot-creation-date
done

# (c) Compile the .mo files (gitignored; meetings/i18n.py also reads the .po directly).
PYTHON="$PYTHON" "$ROOT/scripts/compile-messages.sh"
