#!/usr/bin/env bash
# Set up the project's virtual environment on first use, then run a command in it.
#   ./run.sh tune examples/digits.toml   run the digits search (any tuneflow command works)
#   ./run.sh test [pytest args]          run the test suite
set -euo pipefail
# Commands run in the caller's folder, so relative spec paths and the default
# MLflow store (./mlflow.db) are found there. The install and the tests use the
# project's folder.
root="$(cd "$(dirname "$0")" && pwd)"

export PREFECT_SERVER_ANALYTICS_ENABLED=false
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=true
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

venv="${TUNEFLOW_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
stamp="$venv/.installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  log="$(mktemp)"
  echo "Installing tuneflow and its dependencies into $venv (first run only; log: $log)..." >&2
  if ! { "$python" -m venv "$venv" \
      && "$venv/bin/python" -m pip install --upgrade pip \
      && "$venv/bin/python" -m pip install -e "$root[test]"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "Installation failed; the full log is $log." >&2
    exit 1
  fi
  touch "$stamp"
fi

command="${1:-}"
case "$command" in
  test)
    shift
    cd "$root"
    exec "$venv/bin/python" -m pytest "$@"
    ;;
  "")
    exec "$venv/bin/tuneflow" --help
    ;;
  *)
    exec "$venv/bin/tuneflow" "$@"
    ;;
esac
