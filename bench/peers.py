"""Serving systems a user might deploy instead, for ``python -m bench``'s side-by-side.

NVIDIA PyTriton is the peer: Triton Inference Server (bundled in the wheel) with Triton's
dynamic batcher, speaking the Open Inference Protocol like the service's ``/v2`` API, so
both are driven by the same v2 requests. It gets the same model (the folder's ``pair.onnx``
in ONNX Runtime), the same filter rule, the same maximum batch and queue delay, and two
one-thread model instances as the service has two one-thread inference threads.
Why this one (../shared/notes/peer-servers.md lists what runs here): it is the dynamic
batcher most model-serving deployments use, and it is light here (+230 MB, ready in about
7 s); Ray Serve takes 12 processes and 1.7 GB, TorchServe a Java runtime and torch.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

import modelstore
from bench.process import ROOT, free_port

VENV = ROOT / "bench" / ".peers" / "pytriton"
REQUIREMENTS = ("nvidia-pytriton==0.7.0", "numpy<2", "onnxruntime==1.31.1")


def ensure_venv() -> Path:
    """The peer's own virtual environment (PyTriton needs numpy<2), made once."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if stamp.is_file():
        return python
    print("bench: installing the PyTriton peer into bench/.peers (once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True, timeout=1800
    )
    stamp.touch()
    return python


class PyTritonPeer:
    """The peer serving ``folder`` on loopback; ``url`` is its HTTP address."""

    def __init__(self, folder: Path, log: Path) -> None:
        python = ensure_venv()
        self.model = modelstore.read_manifest(folder / modelstore.MANIFEST).name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The bundled tritonserver links the interpreter's libpython: point it at ours.
        libdir = Path(os.path.realpath(sys.base_prefix)) / "lib"
        env = {**os.environ, "LD_LIBRARY_PATH": f"{libdir}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(python), str(ROOT / "bench" / "peer_pytriton.py"), "--folder", str(folder),
             "--port", str(self.port)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.started = time.perf_counter()

    def wait_ready(self, timeout_s: float = 180) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"PyTriton exited: {Path(self._log.name).read_text()[-3000:]}")
            try:
                # The server is ready before the model is bound: wait for the model.
                ready = httpx.get(f"{self.url}/v2/models/{self.model}/ready", timeout=2)
                if ready.status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError("PyTriton not ready")

    def stop(self) -> None:
        import signal

        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


def same_answers(service_url: str, peer_url: str, model: str, pixels) -> bool:
    """Whether the service's /v2 API and the peer label ``pixels`` alike (checked before
    either is timed)."""
    import numpy as np
    import tritonclient.http as triton

    answers = []
    for url in (service_url, peer_url):
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        tensor = triton.InferInput("images", list(pixels.shape), "UINT8")
        tensor.set_data_from_numpy(pixels)
        result = client.infer(model, [tensor])
        answers.append(
            (result.as_numpy("label").reshape(-1), result.as_numpy("flagged").reshape(-1))
        )
    return all(np.array_equal(a, b) for a, b in zip(*answers, strict=True))
