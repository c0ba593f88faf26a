"""docs/embedding.md runs: its Python examples in order, its Mirth transformer in Node.js.

The Mirth response transformer is run against real answers of the service (the HTTP app over a
SQLite store, in process), with stand-ins for the names Mirth gives a transformer: ``$``,
``response``, ``channelMap``, ``responseStatus`` and the QUEUED / ERROR statuses.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from http_support import build_runtime, serving

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "embedding.md").read_text(encoding="utf-8")
HL7 = {"Content-Type": "x-application/hl7-v2+er7"}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC, flags=re.DOTALL | re.MULTILINE)


def test_python_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block, in order, in one namespace, from the repository's root."""
    monkeypatch.chdir(ROOT)
    blocks = _blocks("python")
    assert len(blocks) >= 4
    namespace: dict[str, Any] = {"__name__": "embedding_doc"}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"docs/embedding.md python block {number}", "exec"), namespace)
    assert namespace["status"] == "converted: HER2-low"


_HARNESS = """
var answer = JSON.parse(require('fs').readFileSync(0, 'utf8'));
var QUEUED = 'QUEUED', ERROR = 'ERROR';
var responseStatus = 'SENT', responseStatusMessage = '', responseErrorMessage = '';
var channel = {};
var channelMap = {put: function (k, v) { channel[k] = v; },
                  get: function (k) { return channel[k]; }};
var response = { getMessage: function () { return answer.body; } };
function $(name) { if (name == 'responseStatusLine') { return answer.statusLine; } }
%s
process.stdout.write(JSON.stringify({status: responseStatus, error: responseErrorMessage,
                                     message: responseStatusMessage, channel: channel}));
"""


def _mirth(status_line: str, body: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the Mirth transformer (JavaScript) cannot run")
    (transformer,) = _blocks("javascript")
    done = subprocess.run(
        [node, "-e", _HARNESS % transformer],
        input=json.dumps({"statusLine": status_line, "body": body}),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_mirth_transformer_reads_real_answers(tmp_path: Path) -> None:
    runtime = build_runtime(tmp_path)
    positive = (ROOT / "fixtures" / "hl7v2" / "ihc3-positive.hl7").read_bytes()
    glucose = (ROOT / "fixtures" / "hl7v2" / "bad-glucose-only.hl7").read_bytes()
    async with serving(runtime) as client:
        ok = await client.post("/hl7v2", content=positive, headers=HL7)
        wrong = await client.post("/hl7v2", content=glucose, headers=HL7)
        runtime.store.close()
        down = await client.post("/hl7v2", content=positive.replace(b"ihc3", b"down"), headers=HL7)
    assert (ok.status_code, wrong.status_code, down.status_code) == (200, 422, 503)

    sent = _mirth("HTTP/1.1 200 OK", ok.text)
    assert sent["status"] == "SENT"
    assert sent["channel"] == {"her2Category": "HER2-positive", "hrStatus": ""}

    rejected = _mirth("HTTP/1.1 422 Unprocessable Entity", wrong.text)
    assert rejected["status"] == "ERROR"
    assert rejected["error"] == "her2-adapter 422 NO-HER2-RESULT"

    queued = _mirth("HTTP/1.1 503 Service Unavailable", down.text)
    assert queued["status"] == "QUEUED"
    assert queued["channel"] == {}
