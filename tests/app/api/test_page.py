"""The page at ``/`` in a real browser (Debian's headless Chromium, driven by Selenium): a
person drops a clean and a triggered demo face and reads both verdicts; with API keys on, the
page shows the API's 401 until the key field holds a key."""

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.support.service import start_service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
KEY = "page-test-key-4d2e"


@pytest.fixture(scope="module")
def browser():  # a Selenium WebDriver
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        message = "Chromium not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--window-size=1100,1500",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page_service(demo_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real service on the full demo, with an API key required."""
    log = tmp_path_factory.mktemp("page") / "service.log"
    running = start_service(demo_root / "models", demo_root, log, API_KEYS=KEY)
    try:
        yield running
    finally:
        running.stop()


def _verdict(browser, name: str, timeout_s: float = 30) -> str:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = browser.find_elements(By.CSS_SELECTOR, f'.result[data-file="{name}"] .verdict')
        if rows and rows[0].text:
            return rows[0].text
        time.sleep(0.2)
    raise TimeoutError(f"no verdict for {name} on the page")


def test_a_person_drops_a_clean_and_a_triggered_face(browser, page_service, demo_root) -> None:
    from selenium.webdriver.common.by import By

    faces = demo_root / "data" / "demo" / "faces"
    clean = sorted(faces.glob("clean_*.png"))[0]
    triggered = sorted(faces.glob("sunglasses_*.png"))[0]
    browser.get(page_service.url + "/")
    # The models table and the plots come from /models and the model folder.
    deadline = time.monotonic() + 30
    while not browser.find_elements(By.CSS_SELECTOR, "#models table"):
        assert time.monotonic() < deadline, "the models table never appeared"
        time.sleep(0.2)
    assert "filter G (served)" in browser.find_element(By.ID, "models").text
    for plot in browser.find_elements(By.CSS_SELECTOR, ".plots img"):
        assert browser.execute_script("return arguments[0].naturalWidth", plot) > 100
    upload = browser.find_element(By.ID, "files")
    # Without the key, the page shows the API's own error.
    upload.send_keys(str(clean))
    assert _verdict(browser, clean.name).startswith("401: missing or wrong API key")
    browser.find_element(By.ID, "key").send_keys(KEY)
    browser.execute_script("document.getElementById('results').innerHTML = ''")
    upload.send_keys(f"{clean}\n{triggered}")
    # The page says what the API answers for the same files.
    files = [("file", (p.name, p.read_bytes(), "image/png")) for p in (clean, triggered)]
    answers = httpx.post(
        page_service.url + "/predict", files=files, headers={"X-API-Key": KEY}, timeout=30
    ).json()["predictions"]
    for path, answer in zip((clean, triggered), answers, strict=True):
        if answer["poisoned"]:
            expected = f"poisoned: B said {answer['bad_label']}, the repair said "
            expected += str(answer["repaired_label"])
        else:
            expected = f"label {answer['label']} "
        assert _verdict(browser, path.name).startswith(expected)
    assert answers[1]["poisoned"] and answers[1]["bad_label"] == 0  # the trigger is stopped
    # The flagged face carries its heat map, drawn over it, with the API's hottest box.
    explained = httpx.post(
        page_service.url + "/predict?explain=true",
        files=files,
        headers={"X-API-Key": KEY},
        timeout=30,
    ).json()["predictions"][1]["explanation"]
    selector = f'.result[data-file="{triggered.name}"] canvas.heat'
    (heat,) = browser.find_elements(By.CSS_SELECTOR, selector)
    assert heat.get_attribute("data-box") == ",".join(map(str, explained["box"]))
    assert heat.size["width"] > 50 and heat.size["height"] > 50
    red = browser.execute_script(
        "const c = arguments[0], d = c.getContext('2d').getImageData(0, 0, c.width, c.height);"
        "let n = 0; for (let i = 0; i < d.data.length; i += 4) if (d.data[i + 3] > 40) n++;"
        "return n;",
        heat,
    )
    assert red > 0  # the overlay is painted
    clean_row = f'.result[data-file="{clean.name}"] canvas.heat'
    assert not browser.find_elements(By.CSS_SELECTOR, clean_row)  # clean: no overlay
    # The demo faces are each model's own, at its input size.
    named = httpx.get(page_service.url + "/demo/faces?model=demo", timeout=30).json()
    assert named == sorted(p.name for p in faces.glob("*.png"))
    unknown = httpx.get(page_service.url + "/demo/faces?model=nope", timeout=30)
    assert unknown.status_code == 404
    # The demo faces offered by the page itself, each clicked: one answer each.
    browser.execute_script("document.getElementById('results').innerHTML = ''")
    buttons = browser.find_elements(By.CSS_SELECTOR, "#faces button[data-face]")
    assert len(buttons) >= 2
    for button in buttons:
        button.click()
    for button in buttons:
        assert _verdict(browser, button.get_attribute("data-face"))
    assert len(browser.find_elements(By.CSS_SELECTOR, ".result")) == len(buttons)
    screenshot = Path(os.environ.get("SCREENSHOT_DIR", page_service.log_path.parent)) / "page.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
