"""The real service process (uvicorn on loopback) under concurrent clients."""

import re
from pathlib import Path

import httpx

from tests.support.images import h5_images


def test_concurrent_requests_each_get_their_own_answer(service, tiny_root: Path) -> None:
    """Dynamic batching mixes requests in one graph run; each must get its own answer."""
    from concurrent.futures import ThreadPoolExecutor

    data = tiny_root / "data" / "demo"
    clean, _ = h5_images(data / "clean_test.h5", 24, start=0)
    poisoned, _ = h5_images(data / "poisoned_test_sunglasses.h5", 24, start=0)
    images = [b for pair in zip(clean, poisoned, strict=True) for b in pair]

    def ask(index: int) -> dict:
        response = httpx.post(
            service.url + "/predict",
            files=[("file", (f"{index}.png", images[index], "image/png"))],
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return response.json()["predictions"][0]

    one_at_a_time = [ask(i) for i in range(len(images))]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(ask, range(len(images))))
    for alone, batched in zip(one_at_a_time, together, strict=True):
        assert alone["filename"] == batched["filename"]
        for key in ("label", "bad_label", "repaired_label", "poisoned"):
            assert alone[key] == batched[key], (alone, batched)
        assert abs(alone["confidence"] - batched["confidence"]) < 1e-4
    # Some batch held more than one request's image: the requests were mixed.
    metrics = httpx.get(service.url + "/metrics").text
    single = re.search(r'badnet_filter_batch_images_bucket\{le="1.0",model="demo"\} (\S+)', metrics)
    count = re.search(r'badnet_filter_batch_images_count\{model="demo"\} (\S+)', metrics)
    assert single and count and float(count.group(1)) > float(single.group(1)), metrics
