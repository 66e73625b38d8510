"""Run a uvicorn server in a subprocess on loopback (used by the benchmark and the tests)."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``uvicorn TARGET`` on 127.0.0.1 with ``env`` added; ``url`` is its base address.
    ``factory``: TARGET is a function that makes the app (the service's ``create_app``)."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        target: str = "app.main:create_app",
        factory: bool = True,
        workers: int = 1,
        log_level: str = "warning",
        wrapper: tuple[str, ...] = (),
    ) -> None:
        """``wrapper`` is a command the server runs under (it must ``exec`` its arguments)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [
            *wrapper,
            sys.executable,
            "-m",
            "uvicorn",
            *(["--factory"] if factory else []),
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            log_level,
            "--workers",
            str(workers),
        ]
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, path: str = "/ready", timeout_s: float = 180) -> None:
        """Wait until ``path`` answers 200 (or, for servers without it, anything but 5xx)."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2) as client:  # one client: each new one costs ~30 ms CPU
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
                try:
                    if client.get(self.url + path).status_code < 500:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
        raise TimeoutError(f"server not ready: {self.log_path.read_text()[-3000:]}")

    def rss_mb(self, include_children: bool = True) -> float:
        """Resident memory of the server (and, with ``include_children``, every process it started:
        uvicorn workers, repair workers), in MiB."""
        pids = [self.process.pid, *(descendants(self.process.pid) if include_children else [])]
        total_kb = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
            except OSError:
                pass
        return total_kb / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def descendants(pid: int) -> list[int]:
    """Descendants of ``pid``: children of each of its threads (a process started from a
    thread is that thread's child), recursively."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            kids += [int(p) for p in (task / "children").read_text().split()]
    return kids + [g for k in kids for g in descendants(k)]
