"""The HTTP API's token from a file (or the environment), never from a command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from http_support import build_runtime, serving

from adapter.config import Settings
from adapter.errors import ConfigError

TOKEN = "file-s3cret"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_token_file_guards_the_api(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n", encoding="utf-8")
    token_file.chmod(0o600)
    async with serving(build_runtime(tmp_path, api_token_file=token_file)) as client:
        refused = await client.get("/metrics")
        allowed = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        health = await client.get("/readyz")
    assert (refused.status_code, allowed.status_code, health.status_code) == (401, 200, 200)


def test_the_environment_gives_the_token_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    monkeypatch.setenv("HER2_API_TOKEN_FILE", str(token_file))
    assert Settings().bearer_token == TOKEN


@pytest.mark.parametrize("content", [None, "", "\n  \n"], ids=["missing", "empty", "blank"])
def test_a_token_file_that_gives_no_token_is_refused(tmp_path: Path, content: str | None) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match="api_token_file"):
        _ = Settings(api_token_file=token_file).bearer_token
