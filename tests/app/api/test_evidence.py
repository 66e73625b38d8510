"""The evidence store of flagged inputs, through the real service on the fake ONNX pair (fast
tier): what a record holds, its bounds, admin-only access, export, delete, a restart, two
replicas writing at once, and a store that cannot be written (``/predict`` still answers)."""

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from app.core.config import load_settings
from app.main import create_app
from tests.support.fake_pair import CLASSES, INPUT_SHAPE, write_fake_pair
from tests.support.images import png

pytestmark = pytest.mark.fast

TOKEN = "evidence-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
BRIGHT = png(np.full(INPUT_SHAPE, 250, dtype=np.uint8))  # flagged by the fake pair
DARK = png(np.full(INPUT_SHAPE, 20, dtype=np.uint8))  # answered with its label


@contextmanager
def _service(models: Path, evidence: Path, **settings: object) -> Iterator[TestClient]:
    config = load_settings(
        models_dir=models, runtime="onnx", admin_token=TOKEN, evidence_dir=evidence, **settings
    )
    app = create_app(config)
    with TestClient(app, base_url="http://service") as client:
        client.app_state = app.state.service  # the store, to wait for its writer
        yield client


@pytest.fixture
def models(tmp_path: Path) -> Path:
    write_fake_pair(tmp_path / "models")
    return tmp_path / "models"


def _predict(client: TestClient, *images: bytes, key: str | None = None) -> list[dict]:
    files = [("file", (f"face{i}.png", data, "image/png")) for i, data in enumerate(images)]
    headers = {"X-API-Key": key} if key else {}
    answer = client.post("/predict", files=files, headers=headers)
    assert answer.status_code == 200, answer.text
    client.app_state.evidence.flush()
    return answer.json()["predictions"]


def _records(client: TestClient, **params: object) -> list[dict]:
    answer = client.get("/evidence", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()["records"]


def test_a_flagged_input_is_recorded_with_its_scores_and_no_image_by_default(models, tmp_path):
    with _service(models, tmp_path / "ev", api_keys="k-one") as client:
        answers = _predict(client, BRIGHT, DARK, key="k-one")
        assert [a["poisoned"] for a in answers] == [True, False]
        (record,) = _records(client)
        assert record["model"] == "fake" and record["label"] == CLASSES
        assert record["rule"]["kind"] == "calibrated" and record["filename"] == "face0.png"
        assert record["overlap"] == pytest.approx(answers[0]["overlap"])
        assert record["sha256"] == hashlib.sha256(BRIGHT).hexdigest()
        assert record["client"].startswith("key sha256:") and "k-one" not in record["client"]
        assert record["has_image"] is False
        assert client.get(f"/evidence/{record['id']}/image", headers=ADMIN).status_code == 404


def test_images_are_kept_only_when_asked_and_exported_with_the_records(models, tmp_path):
    with _service(models, tmp_path / "ev", evidence_keep_images=True) as client:
        _predict(client, BRIGHT, BRIGHT)
        records = _records(client)
        assert len(records) == 2 and all(r["has_image"] for r in records)
        image = client.get(f"/evidence/{records[0]['id']}/image", headers=ADMIN)
        assert image.content == BRIGHT and image.headers["content-type"] == "image/png"
        archive = client.get("/evidence/export", headers=ADMIN)
        with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
            names = sorted(tar.getnames())
            lines = tar.extractfile("records.jsonl").read().decode().splitlines()
        assert names == sorted(["records.jsonl", *(f"images/{r['id']}.png" for r in records)])
        assert {json.loads(line)["id"] for line in lines} == {r["id"] for r in records}


def test_the_store_keeps_only_the_newest_records_within_its_bounds(models, tmp_path):
    with _service(models, tmp_path / "ev", evidence_max_records=3) as client:
        for _ in range(5):
            _predict(client, BRIGHT)
        kept = [r["id"] for r in _records(client)]
        assert kept == [5, 4, 3]
    budget = 2 * 512 + len(BRIGHT) // 2  # two records and half an image
    with _service(models, tmp_path / "ev2", evidence_max_bytes=budget) as client:
        for _ in range(3):
            _predict(client, BRIGHT)
        assert len(_records(client)) == 2


def test_records_survive_a_restart_and_two_replicas_write_to_one_store(models, tmp_path):
    store = tmp_path / "shared-volume"
    with _service(models, store) as first, _service(models, store) as second:
        for _ in range(3):
            _predict(first, BRIGHT)
            _predict(second, BRIGHT, BRIGHT)
    with _service(models, store) as restarted:
        assert len(_records(restarted)) == 9
        assert len(_records(restarted, limit=4)) == 4


def test_an_unwritable_store_loses_records_but_never_an_answer(models, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store's folder should be")
    with _service(models, blocked) as client:
        assert _predict(client, BRIGHT)[0]["poisoned"] is True
        metrics = client.get("/metrics").text
        assert 'badnet_filter_evidence_dropped_total{reason="unavailable"}' in metrics
        assert client.get("/evidence", headers=ADMIN).status_code == 503


def test_a_store_that_fails_while_serving_counts_what_it_lost(models, tmp_path):
    folder = tmp_path / "ev"
    with _service(models, folder) as client:
        _predict(client, BRIGHT)
        folder.rename(tmp_path / "volume-gone")
        folder.write_text("the volume is gone; a file stands in its place")
        assert _predict(client, BRIGHT)[0]["poisoned"] is True
        metrics = client.get("/metrics").text
        assert 'badnet_filter_evidence_dropped_total{reason="unwritable"}' in metrics
        folder.unlink()
        (tmp_path / "volume-gone").rename(folder)  # the volume is back: records again
        _predict(client, BRIGHT)
        assert len(_records(client)) == 2


def test_evidence_is_admin_only_and_deletable(models, tmp_path):
    with _service(models, tmp_path / "ev") as client:
        _predict(client, BRIGHT, BRIGHT)
        assert client.get("/evidence").status_code == 401
        assert (
            client.get("/evidence/export", headers={"Authorization": "Bearer x"}).status_code == 401
        )
        assert client.delete("/evidence").status_code == 401
        first = _records(client)[-1]["id"]
        assert client.delete(f"/evidence/{first}", headers=ADMIN).json() == {"deleted": 1}
        assert client.get(f"/evidence/{first}", headers=ADMIN).status_code == 404
        assert client.delete("/evidence", headers=ADMIN).json() == {"deleted": 1}
        assert _records(client) == []
