"""Who may call what: API keys and a rate limit on /predict, admin tokens, no secrets in
logs or in the image."""

from pathlib import Path

import httpx

from tests.support.admin import AUTH
from tests.support.images import h5_images
from tests.support.service import ADMIN_TOKEN, ONNX_ONLY, copy_models, start_service

KEYS = ("predict-key-one-7f3a", "predict-key-two-91c4")


def test_api_keys_rate_limit_and_no_secret_in_the_logs(tiny_root: Path, tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    service = start_service(
        copy_models(tiny_root, tmp_path),
        tiny_root,
        log,
        {"log_level": "debug"},
        API_KEYS=",".join(KEYS),
        RATE_LIMIT="5/minute",
        ADMIN_TOKEN=ADMIN_TOKEN,
        **ONNX_ONLY,
    )
    image = h5_images(tiny_root / "data" / "demo" / "clean_test.h5", 1)[0][0]

    def predict(headers: dict) -> httpx.Response:
        files = [("file", ("a.png", image, "image/png"))]
        return httpx.post(service.url + "/predict", files=files, headers=headers, timeout=30)

    try:
        refused = predict({})
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert predict({"X-API-Key": "not-a-key"}).status_code == 401
        assert predict({"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 401
        for path in ("/health", "/ready", "/metrics"):  # probes and scrapers need no key
            assert httpx.get(service.url + path).status_code == 200
        # The keys are documented in the OpenAPI schema, on the inference route only.
        openapi = httpx.get(service.url + "/openapi.json").json()
        assert "APIKeyHeader" in openapi["components"]["securitySchemes"]
        assert openapi["paths"]["/predict"]["post"]["security"]
        assert "security" not in openapi["paths"]["/health"]["get"]
        # 5 requests a minute per key: the sixth of key one is refused, key two is not.
        statuses = [predict({"X-API-Key": KEYS[0]}).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        limited = predict({"X-API-Key": KEYS[0]})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json()["status"] == 429
        assert predict({"Authorization": f"Bearer {KEYS[1]}"}).status_code == 200
        # Admin: a wrong token is 401, the right one gets through.
        bad_admin = {"Authorization": f"Bearer {KEYS[0]}"}
        assert httpx.get(service.url + "/repair/x", headers=bad_admin).status_code == 401
        assert httpx.get(service.url + "/repair/x", headers=AUTH).status_code == 404
    finally:
        service.stop()
    text = log.read_text(errors="replace")
    assert "POST /predict" in text  # the debug log does record the requests...
    for secret in (*KEYS, ADMIN_TOKEN, "not-a-key"):
        assert secret not in text  # ...but no key or token, right or wrong
