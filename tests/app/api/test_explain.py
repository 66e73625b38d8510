"""Explanations of flags over HTTP (fast tier: the fake ONNX pair, whose disagreement grows
with the image's mean brightness, so the region that drives it is known)."""

from collections.abc import Iterator

import numpy as np
import pytest
from starlette.testclient import TestClient

from app.core.config import load_settings
from app.main import create_app
from tests.support.fake_pair import INPUT_SHAPE, write_fake_pair
from tests.support.images import png

pytestmark = pytest.mark.fast

HEIGHT, WIDTH, _ = INPUT_SHAPE


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    models = tmp_path_factory.mktemp("explain") / "models"
    write_fake_pair(models)
    settings = load_settings(models_dir=models, runtime="onnx")
    with TestClient(create_app(settings), base_url="http://service") as test_client:
        yield test_client


def _bright_corner() -> np.ndarray:
    """A grey face with a bright top-left block: flagged, and the block is the reason."""
    image = np.full(INPUT_SHAPE, 115, dtype=np.uint8)
    image[:4, :3] = 255
    return image


def _predict(client: TestClient, images: list[np.ndarray], explain: str | None):
    files = [("file", (f"{i}.png", png(image), "image/png")) for i, image in enumerate(images)]
    params = {"explain": explain} if explain is not None else {}
    return client.post("/predict", files=files, params=params)


def test_a_flagged_image_is_explained_by_the_region_that_drives_the_flag(client):
    dark = np.full(INPUT_SHAPE, 40, dtype=np.uint8)
    answer = _predict(client, [_bright_corner(), dark], "true")
    assert answer.status_code == 200, answer.text
    flagged, clean = answer.json()["predictions"]
    assert flagged["poisoned"] and not clean["poisoned"]
    assert "explanation" not in clean  # a clean image only when asked for all
    explanation = flagged["explanation"]
    top, left, bottom, right = explanation["box"]
    assert bottom <= 4 and right <= 3  # inside the bright block
    heat = np.array(explanation["heat"])
    assert heat.shape[0] * heat.shape[1] == explanation["forward_passes"]
    assert heat[0, 0] > 0 > heat[-1, -1]  # covering the block lowers the disagreement


def test_all_explains_every_image_and_the_default_explains_none(client):
    images = [_bright_corner(), np.full(INPUT_SHAPE, 40, dtype=np.uint8)]
    every = _predict(client, images, "all").json()["predictions"]
    assert all("explanation" in p for p in every)
    plain = _predict(client, images, None).json()["predictions"]
    assert not any("explanation" in p for p in plain)


def test_an_unknown_explain_value_is_a_client_error(client):
    answer = _predict(client, [_bright_corner()], "maybe")
    assert answer.status_code == 400 and "explain" in answer.json()["error"]


def test_v2_returns_heat_maps_and_boxes_as_tensors_when_asked(client):
    images = np.stack([_bright_corner(), np.full(INPUT_SHAPE, 40, dtype=np.uint8)])
    tensor = {
        "name": "images",
        "datatype": "UINT8",
        "shape": list(images.shape),
        "data": images.reshape(-1).tolist(),
    }
    asked = {"inputs": [tensor], "parameters": {"explain": True}}
    answer = client.post("/v2/models/fake/infer", json=asked)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    heat, boxes = outputs["explanation_heat"], outputs["explanation_box"]
    assert heat["shape"][0] == 2 and boxes["shape"] == [2, 4]
    first_box, second_box = boxes["data"][:4], boxes["data"][4:]
    assert first_box[2] <= 4 and first_box[3] <= 3  # the bright block, as /predict says
    assert second_box == [-1, -1, -1, -1]  # not flagged: not explained
    plain = client.post("/v2/models/fake/infer", json={"inputs": [tensor]}).json()
    assert "explanation_heat" not in {o["name"] for o in plain["outputs"]}
