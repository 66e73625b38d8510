"""Admin /repair: access control, background repair, hot swap under load, 409, failures."""

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.support.admin import AUTH, DEMO_REPAIR, served_version, start_repair, wait_for_job
from tests.support.images import h5_images
from tests.support.service import ADMIN_TOKEN, copy_models, in_process


def test_admin_is_forbidden_without_a_configured_token(tiny_root: Path, tmp_path: Path) -> None:
    """The HTTP contract only: the app in this process, no server."""
    models = copy_models(tiny_root, tmp_path)

    async def calls() -> list[int]:
        body = {"model": "demo", "clean_data": "demo/clean_validation.h5"}
        settings = {"models_dir": models, "data_dir": tiny_root / "data"}
        async with in_process(**settings, admin_token=None) as client:
            return [
                (await client.post("/repair", json=body, headers=AUTH)).status_code,
                (await client.post("/repair", json=body)).status_code,
                (await client.get("/repair/x", headers=AUTH)).status_code,
            ]

    assert asyncio.run(calls()) == [403, 403, 403]


def test_wrong_token_bad_paths_and_unknown_options(admin_service, tiny_root: Path) -> None:
    body = {"model": "demo", "clean_data": "demo/clean_validation.h5"}
    assert (
        start_repair(admin_service.url, body, {"Authorization": "Bearer wrong"}).status_code == 401
    )
    assert start_repair(admin_service.url, body, {"Authorization": ADMIN_TOKEN}).status_code == 401
    outside = start_repair(admin_service.url, {**body, "clean_data": "../../etc/passwd"})
    assert outside.status_code == 400 and "outside" in outside.json()["error"]
    assert start_repair(admin_service.url, {**body, "clean_data": "/etc/passwd"}).status_code == 400
    # A symbolic link inside DATA_DIR that leads out of it is refused too.
    escape = tiny_root / "data" / "escape-link"
    escape.symlink_to("/")
    try:
        linked = start_repair(admin_service.url, {**body, "clean_data": "escape-link"})
        assert linked.status_code == 400 and "outside" in linked.json()["error"]
    finally:
        escape.unlink()
    # A body that is not JSON: 415; any body from a stranger: 401, before it is even parsed.
    text = httpx.post(
        admin_service.url + "/repair", content=b"x", headers={**AUTH, "content-type": "text/plain"}
    )
    assert text.status_code == 415
    stranger = httpx.post(admin_service.url + "/repair", content=b"{", headers={})
    assert stranger.status_code == 401
    assert start_repair(admin_service.url, {**body, "options": {"bogus": 1}}).status_code == 422
    assert start_repair(admin_service.url, {**body, "model": "nope"}).status_code == 404


def test_repair_swaps_under_load_with_no_failed_request(admin_service, tiny_root: Path) -> None:
    url = admin_service.url
    before = served_version(url)
    images, _ = h5_images(tiny_root / "data" / "demo" / "clean_test.h5", 4)
    files = [("file", (f"{i}.png", b, "image/png")) for i, b in enumerate(images)]
    failures: list[str] = []
    versions: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                response = client.post(url + "/predict", files=files)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                else:
                    versions.add(response.json()["version"])
                # Paced (about 15 requests a second each): steady traffic across the swap,
                # leaving the CPU to the repair and to the rest of the suite.
                stop.wait(0.05)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        body = DEMO_REPAIR
        started = start_repair(url, body)
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        second = start_repair(url, body)
        assert second.status_code == 409
        status = wait_for_job(url, job_id)
        assert status["status"] == "succeeded", status
        assert status["metrics"]["filter"]["clean_accuracy"] is not None
        deadline = time.monotonic() + 10
        while served_version(url) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        # Requests keep flowing on the new version (on a busy machine a request can take
        # over a second: wait for one answered by it, not for a fixed time).
        deadline = time.monotonic() + 30
        while status["version"] not in versions and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert failures == []
    after = served_version(url)
    assert after == status["version"] != before
    assert {before, after} <= versions  # answers came from both versions, none failed

    # Roll back from another process (an operator, or another replica): picked up in seconds.
    models_dir = admin_service.models_dir
    subprocess.run(
        [sys.executable, "-m", "repair", "rollback", "--out", str(models_dir / "demo")],
        check=True,
        timeout=120,
    )
    deadline = time.monotonic() + 15
    while served_version(url) != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served_version(url) == before


def test_failed_repair_leaves_the_serving_models_untouched(admin_service, tiny_root: Path) -> None:
    import h5py

    url = admin_service.url
    before = served_version(url)
    broken = tiny_root / "data" / "demo" / "broken_clean.h5"
    with h5py.File(broken, "w") as handle:
        handle.create_dataset("label", data=[0.0])
    refused = start_repair(url, {"model": "demo", "clean_data": "demo/broken_clean.h5"})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert "broken_clean.h5" in error and "lacks dataset(s) ['data']" in error
    assert "\n" not in error and "Traceback" not in error
    assert served_version(url) == before
    images, _ = h5_images(tiny_root / "data" / "demo" / "clean_test.h5", 1)
    response = httpx.post(url + "/predict", files=[("file", ("a.png", images[0], "image/png"))])
    assert response.status_code == 200 and response.json()["version"] == before
