#!/usr/bin/env bash
# Set up (if needed) and run every check: ruff, hadolint on the Dockerfiles, pytest, then the
# images built and run with a real Docker engine (scripts/container_test.py; needs
# ../shared/tools/container-engine.sh, skipped without it or with SKIP_CONTAINERS=1).
# Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/hadolint Dockerfile deploy/haproxy/Dockerfile
started=$(date +%s)
.venv/bin/python -m pytest --durations=15 "$@"
echo "pytest took $(( $(date +%s) - started )) s"
if [ "${SKIP_CONTAINERS:-0}" != 1 ]; then
  .venv/bin/python scripts/container_test.py
fi
