"""`her2-adapter reprocess`: stored messages re-run with the current mappings, outcomes recorded."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mllp_support import NOW, oru
from typer.testing import CliRunner

from adapter.cli import app
from adapter.config import Settings, default_mappings_dir
from adapter.pipeline import Context
from adapter.service.handler import Service
from adapter.store import GroupCommitter, MessageStatus, Transport, open_store

pytestmark = pytest.mark.timeout(60)

NEW_LAB_MAPPING = """
description = "A lab onboarded after its first messages arrived"

[sender]
name = "new-lab"
applications = ["NEWLIS"]
facilities = ["NEW LAB"]

[systems]
NLC = "https://lis.new-lab.example/codes"

[[codes]]
system = "https://lis.new-lab.example/codes"
code = "H2IHC"
analyte = "her2-ihc"
display = "HER2 IHC score"
"""


def local_code_message(control_id: str) -> bytes:
    """An HER2 IHC result from NEWLIS under a local code the shipped mappings do not know."""
    return (
        oru(control_id)
        .replace(b"|COPATH|GOODHEALTH|", b"|NEWLIS|NEW LAB|")
        .replace(b"SP24-01078", f"NL-{control_id}".encode())  # one report per message
        .replace(
            b"85319-2^HER2 [Presence] in Breast cancer specimen by Immune stain^LN",
            b"H2IHC^Local IHC H2^NLC",  # a display that names no marker: not inferred
        )
    )


def store_through_service(
    store_url: str, messages: list[bytes], settings: Settings | None = None
) -> list[MessageStatus]:
    """Receive messages as the MLLP listener does (shipped mappings unless told)."""

    async def main() -> list[MessageStatus]:
        with open_store(store_url) as store:
            async with GroupCommitter(store) as committer:
                context = Context.from_settings(settings or Settings())
                service = Service(context, committer, lambda: NOW)
                return [(await service.handle(m, Transport.MLLP)).status for m in messages]

    return asyncio.run(main())


def with_new_lab(tmp_path: Path) -> Path:
    mappings = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), mappings)
    (mappings / "senders").mkdir(exist_ok=True)  # the shipped mappings have no sender file
    (mappings / "senders" / "new-lab.toml").write_text(NEW_LAB_MAPPING)
    return mappings


def test_rejected_messages_are_processed_after_a_mapping_is_added(tmp_path: Path) -> None:
    """Rejected for an unknown local code; after the lab's mapping is added, reprocess fixes it."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    before = store_through_service(
        store_url, [local_code_message("nl-1"), local_code_message("nl-2"), oru("ok-1")]
    )
    assert before == [MessageStatus.REJECTED, MessageStatus.REJECTED, MessageStatus.PROCESSED]

    result = CliRunner().invoke(
        app,
        [
            "reprocess",
            "--store",
            store_url,
            "--status",
            "rejected",
            "--mappings",
            str(with_new_lab(tmp_path)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "reprocessed 2: processed 2"
    with open_store(store_url) as store:
        for control_id in ("nl-1", "nl-2"):
            row = store.get_message(control_id)
            assert row is not None
            assert row.status is MessageStatus.PROCESSED
            assert row.bundle is not None
            assert row.ack is not None
            assert b"MSA|AA|" + control_id.encode() in row.ack
        assert len(store.find_reports()) == 3  # the index has the reprocessed reports too


def test_a_message_refused_when_processed_again_keeps_no_report_of_before(
    tmp_path: Path,
) -> None:
    """The report and resource index point into the outcome's Bundle: an outcome without one
    leaves the message no report, in the search and in the audit."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    mapped = Settings(mappings_dir=with_new_lab(tmp_path))
    before = store_through_service(store_url, [local_code_message("nl-1"), oru("ok-1")], mapped)
    assert before == [MessageStatus.PROCESSED, MessageStatus.PROCESSED]
    with open_store(store_url) as store:
        assert len(store.find_reports()) == 2
    result = CliRunner().invoke(app, ["reprocess", "--store", store_url, "--status", "processed"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "reprocessed 2: processed 1, rejected 1"
    with open_store(store_url) as store:
        row = store.get_message("nl-1")
        assert row is not None
        assert (row.status, row.bundle) == (MessageStatus.REJECTED, None)
        assert len(store.find_reports()) == 1
        assert len(store.audit_rows()) == 1


def test_received_but_unprocessed_messages_are_processed_by_default(tmp_path: Path) -> None:
    """A message stored just before a crash (status received) is processed by default."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(store_url) as store:
        store.receive(
            transport=Transport.MLLP,
            message_format="hl7v2",
            sender="COPATH^GOODHEALTH",
            message_id="crash-1",
            raw=oru("crash-1"),
            received_at=NOW,
        )
    result = CliRunner().invoke(app, ["reprocess", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "reprocessed 1: processed 1"
    with open_store(store_url) as store:
        row = store.get_message("crash-1")
        assert row is not None
        assert row.status is MessageStatus.PROCESSED


def test_filters_select_by_sender_and_time(tmp_path: Path) -> None:
    """--sender and --since/--until narrow what is reprocessed (until is exclusive)."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    store_through_service(store_url, [local_code_message("nl-3"), oru("other", score="x")])
    mappings = str(with_new_lab(tmp_path))
    runner = CliRunner()
    base = ["reprocess", "--store", store_url, "--status", "rejected", "--mappings", mappings]

    other_sender = runner.invoke(app, [*base, "--sender", "SOMEONE^ELSE"])
    assert other_sender.output.strip() == "reprocessed 0:"
    too_late = runner.invoke(app, [*base, "--until", NOW.isoformat()])
    assert too_late.output.strip() == "reprocessed 0:"
    chosen = runner.invoke(app, [*base, "--sender", "NEWLIS^NEW LAB", "--since", NOW.isoformat()])
    assert chosen.exit_code == 0, chosen.output
    assert chosen.output.strip() == "reprocessed 1: processed 1"


def test_oversized_prefixes_are_skipped(tmp_path: Path) -> None:
    """A TOO-LARGE row keeps only a prefix: reprocessing it cannot help, so it is skipped."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"

    async def main() -> None:
        with open_store(store_url) as store:
            async with GroupCommitter(store) as committer:
                service = Service(Context.from_settings(Settings()), committer, lambda: NOW)
                await service.reject_oversized(oru("big-1")[:200], 5_000_000, Transport.MLLP)

    asyncio.run(main())
    result = CliRunner().invoke(app, ["reprocess", "--store", store_url, "--status", "rejected"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "reprocessed 0: skipped 1"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        pytest.param("--status", "lost", id="unknown-status"),
        pytest.param("--since", "yesterday", id="since-not-iso"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, option: str, value: str) -> None:
    """An unknown status or a time that is not ISO 8601 exits 2 with a message."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    result = CliRunner().invoke(app, ["reprocess", "--store", store_url, option, value])
    assert result.exit_code == 2
    assert option.lstrip("-") in result.output or value in result.output


def test_naive_times_are_utc() -> None:
    """A --since without an offset is read as UTC (documented), not as local time."""
    from adapter.cli import _iso_time

    assert _iso_time("--since", "2024-05-01T09:30:00") == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
