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
   a serving replica crashed (SIGKILL, restarted by its restart policy), one stopped
   gracefully, and the repair container crashed while it published a new version lose no
   request and give no wrong answer; afterwards a whole version serves, no partial files
   are left, and the next repair succeeds; ``down`` and ``up`` again keep the published
   version;
5. the same deployment with the models volume on a 512 MiB tmpfs, filled up while a repair
   trains: the repair fails, no request is lost, the old version serves, and once space is
   freed the next repair succeeds.

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


REPAIR_BODY = {
    "model": "demo",
    "clean_data": "demo/clean_validation.h5",
    "clean_test": "demo/clean_test.h5",
    "options": {"epochs": 2},
}


def start_repair(url: str) -> str:
    """Start a quick admin repair of the demo through ``url``; its job id."""
    started = httpx.post(url + "/repair", json=REPAIR_BODY, headers=AUTH, timeout=30)
    assert started.status_code == 202, started.text
    again = httpx.post(url + "/repair", json=REPAIR_BODY, headers=AUTH, timeout=30)
    assert again.status_code == 409, again.text  # one repair of a model at a time
    return started.json()["job_id"]


def job_status(url: str, job: str, until, poll_s: float = 1, timeout_s: float = 900) -> dict:
    """Poll the job until ``until(status)`` holds or it has ended; its last status."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/repair/{job}", headers=AUTH, timeout=10).json()
        if until(status) or status["status"] in ("succeeded", "failed"):
            return status
        time.sleep(poll_s)
    raise TimeoutError(f"repair job {job} did not get there in {timeout_s} s")


def repair(url: str) -> dict:
    """A quick admin repair of the demo through ``url``; its final job status."""
    status = job_status(url, start_repair(url), until=lambda s: False)
    assert status["status"] == "succeeded", status
    return status


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


def compose(*args: str, env: dict | None = None) -> str:
    """``docker-compose`` on the test deployment; ``args`` may add ``-f`` override files."""
    env = {"ADMIN_TOKEN": TOKEN, "PATH": "/usr/local/bin:/usr/bin:/bin", **(env or {})}
    return run("docker-compose", "--compatibility", "-p", "bftest", "-f", str(COMPOSE), *args,
               env=env, timeout=600)  # fmt: skip


ENTRY = "http://127.0.0.1:18000"
REPAIR_URL = "http://127.0.0.1:18100"
REPLICAS = ("http://127.0.0.1:18001", "http://127.0.0.1:18002")
LOAD_THREADS = 4


def crash(container: str) -> None:
    """SIGKILL to the container's first process, as a crash: its restart policy brings it
    back (``docker kill`` would count as a manual stop)."""
    os.kill(int(run("docker", "inspect", container, "--format", "{{.State.Pid}}")), signal.SIGKILL)
    time.sleep(1)


def crash_replica() -> str:
    started = time.monotonic()
    crash("bftest_filter-1_1")
    wait_ready(REPLICAS[0], timeout_s=120)
    return (
        "a serving replica crashed (SIGKILL), restarted by its restart policy: serving again "
        f"after {time.monotonic() - started:.1f} s"
    )


def stop_replica() -> str:
    """``docker stop`` on replica 2 (SIGTERM, a graceful shutdown), then started again."""
    started = time.monotonic()
    run("docker", "stop", "-t", "20", "bftest_filter-2_1")
    run("docker", "start", "bftest_filter-2_1")
    wait_ready(REPLICAS[1], timeout_s=120)
    return (
        "a serving replica stopped gracefully (docker stop), then started: serving again "
        f"after {time.monotonic() - started:.1f} s"
    )


def crash_repair_while_publishing() -> str:
    """A repair through the entry point; SIGKILL to the repair container in its write stage
    (saving, hashing, publishing the new version). Its restart policy brings it back."""
    for _ in range(3):  # the write stage lasts a few seconds: catch it, or try again
        job = start_repair(ENTRY)
        status = job_status(REPAIR_URL, job, until=lambda s: s["stage"] == "write", poll_s=0.02)
        if status["status"] == "running":
            break
    else:
        raise AssertionError("never caught a repair in its write stage")
    started = time.monotonic()
    crash("bftest_repair_1")
    wait_ready(REPAIR_URL, timeout_s=300)
    back = time.monotonic() - started
    wait_repair_routed()
    routed = time.monotonic() - started
    return (
        "the repair container crashed (SIGKILL) while it published a new version, restarted "
        f"by its restart policy: repair replica ready again after {back:.1f} s, reached "
        f"through the entry point after {routed:.1f} s"
    )


def wait_deployment_ready() -> None:
    """Until every replica is ready and the entry point reaches each of them."""
    for url in (REPAIR_URL, *REPLICAS, ENTRY):
        wait_ready(url)
    wait_repair_routed()


def wait_repair_routed(timeout_s: float = 60) -> None:
    """Until the entry point sends admin requests to the repair replica again: its health
    check marks a restarted replica up only after two passes, and answers 503 till then."""
    deadline = time.monotonic() + timeout_s
    while httpx.get(ENTRY + "/repair/none", headers=AUTH, timeout=5).status_code == 503:
        assert time.monotonic() < deadline, "the entry point never reached the repair replica"
        time.sleep(0.2)


FILLER = "/srv/models/.filler"


def fill_models_volume_during_repair() -> str:
    """A repair through the entry point; once it trains, the models volume is filled up to
    its last byte. The repair must fail, and leave the served version as it was."""
    job = start_repair(ENTRY)
    job_status(REPAIR_URL, job, until=lambda s: s["stage"] == "fine-tune", poll_s=0.2)
    started = time.monotonic()
    filler = ["docker", "exec", "bftest_repair_1", "dd", "if=/dev/zero", f"of={FILLER}", "bs=1M"]
    subprocess.run(filler, capture_output=True, check=False)  # ends at "No space left"
    free = run("docker", "exec", "bftest_repair_1", "df", "--output=avail", "/srv/models")
    assert free.split()[-1] == "0", free
    status = job_status(REPAIR_URL, job, until=lambda s: False)
    assert status["status"] == "failed" and "space" in status["error"], status
    return (
        f"the models volume filled up during a repair: the job failed "
        f'{time.monotonic() - started:.1f} s later ("{status["error"][:60]}…")'
    )


def under_load(entry: str, faces: Path, fault) -> str:  # fault: () -> what happened
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
    try:
        happened = fault()
        time.sleep(3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert counts["failed"] == 0 and counts["wrong"] == 0, (happened, counts)
    return (
        f"{happened}; under {LOAD_THREADS} clients through the entry point: sent "
        f"{counts['sent']}, answered {counts['answered']}, failed {counts['failed']}, wrong "
        f"{counts['wrong']}"
    )


def in_repair(*command: str) -> str:
    return run("docker", "exec", "bftest_repair_1", *command)


def serves_last_good_version() -> str:
    """No partial files of a dead or failed writer are left; ``models/demo`` names a version
    whose every file matches its manifest, and both replicas serve it. Returns it."""
    leftovers = in_repair("sh", "-c", "ls -a /srv/models /srv/models/.versions/demo")
    assert ".staging-" not in leftovers and ".demo.link-" not in leftovers, leftovers
    check = (
        "import json, sys; from pathlib import Path; from modelstore import sha256_file; "
        "f = Path('/srv/models/demo').resolve(strict=True); "
        "m = json.loads((f / 'manifest.json').read_text()); "
        "bad = [n for n, h in m['files'].items() if sha256_file(f / n) != h]; "
        "print(m['version'] if not bad else 'mixed: ' + ' '.join(bad))"
    )
    linked = in_repair("python", "-c", check).strip()
    assert not linked.startswith("mixed"), linked
    deadline = time.monotonic() + 30
    while any(version(url) != linked for url in REPLICAS):
        assert time.monotonic() < deadline, [version(url) for url in REPLICAS]
        time.sleep(0.2)
    return linked


def served_by_both(published: str) -> float:
    """Seconds until both replicas serve ``published``."""
    started = time.monotonic()
    while any(version(url) != published for url in REPLICAS):
        assert time.monotonic() - started < 30, "a replica never served the new version"
        time.sleep(0.05)
    return time.monotonic() - started


def compose_down(*args: str, env: dict | None = None) -> None:
    """``down -v`` on the test deployment (``args``: as :func:`compose`), whatever is left."""
    try:
        compose(*args, "down", "-v", env=env)
    except RuntimeError as exc:
        say(f"docker-compose down failed: {exc}")


def two_replicas(work: Path) -> None:
    compose("up", "-d")
    try:
        wait_deployment_ready()
        before = version(REPLICAS[1])
        status = repair(REPLICAS[0])  # sent on to the repair replica
        picked_up = served_by_both(status["version"])
        say(
            f"a repair through replica 1 was served by replica 2 {picked_up:.2f} s after the "
            f"job succeeded (RELOAD_INTERVAL_S=1); {before} -> {status['version']}"
        )
        check_answers(REPLICAS[1], work / "faces")
        for fault in (crash_replica, stop_replica, crash_repair_while_publishing):
            say(under_load(ENTRY, work / "faces", fault))
        kept = serves_last_good_version()
        status = repair(ENTRY)
        served_by_both(status["version"])
        say(
            f"after the repair container's crash both replicas served {kept}, whole, with no "
            f"partial files left; the next repair succeeded and {status['version']} serves"
        )
        compose("down")
        compose("up", "-d")
        for url in REPLICAS:
            wait_ready(url)
            assert version(url) == status["version"], version(url)
        say("docker-compose down and up again: both replicas serve the published version")
    finally:
        compose_down()


SMALL_MODELS = ROOT / "deploy" / "test" / "compose.small-models.yml"


def seed_small_models_volume(folder: Path) -> bool:
    """A tmpfs at ``folder`` holding the repair image's models, as the models volume of
    ``compose.small-models.yml``. False where this machine cannot mount one."""
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=512m,mode=0755", "tmpfs", str(folder)]
    if subprocess.run(mount, capture_output=True, check=False).returncode != 0:
        return False
    run("docker", "create", "--name", "bf-seed", "badnet-filter:repair")
    try:
        run("docker", "cp", "bf-seed:/srv/models/.", str(folder))
    finally:
        subprocess.run(["docker", "rm", "bf-seed"], capture_output=True, check=False)
    run("chown", "-R", "10001:10001", str(folder))
    return True


def full_models_volume(work: Path) -> None:
    """The models volume on a 512 MiB tmpfs, filled up while a repair trains."""
    folder = work / "small-models"
    if not seed_small_models_volume(folder):
        say("skipped the full models volume: this machine cannot mount a tmpfs")
        return
    override, env = ("-f", str(SMALL_MODELS)), {"SMALL_MODELS": str(folder)}
    try:
        compose(*override, "up", "-d", env=env)
        wait_deployment_ready()
        before = version(REPLICAS[0])
        say(under_load(ENTRY, work / "faces", fill_models_volume_during_repair))
        assert serves_last_good_version() == before
        in_repair("rm", FILLER)
        status = repair(ENTRY)
        served_by_both(status["version"])
        say(
            f"with the volume full both replicas kept serving {before}, with no partial files "
            f"left; once the filler was removed the next repair succeeded and "
            f"{status['version']} serves"
        )
    finally:
        compose_down(*override, env=env)
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)


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
        full_models_volume(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["bash", str(ENGINE), "stop"], capture_output=True, check=False)
    say(f"all passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
