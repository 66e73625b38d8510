#!/usr/bin/env bash
# Set up (if needed) and run the checks: ruff, hadolint on the Dockerfile, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/hadolint Dockerfile
.venv/bin/python -m pytest "$@"
