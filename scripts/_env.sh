# Sourced by scripts/demo, scripts/test and scripts/ui: one place that bootstraps a fresh machine.
# Creates .venv from requirements.txt + constraints.txt (re-installs when either file changes),
# points AIRFLOW_HOME at the git-ignored .airflow/ and migrates Airflow's metadata database.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
stamp="$VENV/.requirements.sha256"
want="$(cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo ">> installing dependencies into .venv (first run takes a minute or two)" >&2
  "$PYTHON" -m venv "$VENV"
  quiet() { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }
  "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | quiet
  "$VENV/bin/python" -m pip install --quiet -r requirements.txt -c constraints.txt 2>&1 | quiet
  # Registers our Airflow provider (connection forms); the code stays importable from $ROOT.
  "$VENV/bin/python" -m pip install --quiet --no-deps . 2>&1 | quiet
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE="${AIRFLOW__CORE__UNIT_TEST_MODE:-False}"
mkdir -p "$AIRFLOW_HOME"
if [ ! -f "$AIRFLOW_HOME/.migrated" ] || [ "$(cat "$AIRFLOW_HOME/.migrated")" != "$want" ]; then
  echo ">> airflow db migrate ($AIRFLOW_HOME)" >&2
  airflow db migrate >"$AIRFLOW_HOME/migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/migrate.log" >&2; exit 1; }
  # Pools bound how many API tasks run at once (the shared limiter binds the rate); sizes from
  # include/returns_sync/deploy/pools.py (loop_api: 3 slots per merchant of the merchants file).
  airflow pools set loop_api "$(python -m include.returns_sync.deploy.pools loop_api)" \
    "Loop API tasks (rate: 300 requests/min per API key, shared limiter)" >/dev/null
  airflow pools set whiplash_api "$(python -m include.returns_sync.deploy.pools whiplash_api)" \
    "Whiplash API tasks (rate: 10 requests/s per account, shared limiter)" >/dev/null
  echo "$want" > "$AIRFLOW_HOME/.migrated"
fi
