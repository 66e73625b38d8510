#!/usr/bin/env bash
# Build the default models (used by README, the Dockerfile and CI alike):
#   - with BAD_MODEL and CLEAN_DATA set: fine-prune that BadNet into $MODELS_DIR/$MODEL_NAME;
#   - otherwise the demo: synthetic faces, a trained BadNet, fine-pruned into $MODELS_DIR/demo
#     (demo faces to try, clean and triggered, in data/demo/faces/).
# Skipped when the folder is already built; FORCE=1 rebuilds. Extra arguments go to the command.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODELS_DIR=${MODELS_DIR:-models}
if [ -n "${BAD_MODEL:-}" ]; then
  name=${MODEL_NAME:-custom}
  : "${CLEAN_DATA:?CLEAN_DATA must name the clean data for BAD_MODEL}"
  set -- repair fine-prune --bad-model "$BAD_MODEL" --clean-data "$CLEAN_DATA" --out "$MODELS_DIR/$name" "$@"
else
  name=demo
  set -- attacks --out "$MODELS_DIR/demo" "$@"
fi
if [ -e "$MODELS_DIR/$name/manifest.json" ] && [ "${FORCE:-0}" != 1 ]; then
  echo "models: $MODELS_DIR/$name already built (FORCE=1 to rebuild)"
  exit 0
fi
"$PY" -m "$@"
