"""Faults during repair and serving, with real processes, signals and file systems: a killed
repair worker, a publisher killed mid-swap, a models folder that fills up or is read-only,
and graceful shutdown."""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.process import descendants
from modelstore import PAIR_ONNX, discard_partial
from tests.support.admin import DEMO_REPAIR, served_version, start_repair, wait_for_job
from tests.support.images import h5_images
from tests.support.service import ADMIN_TOKEN, ONNX_ONLY, ROOT, copy_models, start_service


def _one_image(tiny_root: Path) -> list:
    images, _ = h5_images(tiny_root / "data" / "demo" / "clean_test.h5", 1)
    return [("file", ("a.png", images[0], "image/png"))]


def _leftovers(models: Path) -> list[str]:
    """Partial output of a repair: staging folders and temporary links."""
    return [p.name for p in (models / ".versions" / "demo").glob(".staging-*")] + [
        p.name for p in models.glob(".demo.link-*")
    ]


def _repair_worker_pid(service_pid: int) -> int:
    """The spawned repair worker among the service's children (not the resource tracker)."""
    for child in descendants(service_pid):
        if "spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
            return int(child)
    raise LookupError("no repair worker process")


def test_killed_repair_worker_fails_the_job_and_leaves_nothing(
    tiny_root: Path, tmp_path: Path
) -> None:
    models = copy_models(tiny_root, tmp_path)
    service = start_service(
        models, tiny_root, tmp_path / "log", ADMIN_TOKEN=ADMIN_TOKEN, **ONNX_ONLY
    )
    try:
        before = served_version(service.url)
        long_repair = {**DEMO_REPAIR, "options": {"epochs": 150}}  # ~10 s of fine-tuning
        job = start_repair(service.url, long_repair).json()["job_id"]
        status = wait_for_job(
            service.url, job, until=lambda s: s["stage"] == "fine-tune" and s["progress"] > 0.2
        )
        assert status["status"] == "running", status
        os.kill(_repair_worker_pid(service.process.pid), signal.SIGKILL)
        status = wait_for_job(service.url, job)
        assert status["status"] == "failed" and "SIGKILL" in status["error"], status
        assert served_version(service.url) == before
        response = httpx.post(service.url + "/predict", files=_one_image(tiny_root))
        assert response.status_code == 200 and response.json()["version"] == before
        assert _leftovers(models) == []
        # The next repair runs and swaps in as usual.
        job = start_repair(service.url, DEMO_REPAIR).json()["job_id"]
        status = wait_for_job(service.url, job)
        assert status["status"] == "succeeded", status
        assert served_version(service.url) == status["version"] != before
    finally:
        service.stop()


PUBLISHER = """
import json, shutil, sys, time
from pathlib import Path
from modelstore import new_version_id, publish, staging_folder

out, sources = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
while True:
    for source in sources:
        staging = staging_folder(out)
        for path in source.iterdir():
            shutil.copyfile(path, staging / path.name)
        time.sleep(0.01)
        publish(staging, out, new_version_id())
"""


def _complete_version(link: Path) -> str:
    """The manifest's version id when every file the manifest names has its hash, else raise."""
    from modelstore import sha256_file

    folder = link.resolve(strict=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert sha256_file(folder / name) == digest, f"{folder}: {name} is from another version"
    return manifest["version"]


def test_publisher_killed_mid_swap_leaves_a_complete_version_that_serves(
    tiny_root: Path, tmp_path: Path
) -> None:
    """SIGKILL the process that publishes new versions at random moments, many times: the
    model folder always points at one complete version (never a mix), and a service started
    on it serves that version."""
    demo = (tiny_root / "models" / "demo").resolve()
    # Two versions with different files: B and B' swapped, manifest hashes to match.
    flipped = tmp_path / "flipped"
    flipped.mkdir()
    shutil.copyfile(demo / "bad.h5", flipped / "repaired.h5")
    shutil.copyfile(demo / "repaired.h5", flipped / "bad.h5")
    manifest = json.loads((demo / "manifest.json").read_text())
    files = manifest["files"]
    files["bad.h5"], files["repaired.h5"] = files["repaired.h5"], files["bad.h5"]
    # The exported pair would be the unflipped one: leave it out (the service exports its own).
    del files[PAIR_ONNX]
    for name in set(files) - {"bad.h5", "repaired.h5"}:
        shutil.copyfile(demo / name, flipped / name)
    (flipped / "manifest.json").write_text(json.dumps(manifest))
    models = tmp_path / "models"
    models.mkdir()
    out = models / "demo"
    rng = random.Random(0)
    kills = 0
    for _ in range(25):
        publisher = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, str(out), str(demo), str(flipped)], cwd=ROOT
        )
        time.sleep(rng.uniform(0.2, 1.2))
        publisher.send_signal(signal.SIGKILL)
        publisher.wait()
        kills += 1
        if out.is_symlink():
            _complete_version(out)
    assert kills == 25 and out.is_symlink()
    discard_partial(out)  # what the next publisher or a restarted service does
    assert _leftovers(models) == []
    serving = _complete_version(out)
    service = start_service(models, tiny_root, tmp_path / "log", **ONNX_ONLY)
    try:
        assert httpx.get(service.url + "/ready").status_code == 200
        response = httpx.post(service.url + "/predict", files=_one_image(tiny_root))
        assert response.status_code == 200 and response.json()["version"] == serving
    finally:
        service.stop()


def test_service_killed_while_a_repair_writes_comes_back_serving_a_complete_version(
    tiny_root: Path, tmp_path: Path
) -> None:
    """SIGKILL the service and its repair worker while the worker writes and publishes the
    new version, restart the service on the same folder: it serves the old version or the
    new one, whole, and the dead worker's partial files are gone."""
    models = copy_models(tiny_root, tmp_path)
    service = start_service(
        models, tiny_root, tmp_path / "log1", ADMIN_TOKEN=ADMIN_TOKEN, **ONNX_ONLY
    )
    killed_while_writing = False
    try:
        before = served_version(service.url)
        for _ in range(3):  # the write stage lasts about a second: catch it, or try again
            job = start_repair(service.url, DEMO_REPAIR).json()["job_id"]
            status = wait_for_job(
                service.url, job, until=lambda s: s["stage"] == "write", poll_s=0.02
            )
            if status["status"] == "running":
                for pid in [*descendants(service.process.pid), service.process.pid]:
                    os.kill(pid, signal.SIGKILL)
                killed_while_writing = True
                break
    finally:
        service.stop()
    assert killed_while_writing
    restarted = start_service(
        models, tiny_root, tmp_path / "log2", ADMIN_TOKEN=ADMIN_TOKEN, **ONNX_ONLY
    )
    try:
        serving = served_version(restarted.url)
        assert serving == _complete_version(models / "demo")
        assert serving >= before  # the old version, or the one the killed repair published
        response = httpx.post(restarted.url + "/predict", files=_one_image(tiny_root))
        assert response.status_code == 200 and response.json()["version"] == serving
        assert _leftovers(models) == []  # removed at start-up
    finally:
        restarted.stop()


def _user_namespaces_work() -> bool:
    try:
        probe = ["unshare", "--user", "--map-root-user", "--mount", "true"]
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# The service runs in its own mount namespace with MODELS_DIR on a small tmpfs holding a
# copy of the demo pair; "ro" remounts it read-only before the service starts.
TMPFS_SERVICE = (
    'set -e; mount -t tmpfs -o size=24m tmpfs "$MODELS_DIR"; '
    'cp -r "$DEMO_VERSION" "$MODELS_DIR/demo"; '
    'if [ "$MODELS_MODE" = ro ]; then mount -o remount,ro "$MODELS_DIR"; fi; exec "$@"'
)


@pytest.mark.skipif(not _user_namespaces_work(), reason="unshare --user --mount not permitted")
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_full_or_read_only_models_folder_fails_the_repair_old_models_serve(
    tiny_root: Path, tmp_path: Path, fault: str
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    service = start_service(
        models,
        tiny_root,
        tmp_path / "log",
        {
            "wrapper": (
                "unshare",
                "--user",
                "--map-root-user",
                "--mount",
                "sh",
                "-c",
                TMPFS_SERVICE,
                "sh",
            )
        },
        ADMIN_TOKEN=ADMIN_TOKEN,
        DEMO_VERSION=str((tiny_root / "models" / "demo").resolve()),
        MODELS_MODE="ro" if fault == "read-only" else "rw",
        **ONNX_ONLY,
    )
    # The service's own view of its models folder (its mount namespace), from outside.
    inside = Path(f"/proc/{service.process.pid}/root") / models.relative_to("/")
    try:
        before = served_version(service.url)
        if fault == "read-only":
            job = start_repair(service.url, DEMO_REPAIR).json()["job_id"]
            status = wait_for_job(service.url, job)
            assert status["status"] == "failed" and "Read-only file system" in status["error"]
        else:
            # The disk fills up while the repair trains (long enough to fill a 24 MB
            # tmpfs many times over): the write at the end fails.
            job = start_repair(service.url, {**DEMO_REPAIR, "options": {"epochs": 40}})
            job = job.json()["job_id"]
            wait_for_job(service.url, job, until=lambda s: s["stage"] == "fine-tune")
            _fill(inside / "filler")
            status = wait_for_job(service.url, job)
            assert status["status"] == "failed", status
            assert "No space left on device" in status["error"], status
            assert _leftovers(inside) == []
            # With the disk still full, the next repair fails at once, before training.
            job = start_repair(service.url, DEMO_REPAIR).json()["job_id"]
            status = wait_for_job(service.url, job)
            assert "not enough space" in status["error"] and status["stage"] == "load"
            (inside / "filler").unlink()
            job = start_repair(service.url, DEMO_REPAIR).json()["job_id"]
            assert wait_for_job(service.url, job)["status"] == "succeeded"
        if fault == "read-only":
            assert served_version(service.url) == before
        response = httpx.post(service.url + "/predict", files=_one_image(tiny_root))
        assert response.status_code == 200
    finally:
        service.stop()


def _fill(path: Path) -> None:
    """Write zeros to ``path`` until the file system is full."""
    block = b"\0" * 2**20
    with open(path, "wb") as handle:
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError:
            pass


def test_sigterm_lets_the_request_in_flight_finish(tiny_root: Path, tmp_path: Path) -> None:
    models = copy_models(tiny_root, tmp_path)
    service = start_service(models, tiny_root, tmp_path / "log", **ONNX_ONLY)
    image = h5_images(tiny_root / "data" / "demo" / "clean_test.h5", 1)[0][0]
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(image)}\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", service.port), timeout=30) as sock:
            sock.sendall(head + image[:100])  # the request is in flight: half its body sent
            time.sleep(0.3)
            service.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert service.process.poll() is None  # still waiting for our request
            sock.sendall(image[100:])
            response = _read_http_response(sock)
        assert response.startswith(b"HTTP/1.1 200"), response[:300]
        assert json.loads(response.split(b"\r\n\r\n", 1)[1])["predictions"][0]["label"] >= 0
        # Uvicorn exits once it is done, re-raising the signal it handled (status -15).
        assert service.process.wait(timeout=30) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.ConnectError):  # and it no longer takes new requests
            httpx.get(service.url + "/health")
    finally:
        service.stop()


def _read_http_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body
