"""Build the two images and run them as a user would, with a real Docker engine.

``python scripts/container_test.py`` (CI runs it from ``scripts/test.sh``):

1. builds ``badnet-filter:serve``, ``badnet-filter:repair`` and ``badnet-filter:proxy``
   from this checkout;
2. the repair image alone: ready, labels a clean demo face and flags a triggered one, runs
   as uid 10001, an admin repair inside it succeeds and its new version serves, its
   HEALTHCHECK reports healthy;
3. the serving image alone (no TensorFlow) on those models: ready, and how fast;
4. ``deploy/test/compose.yml``: the entry point (HAProxy), a repair replica and two
   serving replicas sharing the models volume; a repair sent through replica 1 is served
   by replica 2 within ``RELOAD_INTERVAL_S``; under steady load through the entry point,
   a serving replica crashed (SIGKILL, restarted by its restart policy) and one stopped
   gracefully lose no request and give no wrong answer; ``down`` and ``up`` again keep
   the published version.

It prints one ``container-test:`` line per measurement. Docker comes from
``../shared/tools/container-engine.sh`` (started here, stopped at the end); without it the
script says so and exits 0.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT.parent / "shared" / "tools" / "container-engine.sh"
COMPOSE = ROOT / "deploy" / "test" / "compose.yml"
TOKEN = "container-test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def say(text: str) -> None:
    print(f"container-test: {text}", flush=True)


def run(*command: str, timeout: float = 1800, **kwargs: object) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def build(target: str) -> float:
    started = time.monotonic()
    run("docker", "build", "--network", "host", "--target", target,
        "-t", f"badnet-filter:{target}", str(ROOT), timeout=3600)  # fmt: skip
    return time.monotonic() - started


def image_mb(tag: str) -> float:
    return int(run("docker", "image", "inspect", tag, "--format", "{{.Size}}")) / 1e6


def wait_ready(url: str, timeout_s: float = 300) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready in {timeout_s} s")


def check_answers(url: str, faces: Path) -> None:
    """A clean demo face gets its label, a triggered one N."""
    clean = sorted(faces.glob("clean_*.png"))[0]
    triggered = sorted(faces.glob("sunglasses_*.png"))[0]
    files = [("file", (p.name, p.read_bytes(), "image/png")) for p in (clean, triggered)]
    body = httpx.post(url + "/predict", files=files, timeout=30).json()
    first, second = body["predictions"]
    models = httpx.get(url + "/models", timeout=10).json()["models"]
    poisoned_label = next(m["poisoned_label"] for m in models if m["name"] == body["model"])
    label = int(clean.stem.rsplit("label", 1)[1])
    assert first["label"] == label and not first["poisoned"], first
    assert second["poisoned"] and second["label"] == poisoned_label, second


def version(url: str) -> str:
    models = httpx.get(url + "/models", timeout=10).json()["models"]
    return next(m["version"] for m in models if m["name"] == "demo")


def repair(url: str) -> dict:
    """A quick admin repair of the demo through ``url``; its final job status."""
    body = {
        "model": "demo",
        "clean_data": "demo/clean_validation.h5",
        "clean_test": "demo/clean_test.h5",
        "options": {"epochs": 2},
    }
    started = httpx.post(url + "/repair", json=body, headers=AUTH, timeout=30)
    assert started.status_code == 202, started.text
    job = started.json()["job_id"]
    again = httpx.post(url + "/repair", json=body, headers=AUTH, timeout=30)
    assert again.status_code == 409, again.text  # one repair of a model at a time
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/repair/{job}", headers=AUTH, timeout=10).json()
        if status["status"] in ("succeeded", "failed"):
            assert status["status"] == "succeeded", status
            return status
        time.sleep(1)
    raise TimeoutError("repair did not finish")


def health(container: str, timeout_s: float = 120) -> str:
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        state = run("docker", "inspect", container, "--format", "{{.State.Health.Status}}").strip()
        if state == "healthy":
            break
        time.sleep(2)
    return state


def single_containers(work: Path) -> None:
    url = "http://127.0.0.1:18080"
    run("docker", "run", "-d", "--name", "bf-repair", "--network", "host",
        "-e", "PORT=18080", "-e", "HOST=127.0.0.1", "-e", f"ADMIN_TOKEN={TOKEN}",
        "badnet-filter:repair")  # fmt: skip
    try:
        say(f"repair image ready in {wait_ready(url):.1f} s")
        uid = run("docker", "exec", "bf-repair", "id", "-u").strip()
        assert uid == "10001", uid
        say(f"runs as uid {uid}")
        run("docker", "cp", "bf-repair:/srv/data/demo/faces", str(work / "faces"))
        check_answers(url, work / "faces")
        say("a clean demo face gets its label, a triggered one N")
        before = version(url)
        status = repair(url)
        assert version(url) == status["version"] != before
        say(f"admin repair inside the container succeeded, version {status['version']} serves")
        state = health("bf-repair")
        assert state == "healthy", state
        say(f"HEALTHCHECK: {state}")
        run("docker", "cp", "bf-repair:/srv/models", str(work / "models"))
    finally:
        subprocess.run(["docker", "rm", "-f", "bf-repair"], capture_output=True, check=False)

    url = "http://127.0.0.1:18090"
    models = work / "models"
    subprocess.run(["chmod", "-R", "a+rwX", str(models)], check=True)
    started = time.monotonic()
    run("docker", "run", "-d", "--name", "bf-serve", "--network", "host",
        "-e", "PORT=18090", "-e", "HOST=127.0.0.1", "-v", f"{models}:/srv/models",
        "badnet-filter:serve")  # fmt: skip
    try:
        wait_ready(url, timeout_s=60)
        say(f"serving image ready in {time.monotonic() - started:.1f} s after docker run "
            "(one pair, ONNX Runtime, no TensorFlow)")  # fmt: skip
        check_answers(url, work / "faces")
        probe = "import importlib.util as u; print(u.find_spec('tensorflow') is None)"
        loaded = run("docker", "exec", "bf-serve", "python", "-c", probe)
        assert loaded.strip() == "True", "TensorFlow is installed in the serving image"
        say("the serving image answers the same faces and has no TensorFlow")
    finally:
        subprocess.run(["docker", "rm", "-f", "bf-serve"], capture_output=True, check=False)


def compose(*args: str) -> str:
    env = {"ADMIN_TOKEN": TOKEN, "PATH": "/usr/local/bin:/usr/bin:/bin"}
    return run("docker-compose", "--compatibility", "-p", "bftest", "-f", str(COMPOSE), *args,
               env=env, timeout=600)  # fmt: skip


ENTRY = "http://127.0.0.1:18000"
LOAD_THREADS = 4


def crash_replica() -> str:
    """SIGKILL to replica 1's process, as a crash: its restart policy brings it back."""
    container = "bftest_filter-1_1"
    pid = int(run("docker", "inspect", container, "--format", "{{.State.Pid}}"))
    os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    wait_ready("http://127.0.0.1:18001", timeout_s=120)
    return "a serving replica crashed (SIGKILL), restarted by its restart policy"


def stop_replica() -> str:
    """``docker stop`` on replica 2 (SIGTERM, a graceful shutdown), then started again."""
    run("docker", "stop", "-t", "20", "bftest_filter-2_1")
    run("docker", "start", "bftest_filter-2_1")
    wait_ready("http://127.0.0.1:18002", timeout_s=120)
    return "a serving replica stopped gracefully (docker stop), then started"


def under_load(entry: str, faces: Path, fault) -> str:  # fault: () -> its description
    """Steady /predict load through ``entry`` while ``fault`` runs; every answer is checked
    against the one given before the fault. Returns the measurement line."""
    files = sorted(faces.glob("*.png"))[:8]
    expected = {}
    for face in files:
        body = httpx.post(
            entry + "/predict",
            files=[("file", (face.name, face.read_bytes(), "image/png"))],
            timeout=30,
        ).json()
        expected[face.name] = body["predictions"][0]["label"]
    counts = {"sent": 0, "answered": 0, "failed": 0, "wrong": 0}
    lock, stop = threading.Lock(), threading.Event()

    def client(offset: int) -> None:
        with httpx.Client(timeout=30) as http:
            index = offset
            while not stop.is_set():
                face = files[index % len(files)]
                index += 1
                outcome = "failed"
                try:
                    answer = http.post(
                        entry + "/predict",
                        files=[("file", (face.name, face.read_bytes(), "image/png"))],
                    )
                    if answer.status_code == 200:
                        label = answer.json()["predictions"][0]["label"]
                        outcome = "answered" if label == expected[face.name] else "wrong"
                except httpx.HTTPError:
                    pass
                with lock:
                    counts["sent"] += 1
                    counts[outcome] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    started = time.monotonic()
    description = fault()
    recovered = time.monotonic() - started
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join()
    assert counts["failed"] == 0 and counts["wrong"] == 0, (description, counts)
    return (
        f"{description} under {LOAD_THREADS} clients through the entry point: sent "
        f"{counts['sent']}, answered {counts['answered']}, failed {counts['failed']}, wrong "
        f"{counts['wrong']}; the replica served again after {recovered:.1f} s"
    )


def two_replicas(work: Path) -> None:
    replica_1, replica_2 = "http://127.0.0.1:18001", "http://127.0.0.1:18002"
    compose("up", "-d")
    try:
        for url in ("http://127.0.0.1:18100", replica_1, replica_2, ENTRY):
            wait_ready(url)
        before = version(replica_2)
        status = repair(replica_1)  # sent on to the repair replica
        published = time.monotonic()
        while version(replica_2) != status["version"]:
            assert time.monotonic() - published < 30, "replica 2 never served the new version"
            time.sleep(0.05)
        picked_up = time.monotonic() - published
        say(
            f"a repair through replica 1 was served by replica 2 {picked_up:.2f} s after the "
            f"job succeeded (RELOAD_INTERVAL_S=1); {before} -> {status['version']}"
        )
        check_answers(replica_2, work / "faces")
        for fault in (crash_replica, stop_replica):
            say(under_load(ENTRY, work / "faces", fault))
        compose("down")
        compose("up", "-d")
        for url in (replica_1, replica_2):
            wait_ready(url)
            assert version(url) == status["version"], version(url)
        say("docker-compose down and up again: both replicas serve the published version")
    finally:
        subprocess.run(
            ["docker-compose", "-p", "bftest", "-f", str(COMPOSE), "down", "-v"],
            capture_output=True, check=False, env={"ADMIN_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        )  # fmt: skip


def main() -> int:
    if not ENGINE.is_file():
        say(f"skipped: no container engine tool at {ENGINE}")
        return 0
    started = time.monotonic()
    run("bash", str(ENGINE), "start", timeout=900)
    work = Path(tempfile.mkdtemp(prefix="container-test-"))
    try:
        serve_s, repair_s = build("serve"), build("repair")
        run("docker", "build", "--network", "host", "-t", "badnet-filter:proxy",
            str(ROOT / "deploy" / "haproxy"), timeout=900)  # fmt: skip
        say(f"built serve in {serve_s:.0f} s, repair (with the demo models) in {repair_s:.0f} s")
        say(f"image sizes: serve {image_mb('badnet-filter:serve'):.0f} MB, "
            f"repair {image_mb('badnet-filter:repair'):.0f} MB")  # fmt: skip
        single_containers(work)
        two_replicas(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["bash", str(ENGINE), "stop"], capture_output=True, check=False)
    say(f"all passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
