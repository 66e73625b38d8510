#!/usr/bin/env bash
# Set up, build the default models if needed, and serve on http://127.0.0.1:${PORT:-8000}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
./scripts/build_models.sh
exec .venv/bin/python -m app
