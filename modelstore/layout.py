"""Where a model's files are: ``ROOT/NAME`` links to ``ROOT/.versions/NAME/VERSION/``."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

BAD_MODEL = "bad.h5"
REPAIRED_MODEL = "repaired.h5"
PAIR_ONNX = "pair.onnx"
"""B and B' fused into one ONNX graph: what a serving replica without TensorFlow runs. Its
input is ``images`` (N, H, W, 3) float32 in [0, 1]; its outputs are :data:`PAIR_OUTPUTS`."""
PAIR_OUTPUTS = ("bad_label", "repaired_label", "confidence", "overlap", "support")
"""Per image: B's and B''s top labels, B's probability of its label, the Bhattacharyya
overlap of their output distributions, and B''s probability of B's label."""
MANIFEST = "manifest.json"
PRUNING_PLOT = "pruning.png"
FILTER_PLOT = "filter.png"
VERSIONS_DIR = ".versions"
STAGING_PREFIX = ".staging-"


@dataclass(frozen=True)
class ModelFolder:
    """One served model: ``path`` is ``ROOT/NAME`` (a versioned link, or a plain folder)."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def versions(self) -> Path:
        """Where this model's versions live: ``ROOT/.versions/NAME``."""
        return self.root / VERSIONS_DIR / self.name

    @property
    def bad_model(self) -> Path:
        return self.path / BAD_MODEL

    @property
    def repaired_model(self) -> Path:
        return self.path / REPAIRED_MODEL

    @property
    def pair_onnx(self) -> Path:
        return self.path / PAIR_ONNX

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    def file(self, name: str) -> Path:
        return self.path / name

    def identity(self) -> tuple:
        """Changes whenever the folder holds a new version: its target and its files' times."""
        resolved = self.path.resolve()
        stamps = []
        for name in (MANIFEST, BAD_MODEL, REPAIRED_MODEL):
            try:
                stamps.append((resolved / name).stat().st_mtime_ns)
            except OSError:
                stamps.append(None)
        return (resolved, *stamps)


def model_folders(root: Path) -> dict[str, ModelFolder]:
    """The model folders under ``root`` by name (hidden entries, versions and staging, left out)."""
    if not root.is_dir():
        return {}
    return {
        entry.name: ModelFolder(entry)
        for entry in sorted(root.iterdir())
        if not entry.name.startswith(".") and entry.is_dir()
    }


def versioned_names(root: Path) -> list[str]:
    """Names of the models under ``root`` that have (or had) published versions."""
    versions = root / VERSIONS_DIR
    return sorted(p.name for p in versions.iterdir() if p.is_dir()) if versions.is_dir() else []


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, as a hex string."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
