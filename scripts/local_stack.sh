#!/usr/bin/env bash
# The docker-compose.yml stack without Docker, on 127.0.0.1 (see cli/local_stack.py and infra/README.md):
#   bash scripts/local_stack.sh start     # Postgres, Prefect server + worker + deployments, MLflow, 2 Ray nodes
#   source .stack/stack.env               # PREFECT_API_URL, MLFLOW_TRACKING_URI, RAY_ADDRESS
#   bash scripts/local_stack.sh status
#   bash scripts/local_stack.sh stop      # every process it started, by id
# Extra arguments go to `python -m cli.local_stack` (--state-dir DIR, --auto-ports, --no-ui).
# PYTHON=/path/to/python picks the interpreter (default: the repository's .venv).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || { echo "local_stack: no interpreter at $PYTHON (create .venv, or set PYTHON)" >&2; exit 1; }
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || command -v initdb >/dev/null || {
  echo "local_stack: PostgreSQL is not installed (apt-get install -y postgresql, or bash scripts/ci_setup.sh)" >&2
  exit 1
}
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m cli.local_stack "$@"
