"""Load generation with ``hey`` (a maintained HTTP load generator, Debian package ``hey``)."""

import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LoadResult:
    """What one fixed-duration run of hey measured."""

    concurrency: int
    images_per_request: int
    duration_s: float
    requests: int
    requests_per_s: float
    images_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    errors: int


def require_hey() -> str:
    path = shutil.which("hey")
    if path is None:
        raise SystemExit("the benchmark needs 'hey': apt-get install -y hey")
    return path


def multipart_body(images: list[bytes], folder: Path) -> tuple[Path, str]:
    """Write a multipart/form-data body with one ``file`` part per image; return its path
    and content type."""
    body, content_type = multipart_bytes(images)
    path = folder / f"body-{len(images)}-{content_type[-8:]}.bin"
    path.write_bytes(body)
    return path, content_type


def multipart_bytes(images: list[bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body with one ``file`` part per image, and its content type."""
    boundary = uuid.uuid4().hex
    parts = []
    for index, data in enumerate(images):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="face{index}.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def run_hey(
    url: str,
    body: Path,
    content_type: str,
    concurrency: int,
    duration_s: float,
    images_per_request: int,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """POST ``body`` to ``url`` for ``duration_s`` seconds at ``concurrency``."""
    command = [
        require_hey(),
        *(f"-H={name}: {value}" for name, value in (headers or {}).items()),
        "-z",
        f"{duration_s}s",
        "-c",
        str(concurrency),
        "-m",
        "POST",
        "-D",
        str(body),
        "-T",
        content_type,
        "-t",
        "60",
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    statuses = re.findall(r"\[(\d+)\]\s+(\d+) responses", output)
    ok = sum(int(n) for code, n in statuses if code == "200")
    bad = sum(int(n) for code, n in statuses if code != "200")
    errors = bad  # non-200 answers, plus transport errors below
    errored = re.search(r"Error distribution:\n((?:\s+\[\d+\].*\n?)+)", output)
    if errored:
        errors += sum(int(n) for n in re.findall(r"\[(\d+)\]", errored.group(1)))

    def percentile(p: int) -> float | None:
        found = re.search(rf"\s{p}%% in ([\d.]+) secs".replace("%%", "%"), output)
        return float(found.group(1)) * 1000 if found else None

    return LoadResult(
        concurrency=concurrency,
        images_per_request=images_per_request,
        duration_s=duration_s,
        requests=ok + bad,
        requests_per_s=rps,
        images_per_s=rps * images_per_request,
        p50_ms=percentile(50),
        p95_ms=percentile(95),
        p99_ms=percentile(99),
        errors=errors,
    )


def v2_body(pixels, folder: Path) -> tuple[Path, str, dict[str, str]]:
    """An Open Inference Protocol request for uint8 ``pixels`` (N, H, W, 3), binary tensor
    data with binary outputs, written to a file: its path, content type and headers."""
    import json

    outputs = [
        "label",
        "flagged",
        "bad_label",
        "repaired_label",
        "confidence",
        "overlap",
        "support",
    ]
    data = pixels.tobytes()
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "datatype": "UINT8",
                    "shape": list(pixels.shape),
                    "parameters": {"binary_data_size": len(data)},
                }
            ],
            "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in outputs],
        }
    ).encode()
    path = folder / f"v2-{len(pixels)}.bin"
    path.write_bytes(head + data)
    return path, "application/octet-stream", {"Inference-Header-Content-Length": str(len(head))}
