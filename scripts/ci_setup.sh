#!/usr/bin/env bash
# What CI (and a fresh machine) needs beyond `pip install -e '.[test]'`:
#   - Debian's Chromium at /usr/bin/chromium (with a font, so screenshots are legible), for the MLflow UI
#     browser tests;
#   - the playwright Python package, used only through its bundled driver. `playwright install` is never
#     run: the test drives Debian's Chromium, so no browser is downloaded;
#   - Debian's PostgreSQL server binaries, for the local stack (cli/local_stack.py, tests/test_local_stack.py);
#     only the package: no system cluster is started, the stack runs a cluster of its own.
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

APT_PACKAGES=()
[ -x /usr/bin/chromium ] || APT_PACKAGES+=(chromium fonts-liberation)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || APT_PACKAGES+=(postgresql)
if [ ${#APT_PACKAGES[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "ci_setup: installing ${APT_PACKAGES[*]} needs root or sudo" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  # policy-rc.d: the package must not start Debian's own cluster (the stack runs its own, on its own port)
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
fi
/usr/bin/chromium --version 2>/dev/null | head -n 1
ls -d /usr/lib/postgresql/*/bin | tail -n 1

if ! "$PYTHON" -c "import playwright.sync_api" 2>/dev/null; then
  "$PYTHON" -m pip install -q "$PLAYWRIGHT_SPEC"
fi
"$PYTHON" -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
# The stack's database drivers (in the `test` extra; installed here too for a virtualenv made before them)
if ! "$PYTHON" -c "import psycopg, asyncpg" 2>/dev/null; then
  "$PYTHON" -m pip install -q "psycopg[binary]>=3.1" "asyncpg>=0.29"
fi
