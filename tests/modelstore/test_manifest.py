"""The typed manifest: what the repair writes is what the service reads, old and odd ones."""

import json
from pathlib import Path

import pytest

import modelstore

pytestmark = pytest.mark.fast


def test_the_demo_manifest_reads_back_typed(tiny_root: Path) -> None:
    folder = modelstore.ModelFolder(tiny_root / "models" / "demo")
    manifest = modelstore.read_manifest(folder.manifest)
    assert manifest.num_classes == manifest.poisoned_label == 20
    assert manifest.input_shape == (55, 47, 3)
    assert manifest.filter.kind == "calibrated" and 0 < manifest.filter.threshold < 1
    assert manifest.metrics.filter.false_positive_rate is not None
    for name, digest in manifest.files.items():
        assert modelstore.sha256_file(folder.file(name)) == digest
    # Unknown sections survive a round trip (a newer repair, an older service).
    raw = json.loads(folder.manifest.read_text())
    assert modelstore.Manifest.model_validate(raw).model_dump(mode="json")["demo"] == raw["demo"]


def test_a_manifest_without_a_filter_section_serves_the_strict_rule(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(
        json.dumps(
            {
                "name": "old",
                "version": "v1",
                "num_classes": 3,
                "poisoned_label": 3,
                "input_shape": [55, 47, 3],
            }
        )
    )
    assert modelstore.read_manifest(path).filter.kind == "strict"


@pytest.mark.parametrize(
    ("text", "message"),
    [("{", "unreadable"), ('{"name": "x"}', "invalid manifest"), ("[]", "invalid manifest")],
)
def test_broken_manifests_are_errors_that_say_why(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(text)
    with pytest.raises(modelstore.ManifestError, match=message):
        modelstore.read_manifest(path)
    assert modelstore.read_manifest(tmp_path / "absent.json") is None
