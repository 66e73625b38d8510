"""Helpers for tests that drive the admin /repair endpoints of a running service."""

import time

import httpx

from tests.support.service import ADMIN_TOKEN, HTTP

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
QUICK = {"epochs": 2}
DEMO_REPAIR = {
    "model": "demo",
    "clean_data": "demo/clean_validation.h5",
    "poisoned_data": ["demo/poisoned_test_sunglasses.h5"],
    "clean_test": "demo/clean_test.h5",
    "options": QUICK,
}
"""A quick repair of the demo pair (2 epochs of fine-tuning)."""


def start_repair(url: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return HTTP.post(url + "/repair", json=body, headers=headers or AUTH)


def wait_for_job(
    url: str, job_id: str, timeout_s: float = 300, until=None, poll_s: float = 0.2
) -> dict:
    """Poll the job until it is final (or ``until(status)`` holds); return its status."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = HTTP.get(f"{url}/repair/{job_id}", headers=AUTH).json()
        if status["status"] in ("succeeded", "failed") or (until and until(status)):
            return status
        time.sleep(poll_s)
    raise TimeoutError(f"repair {job_id} did not get there in {timeout_s} s")


def served_version(url: str, model: str = "demo") -> str:
    models = HTTP.get(url + "/models").json()["models"]
    return next(m["version"] for m in models if m["name"] == model)
