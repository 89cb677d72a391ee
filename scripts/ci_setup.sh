#!/usr/bin/env bash
# What CI (and a fresh machine) needs beyond `pip install -e '.[test]'`, for the MLflow UI browser test:
#   - Debian's Chromium at /usr/bin/chromium (with a font, so screenshots are legible);
#   - the playwright Python package, used only through its bundled driver. `playwright install` is never
#     run: the test drives Debian's Chromium, so no browser is downloaded.
# Idempotent and quick when everything is there. Run from anywhere, after the virtualenv exists:
#   bash scripts/ci_setup.sh            # PYTHON=/path/to/python to use another interpreter
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
PLAYWRIGHT_SPEC="playwright>=1.45,<2"

if [ ! -x "$PYTHON" ]; then
  echo "ci_setup: no interpreter at $PYTHON (create .venv first, or set PYTHON)" >&2
  exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "ci_setup: installing chromium needs root or sudo" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation
fi
/usr/bin/chromium --version 2>/dev/null | head -n 1

if ! "$PYTHON" -c "import playwright.sync_api" 2>/dev/null; then
  "$PYTHON" -m pip install -q "$PLAYWRIGHT_SPEC"
fi
"$PYTHON" -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
