#!/usr/bin/env bash
# Build the default models: the demo BadNet, fine-pruned, in models/demo (skipped if present).
# Used by README, the Dockerfile and CI alike. FORCE=1 rebuilds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODELS_DIR=${MODELS_DIR:-models}
if [ -e "$MODELS_DIR/demo/manifest.json" ] && [ "${FORCE:-0}" != 1 ]; then
  echo "models: $MODELS_DIR/demo already built (FORCE=1 to rebuild)"
  exit 0
fi
"$PY" -m repair demo --out "$MODELS_DIR/demo" "$@"
