"""The model folder: its layout on disk, its typed manifest, and atomic publication.

Both sides use it and nothing else spells out a file name: the repair writes versions
through :func:`publish`, the service reads them through :class:`ModelFolder` and
:class:`Manifest`. It depends on neither (pydantic, numpy and the standard library only).
"""

from modelstore.layout import (
    BAD_MODEL,
    FILTER_PLOT,
    MANIFEST,
    PAIR_ONNX,
    PAIR_OUTPUTS,
    PRUNING_PLOT,
    REPAIRED_MODEL,
    ModelFolder,
    model_folders,
    sha256_file,
    versioned_names,
)
from modelstore.manifest import (
    FilterSpec,
    Manifest,
    ManifestError,
    Metrics,
    RoleMetrics,
    RuleSpec,
    read_manifest,
)
from modelstore.outputs import PairOutputs
from modelstore.publish import (
    PublishError,
    current_version,
    discard_partial,
    ensure_writable,
    list_versions,
    new_version_id,
    publish,
    rollback,
    staging_folder,
)

__all__ = [
    "BAD_MODEL",
    "FILTER_PLOT",
    "MANIFEST",
    "PAIR_ONNX",
    "PAIR_OUTPUTS",
    "PRUNING_PLOT",
    "REPAIRED_MODEL",
    "FilterSpec",
    "Manifest",
    "ManifestError",
    "Metrics",
    "RoleMetrics",
    "RuleSpec",
    "ModelFolder",
    "PairOutputs",
    "PublishError",
    "current_version",
    "discard_partial",
    "ensure_writable",
    "list_versions",
    "model_folders",
    "new_version_id",
    "publish",
    "read_manifest",
    "rollback",
    "sha256_file",
    "staging_folder",
    "versioned_names",
]
