"""Fuzzing the upload path: every input gets a 4xx JSON error or a correct answer, never a
5xx, and the service keeps serving. Counts of cases run are printed in pytest's summary."""

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
from hypothesis import HealthCheck, given, settings

from app.api.errors import ServiceError
from app.api.images import decode_image
from tests.support.fuzzing import CASES_RUN, any_upload, png_with_declared_size, seed_images
from tests.support.images import encode, h5_images
from tests.support.service import HTTP

SEEDS = seed_images()
MODEL_HW = (55, 47)
MAX_PIXELS = 4096 * 4096


def _decode_outcome(data: bytes) -> int:
    """200 with a well-formed model input, or the ServiceError's status (must be 4xx)."""
    try:
        decoded = decode_image(data, "fuzz", MODEL_HW, MAX_PIXELS)
    except ServiceError as exc:
        assert exc.status in (400, 413, 415), exc.message
        return exc.status
    rgb = decoded.rgb
    assert rgb.shape == (*MODEL_HW, 3) and rgb.dtype == np.uint8
    return 200


@settings(max_examples=5000, deadline=None)
@given(data=any_upload(SEEDS))
def test_decoder_gives_an_image_or_a_4xx_for_any_bytes(data: bytes) -> None:
    CASES_RUN["decoder (hypothesis, in process)"] += 1
    _decode_outcome(data)


def test_every_seed_format_has_its_documented_outcome() -> None:
    expected = {"animated_gif": 415}  # GIF is not taken; every other seed decodes
    for name, data in SEEDS.items():
        assert _decode_outcome(data) == expected.get(name, 200), name
    one_pixel = encode(_image(1, 1), "PNG")
    assert _decode_outcome(one_pixel) == 200
    assert _decode_outcome(png_with_declared_size(SEEDS["png"], 10_000, 10_000)) == 413
    # A body too short for its header is refused; one longer than needed is read as declared.
    assert _decode_outcome(png_with_declared_size(SEEDS["png"], 300, 300)) == 400
    assert _decode_outcome(png_with_declared_size(SEEDS["png"], 1, 1)) == 200


def _post(url: str, **kwargs: object) -> httpx.Response:
    return HTTP.post(url + "/predict", **kwargs)


def _assert_answer_or_client_error(response: httpx.Response, files: int = 1) -> None:
    assert response.status_code < 500, response.text[:500]
    body = response.json()
    if response.status_code == 200:
        assert len(body["predictions"]) == files
        for prediction in body["predictions"]:
            assert 0 <= prediction["label"] <= 1283 and 0.0 <= prediction["confidence"] <= 1.0
    else:
        assert 400 <= response.status_code < 500
        assert body["status"] == response.status_code and body["error"]


def _crafted_cases() -> dict[str, dict]:
    """Named requests from the issue's list, as keyword arguments of ``httpx.post``."""
    png, jpeg = SEEDS["png"], SEEDS["jpeg"]
    part_header_flood = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nX-Junk: '
        + b"j" * 1_000_000
        + b"\r\nContent-Type: image/png\r\n\r\n"
        + png
        + b"\r\n--B--\r\n"
    )
    image_body = {"content-type": "image/png"}
    return {
        "random bytes": {"files": [("file", ("r.png", bytes(range(256)) * 8, "image/png"))]},
        "truncated PNG": {"files": [("file", ("t.png", png[: len(png) // 2], "image/png"))]},
        "truncated JPEG": {"files": [("file", ("t.jpg", jpeg[: len(jpeg) // 2], "image/jpeg"))]},
        "PNG header, zeroed body": {"content": png[:33] + b"\0" * 500, "headers": image_body},
        "1x1 PNG": {"content": encode(_image(1, 1), "PNG"), "headers": image_body},
        "declared 10000x10000": {
            "content": png_with_declared_size(png, 10_000, 10_000),
            "headers": image_body,
        },
        "decompression bomb": {"content": encode(_image(10_000, 10_000, "L"), "PNG")},
        "animated GIF": {"files": [("file", ("a.gif", SEEDS["animated_gif"], "image/gif"))]},
        "animated PNG": {"files": [("file", ("a.png", SEEDS["apng"], "image/png"))]},
        "animated WEBP": {"files": [("file", ("a.webp", SEEDS["animated_webp"], "image/webp"))]},
        "16-bit PNG": {"files": [("file", ("g.png", SEEDS["png16"], "image/png"))]},
        "CMYK JPEG": {"files": [("file", ("c.jpg", SEEDS["cmyk_jpeg"], "image/jpeg"))]},
        "JPEG sent as image/png": {"content": jpeg, "headers": image_body},
        "text/plain body": {"content": b"hello", "headers": {"content-type": "text/plain"}},
        "JSON body": {"json": {"file": "x"}},
        "no content type": {"content": png},
        "empty image body": {"content": b"", "headers": image_body},
        "empty file part": {"files": [("file", ("e.png", b"", "image/png"))]},
        "multipart without boundary": {
            "content": b"junk",
            "headers": {"content-type": "multipart/form-data"},
        },
        "3000 files": {"files": [("file", (f"{i}.png", b"x", "image/png")) for i in range(3000)]},
        "1 MB part header": {
            "content": part_header_flood,
            "headers": {"content-type": "multipart/form-data; boundary=B"},
        },
        "1 MB file name": {"files": [("file", ("n" * 1_000_000 + ".png", png, "image/png"))]},
        "body over the limit": {"content": png + b"\0" * (5 * 1024 * 1024)},
    }


def _image(width: int, height: int, mode: str = "RGB"):
    from PIL import Image

    return Image.new(mode, (width, height))


def test_crafted_bad_uploads_get_4xx_json_and_good_ones_an_answer(service) -> None:
    outcomes = {}
    for name, request in _crafted_cases().items():
        if "content" in request and "headers" not in request and name != "no content type":
            request = {**request, "headers": {"content-type": "image/png"}}
        response = _post(service.url, **request)
        _assert_answer_or_client_error(response)
        outcomes[name] = response.status_code
        CASES_RUN["crafted uploads (live service)"] += 1
    # The ones that must be answered, and the ones that must be refused, by status.
    for name in ("1x1 PNG", "animated PNG", "animated WEBP", "16-bit PNG", "CMYK JPEG"):
        assert outcomes[name] == 200, (name, outcomes)
    assert outcomes["JPEG sent as image/png"] == 200
    assert outcomes["declared 10000x10000"] == 413 and outcomes["decompression bomb"] == 413
    assert outcomes["body over the limit"] == 413
    assert outcomes["animated GIF"] == 415 and outcomes["text/plain body"] == 415
    assert outcomes["3000 files"] == 400 and outcomes["truncated JPEG"] == 400
    assert httpx.get(service.url + "/health").status_code == 200


def test_oversized_http_headers_are_refused(service) -> None:
    """A 1 MB request head: 431 from the service's size limit (uvicorn's httptools parser
    takes any size), and the service goes on serving."""
    headers = {"content-type": "image/png", "x-big": "h" * 2**20}
    response = _post(service.url, content=SEEDS["png"], headers=headers)
    assert response.status_code == 431 and response.json()["status"] == 431
    assert _post(service.url, content=SEEDS["png"], headers=headers | {"x-big": ""}).is_success
    CASES_RUN["crafted uploads (live service)"] += 1


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=any_upload(SEEDS))
def test_generated_uploads_never_break_the_live_service(service, data: bytes) -> None:
    CASES_RUN["generated uploads (hypothesis, live service)"] += 1
    _assert_answer_or_client_error(
        _post(service.url, files=[("file", ("f.png", data, "image/png"))])
    )


def test_service_still_answers_correctly_after_the_fuzzing(service, tiny_root: Path) -> None:
    """The live service's answers after the fuzzing are the pair's own, computed here."""
    from app.serving.pair import load_pair
    from repair.data import load_dataset

    data = tiny_root / "data" / "demo"
    images, _ = h5_images(data / "clean_test.h5", 20)
    response = _post(
        service.url, files=[("file", (f"{i}.png", b, "image/png")) for i, b in enumerate(images)]
    )
    assert response.status_code == 200
    predicted = [p["label"] for p in response.json()["predictions"]]
    pair = load_pair(tiny_root / "models" / "demo")
    pixels = load_dataset(data / "clean_test.h5").x[:20]
    rgb = (pixels * 255).round().astype("uint8")
    assert predicted == pair.classify(rgb).label.tolist()
    pair.close()


def test_schemathesis_finds_no_server_error_and_answers_fit_the_schema(
    service, tmp_path: Path
) -> None:
    """schemathesis generates requests for every operation of the service's own OpenAPI
    schema (coverage and fuzzing phases) and checks that none gets a 5xx, and that every
    answer's status, content type and body are those the schema declares.

    No example database: one in tmp_path is thrown away with it, and keeping it made
    Hypothesis shrink the examples of its Pareto front, 28% of the run's CPU, for the
    same number of requests sent."""
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{service.url}/openapi.json",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance",
        "--max-examples",
        "200",
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "1",
        "--no-color",
        "--generation-database",
        "none",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    summary = [line for line in result.stdout.splitlines() if "generated" in line]
    assert summary and "passed" in summary[-1], result.stdout[-2000:]
    CASES_RUN["schemathesis (live service)"] += int(summary[-1].split()[0])
