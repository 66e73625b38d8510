"""The suite's long builds (the full demo, the attackers' small versions), each run as its
own process from the start of the session, so that the tests that need no such model run
meanwhile. A fixture that needs a build waits for its manifest."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.service import ROOT


class BackgroundBuild:
    """A command that publishes one or more model folders; started at once, in a session of
    its own, ``niceness`` below the tests' priority."""

    def __init__(
        self, name: str, command: list[str], log: Path, niceness: int = 0, **env: str
    ) -> None:
        self.name, self.log = name, log
        with open(log, "wb") as output:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, "PY": sys.executable, **env},
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: _lower_priority(niceness)) if niceness else None,
            )

    def manifest(self, folder: Path, timeout_s: float = 3600) -> Path:
        """Wait until ``folder`` is published (atomically: its manifest appears with the
        whole version) and return the manifest's path; raise with the build's output if the
        build ends without it."""
        manifest = folder / "manifest.json"
        deadline = time.monotonic() + timeout_s
        while not manifest.is_file():
            if self.process.poll() is not None and not manifest.is_file():  # not just made
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name} build ended without {folder}:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} build: no {folder} after {timeout_s} s")
            time.sleep(1)
        return manifest

    def stop(self) -> None:
        """Kill the build and its children (a script's Python process runs the build)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _lower_priority(niceness: int) -> None:
    """Lower this (new) process's CPU share. Where the kernel groups processes by session
    (sched_autogroup), the share between sessions is the group's nice value, not the
    process's: set both."""
    os.nice(niceness)
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(niceness))
    except OSError:  # no autogroups: the process's nice value is what counts
        pass
