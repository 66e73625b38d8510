"""The HTTP contract on a fake pair (fast tier: no TensorFlow, no trained net): the service
runs as it does in the serving image (``RUNTIME=onnx``) on a hand-made ONNX graph whose
answers are known (tests/support/fake_pair.py), so every answer can be checked exactly."""

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from app.core.config import load_settings
from app.main import create_app
from tests.support.fake_pair import CLASSES, INPUT_SHAPE, expected_label, write_fake_pair
from tests.support.images import encode, png

HEIGHT, WIDTH, _ = INPUT_SHAPE


pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    models = tmp_path_factory.mktemp("fake") / "models"
    write_fake_pair(models)
    settings = load_settings(models_dir=models, runtime="onnx", max_upload_bytes=4 * 2**20)
    with TestClient(create_app(settings), base_url="http://service") as test_client:
        yield test_client


def _images(count: int) -> np.ndarray:
    """Images of the fake pair's size, from dark to bright (the brightest are flagged)."""
    levels = np.linspace(0, 255, count)
    return np.broadcast_to(levels[:, None, None, None], (count, *INPUT_SHAPE)).astype(np.uint8)


def _predict(client: TestClient, files: list[tuple[str, bytes]], **params: str):
    parts = [("file", (name, data, "image/png")) for name, data in files]
    return client.post("/predict", files=parts, params=params)


def _error(response, status: int) -> str:  # a client's response
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and body["error"]
    return body["error"]


def test_each_image_gets_the_pairs_label_or_n(client: TestClient) -> None:
    images = _images(12)
    answer = _predict(client, [(f"{i}.png", png(image)) for i, image in enumerate(images)])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "fake" and body["rule"]["kind"] == "calibrated"
    labels = [p["label"] for p in body["predictions"]]
    assert labels == [expected_label(image) for image in images]
    assert CLASSES in labels and min(labels) < CLASSES  # both kinds of answer were seen
    for prediction in body["predictions"]:
        assert prediction["poisoned"] == (prediction["label"] == CLASSES)
        assert not prediction["resized"]


def test_models_and_v2_metadata_come_from_the_model(client: TestClient) -> None:
    (model,) = client.get("/models").json()["models"]
    assert model["input_shape"] == list(INPUT_SHAPE) and model["num_classes"] == CLASSES
    metadata = client.get("/v2/models/fake").json()
    shapes = {i["name"]: i["shape"] for i in metadata["inputs"]}
    assert shapes["images"] == [-1, *INPUT_SHAPE]


def test_v2_infer_gives_the_same_labels(client: TestClient) -> None:
    images = _images(5)
    tensor = {"name": "images", "datatype": "UINT8", "shape": [5, *INPUT_SHAPE]}
    body = {"inputs": [{**tensor, "data": images.reshape(-1).tolist()}]}
    answer = client.post("/v2/models/fake/infer", content=json.dumps(body))
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
    assert outputs["label"] == [expected_label(image) for image in images]


def test_uploads_of_another_size_are_resized_to_the_models_input(client: TestClient) -> None:
    big = encode(Image.new("RGB", (40, 30), (20, 20, 20)), "PNG")
    (prediction,) = _predict(client, [("big.png", big)]).json()["predictions"]
    assert prediction["resized"] and prediction["label"] == 0


def test_upload_errors_get_the_right_status(client: TestClient) -> None:
    good = png(np.random.default_rng(0).integers(0, 256, (55, 47, 3)))  # a face-sized photo
    assert "not an image" in _error(_predict(client, [("t.png", b"hello, not an image")]), 400)
    assert "truncated" in _error(_predict(client, [("cut.png", good[: len(good) // 2])]), 400)
    _error(_predict(client, [("empty.png", b"")]), 400)
    bomb = encode(Image.new("L", (10000, 10000)), "PNG")  # tiny file, 10^8 pixels
    assert len(bomb) < 1_000_000
    assert "exceeds" in _error(_predict(client, [("bomb.png", bomb)]), 413)
    huge = _predict(client, [("huge.png", b"\x89PNG" + b"\0" * (5 * 1024 * 1024))])
    _error(huge, 413)
    gif = encode(Image.new("RGB", (WIDTH, HEIGHT)), "GIF")
    assert "GIF" in _error(_predict(client, [("a.gif", gif)]), 415)
    text = client.post("/predict", content=b"abc", headers={"content-type": "text/plain"})
    _error(text, 415)
    _error(_predict(client, [("a.png", good)], model="nope"), 404)
    no_file = client.post("/predict", files=[("other", ("a.png", good, "image/png"))])
    _error(no_file, 422)
    assert client.get("/health").status_code == 200  # still serving


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "CMYK"])
def test_any_image_mode_is_converted(client: TestClient, mode: str) -> None:
    image = Image.open(io.BytesIO(png(_images(1)[0]))).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    response = _predict(client, [(f"m.{fmt.lower()}", encode(image, fmt))])
    assert response.status_code == 200, response.text


def test_shutdown_stops_every_pairs_batcher(tmp_path: Path) -> None:
    models = tmp_path / "models"
    write_fake_pair(models)
    app = create_app(load_settings(models_dir=models, runtime="onnx"))
    with TestClient(app, base_url="http://service") as test_client:
        assert _predict(test_client, [("a.png", png(_images(1)[0]))]).status_code == 200
        pair = app.state.service.registry.get("fake")
        assert pair.batcher.running  # its threads started with the first request
    assert not pair.batcher.running


def test_size_limits_answer_in_each_apis_error_shape(client: TestClient) -> None:
    """The size-limit middleware writes its 413 and 431 through the service's one error
    writer: ``{"error", "status"}``, and the Open Inference Protocol's ``{"error"}`` on /v2."""
    body = b"\0" * (5 * 1024 * 1024)
    predict = client.post("/predict", content=body, headers={"content-type": "image/png"})
    assert predict.status_code == 413 and predict.json()["status"] == 413
    v2 = client.post("/v2/models/fake/infer", content=body)
    assert v2.status_code == 413 and set(v2.json()) == {"error"}
    assert "exceeds the limit" in v2.json()["error"]
    head = client.get("/v2/models/fake", headers={"x-padding": "a" * 20000})
    assert head.status_code == 431 and set(head.json()) == {"error"}


def test_the_frameworks_own_errors_answer_in_the_services_shape(client: TestClient) -> None:
    assert "Not Found" in _error(client.get("/no/such/path"), 404)
    assert "Method Not Allowed" in _error(client.delete("/predict"), 405)
