"""GET /audit and /audit.json on the service: behind the token, the same figures as the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_traffic import LAB_B, audit_of, build_store, known_traffic
from http_support import build_runtime, serving

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def traffic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("audit-service")
    build_store(f"sqlite:///{directory / 'store.db'}", known_traffic())
    return directory


async def test_the_audit_needs_the_token(traffic_dir: Path) -> None:
    """With a token set, /audit and /audit.json answer 401 without it."""
    async with serving(build_runtime(traffic_dir, api_token="s3cret")) as client:
        for path in ("/audit", "/audit.json"):
            refused = await client.get(path)
            assert refused.status_code == 401
            assert refused.json()["resourceType"] == "OperationOutcome"


async def test_the_json_is_the_clis_audit(traffic_dir: Path) -> None:
    """/audit.json is the audit the CLI computes from the same store."""
    async with serving(build_runtime(traffic_dir, api_token="s3cret")) as client:
        answer = await client.get("/audit.json", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json() == audit_of(f"sqlite:///{traffic_dir / 'store.db'}")


async def test_the_page_and_its_filters(traffic_dir: Path) -> None:
    """The page takes sender and period; a bad period is a 400 OperationOutcome."""
    async with serving(build_runtime(traffic_dir, api_token="s3cret")) as client:
        page = await client.get("/audit", params={"sender": LAB_B, "period": "week"}, headers=AUTH)
        bad = await client.get("/audit", params={"period": "year"}, headers=AUTH)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="ihc-lab-b-lab-b-pathology-breast"' in page.text
    assert "LAB-A" not in page.text
    assert "2024-W15" in page.text
    assert bad.status_code == 400
    assert bad.json()["issue"][0]["code"] == "invalid"


async def test_min_reports_comes_from_the_settings(traffic_dir: Path) -> None:
    """audit_min_reports sets the service's suppression threshold."""
    runtime = build_runtime(traffic_dir, api_token="s3cret", audit_min_reports=100)
    async with serving(runtime) as client:
        audit = (await client.get("/audit.json", headers=AUTH)).json()
    assert audit["options"]["min_reports"] == 100
    assert all(cell["shares_shown"] is False for cell in audit["cells"] if cell["period"] != "all")
