"""/audit in a real browser: Debian's headless Chromium, driven by Playwright, against a running
``her2-adapter serve`` holding the known traffic (tests/audit_traffic.py).

The charts must be drawn (laid out, with the size their figure gives), the numbers on the page
must be the service's /audit.json, a CSV download must hold its table, nothing may be fetched
from anywhere but the service, and a screenshot of the page is kept as a test artifact
(``$HER2_TEST_ARTIFACTS``, default ``test-artifacts/`` in the checkout).

Chromium comes from Debian (``apt-get install chromium``, done by .ci/run); Playwright never
downloads a browser here. Without Chromium the test is skipped, except in CI, where it fails.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from audit_traffic import LAB_B, LAB_C, build_store, cell, known_traffic

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root in CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "browser-test-token"
ARTIFACTS = Path(
    os.environ.get("HER2_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")
)

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("no Debian chromium (apt-get install -y chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``her2-adapter serve`` on a store holding the known traffic; yields its base URL."""
    home = tmp_path_factory.mktemp("browser")
    store = f"sqlite:///{home / 'store.db'}"
    build_store(store, known_traffic())
    port = _free_port()
    env = {**os.environ, "HER2_API_TOKEN": TOKEN, "HER2_WORKERS": "0"}
    command = [str(Path(sys.executable).with_name("her2-adapter")), "serve", "--store", store]
    command += ["--http-port", str(port), "--mllp-port", "0"]
    base = f"http://127.0.0.1:{port}"
    with (home / "serve.log").open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=home)
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                pytest.fail(f"serve exited: {(home / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("serve did not answer /healthz within 30 s")
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def audit(service: str) -> dict[str, Any]:
    answer = httpx.get(f"{service}/audit.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


@pytest.fixture(scope="module")
def requested() -> list[str]:
    """Every URL the browser asked for while the page loaded."""
    return []


@pytest.fixture(scope="module")
def page(
    service: str, tmp_path_factory: pytest.TempPathFactory, requested: list[str]
) -> Iterator[Any]:
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user data dir
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            accept_downloads=True,
            viewport={"width": 1280, "height": 900},
            extra_http_headers={"Authorization": f"Bearer {TOKEN}"},
        )
        try:
            browser_page = context.new_page()
            browser_page.on("request", lambda request: requested.append(request.url))
            answer = browser_page.goto(f"{service}/audit")
            assert answer is not None
            assert answer.status == 200
            yield browser_page
        finally:
            context.close()


def test_the_charts_are_drawn(page: Any) -> None:
    """Every chart is laid out at its size; the April IHC 0 bar is 40% of its column."""
    figures = page.locator("figure svg")
    assert figures.count() >= 10
    for index in range(figures.count()):
        box = figures.nth(index).bounding_box()
        assert box is not None
        assert box["width"] > 100
        assert box["height"] > 10
    jump = page.locator(
        '#ihc-lab-b-lab-b-pathology-breast rect.bar[data-period="2024-04"][data-key="0 null"]'
    )
    box = jump.bounding_box()
    assert box is not None
    assert box["height"] == pytest.approx(160 * 16 / 40, abs=1)  # 40% of the column
    assert page.locator("#ihc-lab-b-lab-b-pathology-breast .drift-mark").count() == 1


def test_the_numbers_are_the_services(page: Any, audit: dict[str, Any]) -> None:
    """The summary, a table view opened by a click, the drift note and a count-only column
    show the numbers of /audit.json."""
    total = sum(c["reports"] for c in audit["cells"] if c["period"] == "all")
    assert page.locator("#summary").get_attribute("data-reports") == str(total)
    assert page.locator("#summary").inner_text().startswith(f"{total} reports from 3 senders")
    figure = page.locator("#ihc-lab-b-lab-b-pathology-breast")
    figure.locator("summary").click()  # open the table view
    row = figure.locator("tr", has_text="2024-04").filter(has_text="0 null")
    cells = row.locator("td").all_inner_texts()
    april = cell(audit, LAB_B, "2024-04")["ihc"]["breast"]
    assert cells[:4] == [
        "2024-04",
        "0 null",
        str(april["counts"]["0 null"]),
        f"{april['shares']['0 null'] * 100:.1f}%",
    ]
    assert "own-earlier" in cells[4]
    flagged = page.locator("#drift-note").get_attribute("data-flagged")
    assert flagged == str(len(audit["drift"]["flagged"]))
    suppressed = page.locator("#categories-lab-c-lab-c-pathology-breast rect.suppressed")
    assert suppressed.get_attribute("data-total") == str(cell(audit, LAB_C, "2024-03")["reports"])


def test_a_chart_downloads_its_data(page: Any, audit: dict[str, Any]) -> None:
    """Clicking a chart's Download CSV saves its table, with the service's figures."""
    with page.expect_download() as waiting:
        page.locator("#workup a.download").click()
    download = waiting.value
    assert download.suggested_filename == "workup.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    by_sender = {row[0]: row for row in rows[1:]}
    work = cell(audit, LAB_B, "all")["workup"]
    assert by_sender[LAB_B][2:4] == [str(work["ihc2"]), str(work["ihc2_with_ish"])]


def test_nothing_is_fetched_from_elsewhere_and_a_screenshot_is_kept(
    page: Any, service: str, requested: list[str]
) -> None:
    """The page loads nothing but itself (no CDN, no font); its screenshot is an artifact."""
    assert requested
    assert all(url.startswith(service) for url in requested)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "audit-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
