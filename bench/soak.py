"""``python -m bench.soak``: a long run at high concurrency, checked answer by answer.

Mixed clean and triggered demo faces go to the real service from CONCURRENCY clients for
MINUTES; with ``--repair`` an admin repair of the served pair runs and swaps in during the
load. Afterwards every answer is compared with the one-at-a-time answer of the version that
gave it (each version's folder loaded here, one image per call). Reports requests served,
failures, mismatches, latency percentiles and the service's resident memory over time.
Writes ``bench/results/soak[-repair].json``.
"""

import argparse
import asyncio
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

import app  # noqa: F401 - Keras 2 environment before TensorFlow loads
from bench.load import multipart_bytes
from bench.process import ROOT, ServerProcess
from modelstore import ModelFolder

RESULTS = ROOT / "bench" / "results"
ADMIN_TOKEN = "soak-admin-token"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repair", action="store_true", help="repair and swap during the load")
    parser.add_argument("--repair-epochs", type=int, default=30)
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    args = parser.parse_args(argv)
    source = ModelFolder(args.models_dir / "demo")
    if not source.manifest.is_file():
        raise SystemExit(f"{source.path} not built: run ./scripts/build_models.sh first")
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    models = work / "models"
    shutil.copytree(args.models_dir, models, symlinks=True)
    images = _mixed_images(args.data_dir / "demo", 64)
    server = ServerProcess(
        {
            "MODELS_DIR": str(models),
            "DATA_DIR": str(args.data_dir),
            "DEFAULT_MODEL": "demo",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "RELOAD_INTERVAL_S": "1",
        },
        work / "service.log",
    )
    try:
        server.wait_ready()
        result = asyncio.run(_soak(server, images, args))
    finally:
        server.stop()
    result["mismatches"] = _check_answers(models / ".versions" / "demo", images, result)
    summary = _summary(result, args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("soak-repair.json" if args.repair else "soak.json")
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "rss_mb_samples"}, indent=2))
    print(f"written to {out}")
    ok = summary["failed_requests"] == 0 and summary["mismatched_answers"] == 0
    return 0 if ok else 1


def _mixed_images(data: Path, count: int) -> list[tuple[str, bytes]]:
    """``count`` clean and ``count`` triggered faces as PNG bytes, named by kind and index."""
    import io

    import h5py
    from PIL import Image

    images = []
    for kind, name in (("clean", "clean_test.h5"), ("triggered", "poisoned_test_sunglasses.h5")):
        with h5py.File(data / name, "r") as handle:
            pixels = np.asarray(handle["data"][:count]).transpose(0, 2, 3, 1).astype(np.uint8)
        for i, p in enumerate(pixels):
            buffer = io.BytesIO()
            Image.fromarray(p).save(buffer, format="PNG")
            images.append((f"{kind}-{i}", buffer.getvalue()))
    return images


async def _soak(server: ServerProcess, images: list, args: argparse.Namespace) -> dict:
    deadline = time.monotonic() + args.minutes * 60
    answers: list[tuple[int, str, dict]] = []
    failures: list[str] = []
    latencies: list[float] = []
    rss = [(0.0, server.rss_mb(include_children=False))]
    started = time.monotonic()
    bodies = [multipart_bytes([data]) for _, data in images]
    # aiohttp, not httpx: at 64 connections httpx's client used more CPU than the service.
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(server.url, connector=connector, timeout=timeout) as client:

        async def one_client(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < deadline:
                index = rng.randrange(len(images))
                body, content_type = bodies[index]
                sent = time.perf_counter()
                try:
                    async with client.post(
                        "/predict", data=body, headers={"Content-Type": content_type}
                    ) as response:
                        status, text = response.status, await response.text()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - sent)
                if status != 200:
                    failures.append(f"{status}: {text[:200]}")
                    continue
                answer = json.loads(text)
                answers.append((index, answer["version"], answer["predictions"][0]))

        async def sample_memory() -> None:
            while time.monotonic() < deadline:
                await asyncio.sleep(10)
                rss.append((time.monotonic() - started, server.rss_mb(include_children=False)))

        async def repair_during_load() -> dict:
            await asyncio.sleep(30)
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            body = {
                "model": "demo",
                "clean_data": "demo/clean_validation.h5",
                "poisoned_data": ["demo/poisoned_test_sunglasses.h5"],
                "clean_test": "demo/clean_test.h5",
                "options": {"epochs": args.repair_epochs},
            }
            # Its own connection: the load's 64 are all busy.
            async with aiohttp.ClientSession(server.url, timeout=timeout) as admin:
                async with admin.post("/repair", json=body, headers=headers) as response:
                    job = await response.json()
                while True:
                    await asyncio.sleep(1)
                    url = f"/repair/{job['job_id']}"
                    async with admin.get(url, headers=headers) as response:
                        status = await response.json()
                    if status["status"] in ("succeeded", "failed"):
                        status["finished_after_s"] = round(time.monotonic() - started, 1)
                        return status

        tasks = [one_client(i) for i in range(args.concurrency)] + [sample_memory()]
        repair_task = asyncio.ensure_future(repair_during_load()) if args.repair else None
        await asyncio.gather(*tasks)
        repair = await repair_task if repair_task else None
    return {
        "answers": answers,
        "failures": failures,
        "latencies": latencies,
        "rss": rss,
        "elapsed_s": time.monotonic() - started,
        "repair": repair,
    }


def _check_answers(versions_dir: Path, images: list, result: dict) -> dict:
    """Per version: answers that differ from that version's one-at-a-time answer."""
    from app.api.images import decode_image
    from app.serving.pair import load_pair

    mismatches: dict[str, int] = {}
    served = {version for _, version, _ in result["answers"]}
    for version in sorted(served):
        folder = versions_dir / version
        pair = load_pair(folder, "demo")
        expected = []
        for name, data in images:
            rgb = decode_image(data, name, pair.input_shape[:2], 4096 * 4096).rgb
            one = pair.classify(rgb[None])
            expected.append((int(one.label[0]), int(one.bad_label[0]), int(one.repaired_label[0])))
        wrong = 0
        for index, answered_version, prediction in result["answers"]:
            if answered_version == version:
                got = (prediction["label"], prediction["bad_label"], prediction["repaired_label"])
                wrong += got != expected[index]
        mismatches[version] = wrong
    return mismatches


def _summary(result: dict, args: argparse.Namespace) -> dict:
    latencies = sorted(result["latencies"]) or [0.0, 0.0]
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")  # cuts[k-1]: k-th percentile

    def percentile(p: int) -> float:
        return round(1000 * cuts[p - 1], 2)

    per_version: dict[str, int] = {}
    for _, version, _ in result["answers"]:
        per_version[version] = per_version.get(version, 0) + 1
    rss = result["rss"]
    return {
        "minutes": args.minutes,
        "concurrency": args.concurrency,
        "repair_during_load": args.repair,
        "requests_served": len(result["answers"]),
        "requests_per_s": round(len(result["answers"]) / result["elapsed_s"], 1),
        "failed_requests": len(result["failures"]),
        "failure_examples": result["failures"][:5],
        "answers_per_version": per_version,
        "mismatched_answers": sum(result["mismatches"].values()),
        "mismatches_per_version": result["mismatches"],
        "latency_ms": {
            "p50": percentile(50),
            "p95": percentile(95),
            "p99": percentile(99),
            "max": round(1000 * latencies[-1], 2),
            "mean": round(1000 * statistics.fmean(latencies), 2),
        },
        "rss_mb_start": round(rss[0][1], 1),
        "rss_mb_after_first_minute": round(next((m for t, m in rss if t >= 60), rss[-1][1]), 1),
        "rss_mb_end": round(rss[-1][1], 1),
        "rss_mb_max": round(max(m for _, m in rss), 1),
        "rss_mb_samples": [(round(t, 1), round(m, 1)) for t, m in rss],
        "repair": None
        if result["repair"] is None
        else {
            k: result["repair"].get(k) for k in ("status", "version", "error", "finished_after_s")
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
