"""``python -m bench [--quick]``: the product against the machine's own limits.

Measures, in one run on this machine: the fused two-model graph alone (model limit), the
same HTTP stack decoding the same uploads with no model (HTTP limit), a naive server
(``predict()`` per model per request), the real service at several concurrencies (with the
default runtime, with the serving image's ONNX-only runtime, and with two workers), and a
peer serving system (PyTriton) on the same Open Inference Protocol requests as the
service's /v2 API. Builds the demo models first when they are missing. Writes
``bench/results/latest.json`` and prints a table. Needs ``hey`` (apt-get install hey).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.load import multipart_body, require_hey, run_hey, v2_body
from bench.model_limit import LARGE_BATCH
from bench.process import ROOT, ServerProcess
from modelstore import Manifest, ModelFolder, read_manifest

RESULTS = ROOT / "bench" / "results"
WORKER_COUNTS = (1, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="4-second load points instead of 15 (about five minutes with the peer)",
    )
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--no-peers", action="store_true", help="leave out the PyTriton peer")
    args = parser.parse_args(argv)
    require_hey()
    folder = ModelFolder(args.models_dir / "demo")
    if not folder.manifest.is_file():
        print(f"bench: {folder.path} is missing; building the demo models first", file=sys.stderr)
        env = {**os.environ, "PY": sys.executable, "MODELS_DIR": str(args.models_dir)}
        subprocess.run([str(ROOT / "scripts" / "build_models.sh")], env=env, check=True)
    manifest = read_manifest(folder.manifest)
    run = _Run.prepare(args.models_dir, manifest, 4.0 if args.quick else 15.0)
    results: dict = {"machine": _machine(), "quick": args.quick, "duration_s": run.duration}
    results["model_limit"] = _model_limit(folder.path, run.duration)
    results["http_limit"] = _http_limits(run)
    results["naive"] = _naive(run)
    results["product"], results["peers"] = _products(run, folder.path, not args.no_peers)
    results["repair"] = {
        "timings_s": manifest.timings_s,
        "demo_timings_s": (manifest.demo or {}).get("timings_s"),
    }
    results["ratios_by_configuration"], results["ratios"] = _all_ratios(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(_table(results))
    return 0


@dataclass(frozen=True)
class _Run:
    """What every measurement of one run shares: request bodies, the servers' settings and
    how long each load runs."""

    tmp: Path
    duration: float
    env: dict[str, str]
    pixels: np.ndarray
    single: tuple[Path, str]
    many: tuple[Path, str]
    v2_single: tuple[Path, str, dict[str, str]]
    v2_many: tuple[Path, str, dict[str, str]]

    @classmethod
    def prepare(cls, models_dir: Path, manifest: Manifest, duration: float) -> "_Run":
        tmp = Path(tempfile.mkdtemp(prefix="bench-"))
        images = _demo_images(manifest)
        pixels = _pixels(images)
        return cls(
            tmp=tmp,
            duration=duration,
            env={"MODELS_DIR": str(models_dir), "DEFAULT_MODEL": "demo", "WORKERS": "1"},
            pixels=pixels,
            single=multipart_body(images[:1], tmp),
            many=multipart_body(images[:32], tmp),
            v2_single=v2_body(pixels[:1], tmp),
            v2_many=v2_body(pixels[:32], tmp),
        )

    def load(
        self, url: str, body: Path, kind: str, c: int, n: int, headers: dict | None = None
    ) -> dict:
        """A warm-up second, then ``duration`` seconds of load at concurrency ``c``."""
        run_hey(url, body, kind, c, 1.0, n, headers)
        return asdict(run_hey(url, body, kind, c, self.duration, n, headers))

    def upload_points(self, url: str, concurrencies: tuple[int, ...]) -> dict:
        """Single-image uploads at each concurrency, and 32-image uploads at 8."""
        (one, kind), (many, many_kind) = self.single, self.many
        runs = {f"single_c{c}": self.load(url, one, kind, c, 1) for c in concurrencies}
        runs["batch32_c8"] = self.load(url, many, many_kind, 8, 32)
        return runs

    def v2_points(self, url: str) -> dict:
        """The same over the Open Inference Protocol."""
        infer = url + "/v2/models/demo/infer"
        (one, kind, headers), (many, _, many_headers) = self.v2_single, self.v2_many
        runs = {f"single_c{c}": self.load(infer, one, kind, c, 1, headers) for c in (1, 8, 64)}
        runs["batch32_c8"] = self.load(infer, many, kind, 8, 32, many_headers)
        return runs


def _http_limits(run: _Run) -> dict:
    """The service's HTTP stack decoding the same uploads with no model, per worker count."""
    limits = {}
    for workers in WORKER_COUNTS:
        log = run.tmp / f"http{workers}.log"
        with _server(run.env, log, "bench.servers:http_limit_app", "/docs", workers) as server:
            runs = run.upload_points(server.url + "/predict", (1, 64))
            limits[f"workers{workers}"] = {k.removeprefix("single_"): v for k, v in runs.items()}
    return limits


def _naive(run: _Run) -> dict:
    (one, kind) = run.single
    with _server(run.env, run.tmp / "naive.log", "bench.servers:naive_app", "/docs") as server:
        return {"c64": run.load(server.url + "/predict", one, kind, 64, 1)}


PRODUCT_CONFIGURATIONS = {
    "workers1": {"WORKERS": "1"},
    # The serving image's runtime: the published pair.onnx alone, no TensorFlow.
    "workers1_onnx": {"WORKERS": "1", "RUNTIME": "onnx"},
    # TensorFlow's frozen graph for every batch size (no ONNX).
    "workers1_tf": {"WORKERS": "1", "RUNTIME": "tf"},
    "workers2": {"WORKERS": "2"},
}


def _products(run: _Run, folder: Path, with_peers: bool) -> tuple[dict, dict | None]:
    """The real service in each configuration; the peer beside the default one."""
    product: dict = {}
    peers = None
    for key, extra in PRODUCT_CONFIGURATIONS.items():
        workers = int(extra["WORKERS"])
        started = time.perf_counter()
        log = run.tmp / f"product-{key}.log"
        env = {**run.env, **extra}
        with _server(env, log, "app.main:create_app", "/ready", workers) as server:
            ready_s = time.perf_counter() - started
            rss_start = server.rss_mb()
            runs = run.upload_points(server.url + "/predict", (1, 8, 64))
            if key == "workers1" and with_peers:
                runs["v2"] = run.v2_points(server.url)
                peers = _peers(folder, server.url, run)
            product[key] = {
                "start_to_ready_s": round(ready_s, 2),
                "rss_mb_start": round(rss_start, 1),
                "rss_mb_end": round(server.rss_mb(), 1),
                **runs,
            }
    return product, peers


def _all_ratios(results: dict) -> tuple[dict, dict]:
    """The ratios per configuration, and the headline ones (one worker, RUNTIME=auto)."""
    product = results["product"]
    limit = max(
        v["images_per_s"]
        for k, v in results["model_limit"].items()
        if isinstance(v, dict) and k.endswith(f"_b{LARGE_BATCH}")
    )
    naive = results["naive"]["c64"]["requests_per_s"]
    by_configuration = {
        key: _ratios(runs, results["http_limit"][key.split("_")[0]], limit, naive)
        for key, runs in product.items()
    }
    ratios = dict(by_configuration["workers1"])
    onnx, tf, auto = product["workers1_onnx"], product["workers1_tf"], product["workers1"]
    for name, other in (("tf", tf), ("auto", auto)):
        ratios[f"onnx_vs_{name}_single_c64"] = (
            onnx["single_c64"]["requests_per_s"] / other["single_c64"]["requests_per_s"]
        )
        ratios[f"onnx_vs_{name}_batched"] = (
            onnx["batch32_c8"]["images_per_s"] / other["batch32_c8"]["images_per_s"]
        )
    for peer, runs in (results.get("peers") or {}).items():
        ours = auto["v2"]
        ratios[f"service_vs_{peer}_c64"] = (
            ours["single_c64"]["requests_per_s"] / runs["single_c64"]["requests_per_s"]
        )
        ratios[f"batched_vs_{peer}"] = (
            ours["batch32_c8"]["images_per_s"] / runs["batch32_c8"]["images_per_s"]
        )
        for point in ("single_c1", "single_c8"):
            ratios[f"service_vs_{peer}_{point}"] = (
                ours[point]["requests_per_s"] / runs[point]["requests_per_s"]
            )
    return by_configuration, ratios


def _peers(folder: Path, service_url: str, run: _Run) -> dict:
    """The same requests against PyTriton, after checking it answers like the service."""
    from bench.peers import PyTritonPeer, same_answers

    peer = PyTritonPeer(folder, run.tmp / "pytriton.log")
    try:
        ready_s = peer.wait_ready()
        if not same_answers(service_url, peer.url, "demo", run.pixels[:32]):
            raise SystemExit("bench: PyTriton answers differently from the service; not timed")
        return {"pytriton": {"start_to_ready_s": round(ready_s, 2), **run.v2_points(peer.url)}}
    finally:
        peer.stop()


def _pixels(images: list[bytes]) -> np.ndarray:
    import io

    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in images])


def _ratios(service: dict, http_limit: dict, model_limit: float, naive_rps: float) -> dict:
    """The issue's ratios for one worker count, against the HTTP limit at that count."""
    return {
        "batched_vs_limit": service["batch32_c8"]["images_per_s"] / model_limit,
        "single_vs_http": service["single_c64"]["requests_per_s"]
        / http_limit["c64"]["requests_per_s"],
        "service_vs_naive_c64": service["single_c64"]["requests_per_s"] / naive_rps,
        "p50_c1_minus_http_ms": service["single_c1"]["p50_ms"] - http_limit["c1"]["p50_ms"],
        # Not a target: how much of the decode-only rate for 32-image requests is left once
        # the models share the same two cores.
        "batched_vs_http": service["batch32_c8"]["images_per_s"]
        / http_limit["batch32_c8"]["images_per_s"],
    }


class _server:
    """Context manager: a ServerProcess started, waited for, and stopped."""

    def __init__(self, env: dict, log: Path, target: str, ready: str, workers: int = 1) -> None:
        factory = target.endswith(":create_app")
        self.process = ServerProcess(env, log, target, factory=factory, workers=workers)
        self.ready = ready

    def __enter__(self) -> ServerProcess:
        self.process.wait_ready(self.ready)
        return self.process

    def __exit__(self, *exc: object) -> None:
        self.process.stop()


def _demo_images(manifest: Manifest) -> list[bytes]:
    import h5py
    from PIL import Image

    path = Path(manifest.inputs["clean_test"]["path"])
    with h5py.File(path, "r") as handle:
        pixels = np.asarray(handle["data"][:32]).transpose(0, 2, 3, 1)
    out = []
    for p in pixels:
        import io

        buffer = io.BytesIO()
        Image.fromarray(p).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def _model_limit(folder: Path, duration: float) -> dict:
    """The fused graph alone, per runtime and thread setting (see bench.model_limit)."""
    out: dict = {}
    for mode in ("default", "serving"):
        command = [sys.executable, "-m", "bench.model_limit", str(folder), str(duration), mode]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        out[f"load_pair_{mode}_s"] = measured.pop("load_pair_s")
        out.update(measured)
    return out


def _machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def _table(results: dict) -> str:
    rows = [
        f"{'run':34}{'req/s':>10}{'img/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}"
    ]

    def add(name: str, r: dict) -> None:
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        rows.append(
            f"{name:34}{r['requests_per_s']:>10.1f}{r['images_per_s']:>10.1f}"
            f"{ms(r['p50_ms']):>9}{ms(r['p95_ms']):>9}{ms(r['p99_ms']):>9}"
            f"{r['errors']:>8}"
        )

    for key, value in results["model_limit"].items():
        if isinstance(value, dict):
            rows.append(
                f"model limit {key:22}{'':>10}{value['images_per_s']:>10.1f}"
                f"  ({value['ms_per_call']:.2f} ms per call)"
            )
    for workers, runs in results["http_limit"].items():
        for c, r in runs.items():
            add(f"HTTP limit {workers} {c}", r)
    add("naive predict() c64", results["naive"]["c64"])
    for key, runs in results["product"].items():
        for name, r in runs.items():
            if name == "v2":
                for point, v in r.items():
                    add(f"service {key} v2 {point}", v)
            elif isinstance(r, dict):
                add(f"service {key} {name}", r)
        rows.append(
            f"service {key}: ready in {runs['start_to_ready_s']} s, "
            f"RSS {runs['rss_mb_start']} -> {runs['rss_mb_end']} MiB"
        )
    for peer, runs in (results.get("peers") or {}).items():
        for point, r in runs.items():
            if isinstance(r, dict):
                add(f"{peer} v2 {point}", r)
        rows.append(f"{peer}: ready in {runs['start_to_ready_s']} s")
    rows.append("ratios: " + json.dumps({k: round(v, 3) for k, v in results["ratios"].items()}))
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
