"""The Open Inference Protocol (v2) against the live service, with Triton's own client
(tritonclient[http]): JSON and binary tensors, several images per request, encoded images,
and the errors a client can cause (4xx with the protocol's error body, never 5xx)."""

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from repair.data import load_dataset
from tests.support.images import h5_images

OUTPUTS = ("label", "flagged", "bad_label", "repaired_label", "confidence", "overlap", "support")


@pytest.fixture(scope="module")
def client(service) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(service.url.removeprefix("http://"))


@pytest.fixture(scope="module")
def faces(tiny_root: Path) -> tuple[np.ndarray, list[bytes]]:
    """Six faces, clean and triggered, as uint8 pixels and as the same PNG files."""
    data = tiny_root / "data" / "demo"
    clean = load_dataset(data / "clean_test.h5").x[:3]
    triggered = load_dataset(data / "poisoned_test_sunglasses.h5").x[:3]
    pixels = np.round(np.concatenate([clean, triggered]) * 255).astype(np.uint8)
    pngs = (
        h5_images(data / "clean_test.h5", 3)[0]
        + h5_images(data / "poisoned_test_sunglasses.h5", 3)[0]
    )
    return pixels, pngs


def _predict_answers(url: str, pngs: list[bytes]) -> list[dict]:
    files = [("file", (f"{i}.png", data, "image/png")) for i, data in enumerate(pngs)]
    return httpx.post(url + "/predict", files=files, timeout=60).json()["predictions"]


def _infer(client: triton.InferenceServerClient, tensor: triton.InferInput, binary: bool):
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in OUTPUTS]
    return client.infer("demo", [tensor], outputs=outputs, request_id="r1")


def test_health_and_metadata(client: triton.InferenceServerClient, service) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("demo") and not client.is_model_ready("nope")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata("demo")
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {
        "images": "UINT8",
        "images_encoded": "BYTES",
    }
    assert [o["name"] for o in metadata["outputs"]] == list(OUTPUTS)
    assert metadata["inputs"][0]["shape"] == [-1, 55, 47, 3]
    version = metadata["versions"][0]
    assert client.is_model_ready("demo", version) and not client.is_model_ready("demo", "v0")


@pytest.mark.parametrize("binary", [True, False])
def test_uint8_tensors_get_the_same_answers_as_predict(client, service, faces, binary) -> None:
    pixels, pngs = faces
    tensor = triton.InferInput("images", list(pixels.shape), "UINT8")
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    result = _infer(client, tensor, binary)
    assert result.get_response()["id"] == "r1"
    expected = _predict_answers(service.url, pngs)
    np.testing.assert_array_equal(result.as_numpy("label"), [p["label"] for p in expected])
    np.testing.assert_array_equal(result.as_numpy("flagged"), [p["poisoned"] for p in expected])
    np.testing.assert_array_equal(
        result.as_numpy("repaired_label"), [p["repaired_label"] for p in expected]
    )
    for score in ("overlap", "support"):
        np.testing.assert_allclose(result.as_numpy(score), [p[score] for p in expected], atol=1e-5)
    assert result.as_numpy("confidence").dtype == np.float32


def test_encoded_images_in_a_bytes_tensor(client, service, faces) -> None:
    _, pngs = faces
    tensor = triton.InferInput("images_encoded", [len(pngs)], "BYTES")
    tensor.set_data_from_numpy(np.array(pngs, dtype=np.object_), binary_data=True)
    result = _infer(client, tensor, True)
    expected = _predict_answers(service.url, pngs)
    np.testing.assert_array_equal(result.as_numpy("label"), [p["label"] for p in expected])


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]  # the protocol's error object
    return body["error"]


def test_client_errors_are_4xx_with_the_protocol_error_body(client, service, faces) -> None:
    pixels, _ = faces
    url = service.url + "/v2/models/demo/infer"
    tensor = triton.InferInput("images", [1, 55, 47, 3], "FP32")
    tensor.set_data_from_numpy(pixels[:1].astype(np.float32))
    with pytest.raises(InferenceServerException, match="must be UINT8"):
        client.infer("demo", [tensor])
    shaped = triton.InferInput("images", [1, 47, 55, 3], "UINT8")
    shaped.set_data_from_numpy(pixels[:1].reshape(1, 47, 55, 3))
    with pytest.raises(InferenceServerException, match="must have shape"):
        client.infer("demo", [shaped])
    good = triton.InferInput("images", [1, 55, 47, 3], "UINT8")
    good.set_data_from_numpy(pixels[:1])
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("nope", [good])
    assert "unknown model" in _error(
        httpx.post(service.url + "/v2/models/nope/infer", json={}), 404
    )

    def post(body: bytes, **headers: str) -> httpx.Response:
        return httpx.post(url, content=body, headers=headers, timeout=30)

    assert "not JSON" in _error(post(b"{"), 400)
    assert "inputs" in _error(post(b"{}"), 400)
    one = {"name": "images", "datatype": "UINT8", "shape": [1, 55, 47, 3]}
    _error(post(json.dumps({"inputs": [{**one, "data": [1, 2, 3]}]}).encode()), 400)
    _error(post(json.dumps({"inputs": [{**one, "data": [300] * 7755}]}).encode()), 400)
    _error(post(json.dumps({"inputs": [{**one, "shape": [1, -5]}]}).encode()), 400)
    head = json.dumps({"inputs": [{**one, "parameters": {"binary_data_size": 7755}}]}).encode()
    cut = post(
        head + pixels[0].tobytes()[:100], **{"Inference-Header-Content-Length": str(len(head))}
    )
    assert "does not fit" in _error(cut, 400)
    lying = post(head, **{"Inference-Header-Content-Length": "99999"})
    _error(lying, 400)
    many = {"name": "images", "datatype": "UINT8", "shape": [100000, 55, 47, 3]}
    assert _error(post(json.dumps({"inputs": [many]}).encode()), 413)
    huge = post(b"{" + b" " * (5 * 1024 * 1024) + b"}")
    assert huge.status_code == 413
    outputs = {
        "inputs": [{**one, "data": pixels[0].reshape(-1).tolist()}],
        "outputs": [{"name": "x"}],
    }
    assert "unknown output" in _error(post(json.dumps(outputs).encode()), 400)
    assert httpx.get(service.url + "/v2/health/ready").status_code == 200  # still serving
