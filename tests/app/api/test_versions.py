"""A model's history and rollback over HTTP (fast tier: the fake ONNX pair, published as
versions the way the repair publishes them)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app.core.config import load_settings
from app.main import create_app
from tests.support.fake_pair import publish_fake_versions

pytestmark = pytest.mark.fast

TOKEN = "admin-secret"


@pytest.fixture
def published(tmp_path: Path) -> tuple[Path, list[str]]:
    models = tmp_path / "models"
    return models, publish_fake_versions(models, "fake", 3)


def _client(models: Path, **settings: object) -> Iterator[TestClient]:
    config = load_settings(models_dir=models, runtime="onnx", **settings)
    with TestClient(create_app(config), base_url="http://service") as client:
        yield client


@pytest.fixture
def client(published: tuple[Path, list[str]]) -> Iterator[TestClient]:
    yield from _client(published[0], admin_token=TOKEN)


def test_versions_lists_each_published_version_with_its_provenance(client, published):
    _, versions = published
    body = client.get("/models/fake/versions").json()
    assert [v["version"] for v in body["versions"]] == versions
    assert [v["current"] for v in body["versions"]] == [False, False, True]
    assert body["versions"][1]["published_by"] == "test publisher 1"
    assert body["versions"][0]["bad_model_sha256"] == "ab" * 32
    assert "rollback" in body["rollback"]
    assert client.get("/models/nobody/versions").status_code == 404


def test_rollback_is_one_admin_call_and_serves_the_previous_version(client, published):
    _, versions = published
    answer = client.post("/models/fake/rollback", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"name": "fake", "version": versions[1]}
    served = {m["name"]: m["version"] for m in client.get("/models").json()["models"]}
    assert served["fake"] == versions[1]
    current = [v["current"] for v in client.get("/models/fake/versions").json()["versions"]]
    assert current == [False, True, False]


def test_rollback_past_the_oldest_version_is_a_conflict(client):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/models/fake/rollback", headers=headers).status_code == 200
    assert client.post("/models/fake/rollback", headers=headers).status_code == 200
    refused = client.post("/models/fake/rollback", headers=headers)
    assert refused.status_code == 409 and "no earlier version" in refused.json()["error"]


def test_rollback_is_refused_without_the_admin_token(client, published):
    assert client.post("/models/fake/rollback").status_code == 401
    wrong = client.post("/models/fake/rollback", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    for closed in _client(published[0]):  # no ADMIN_TOKEN: admin routes are off
        assert closed.post("/models/fake/rollback").status_code == 403
