"""pipeline.process: the one path every transport takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mapping_support import example_settings

from adapter.config import Settings
from adapter.errors import AdapterError
from adapter.model import SourceFormat
from adapter.pipeline import Context, RawMessage, detect_format, identify, process, split_input

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hl7v2"


@pytest.fixture(scope="module")
def context() -> Context:
    return Context.from_settings(Settings())


def _only(path: Path, context: Context) -> dict[str, Any]:
    (message,) = split_input(path.read_bytes())
    outcome = process(message, context)
    assert outcome.bundle is not None, outcome.error
    return outcome.bundle


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_correction_replaces_the_earlier_report(context: Context) -> None:
    """A correction (new MSH-10, same order) PUTs the same resource ids, with status corrected."""
    original = _only(FIXTURES / "correction-1-original.hl7", context)
    corrected = _only(FIXTURES / "correction-2-corrected.hl7", context)
    assert original["identifier"] != corrected["identifier"]
    (before,) = _resources(original, "DiagnosticReport")
    (after,) = _resources(corrected, "DiagnosticReport")
    assert before["id"] == after["id"]
    assert (before["status"], after["status"]) == ("final", "corrected")
    assert [o["id"] for o in _resources(original, "Observation")] == [
        o["id"] for o in _resources(corrected, "Observation")
    ]
    assert {o["status"] for o in _resources(corrected, "Observation")} == {"corrected"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"MSH|^~\\&|", SourceFormat.HL7V2, id="er7"),
        pytest.param(b'{"resourceType": "Observation"}', SourceFormat.FHIR, id="json"),
        pytest.param(
            b'\xef\xbb\xbf\n  {"resourceType": "Bundle"}', SourceFormat.FHIR, id="bom-json"
        ),
        pytest.param(b'{"a": 1}\n{"b": 2}\n', SourceFormat.FHIR, id="ndjson"),
        pytest.param(b"\x0bMSH|^~\\&|", SourceFormat.HL7V2, id="mllp"),
    ],
)
def test_format_is_detected_from_the_first_byte(data: bytes, expected: SourceFormat) -> None:
    """JSON starts with { or [; everything else is read as HL7 v2."""
    assert detect_format(data) is expected


def test_oversized_message_is_rejected_before_reading(context: Context) -> None:
    """A message over the limit is refused with TOO-LARGE and never parsed."""
    small = Context(Settings(max_message_bytes=1024), context.mappings)
    data = (FIXTURES / "ish-g2-ihc2-recount.hl7").read_bytes()
    assert len(data) > 1024
    outcome = process(RawMessage(data, SourceFormat.HL7V2), small)
    assert outcome.error is not None
    assert outcome.error.code == "TOO-LARGE"


def test_unexpected_exception_becomes_an_internal_error(
    context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in one message's processing is reported as INTERNAL, never raised to the caller."""

    def broken(record: object) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr("adapter.cases.combine.classify", broken)
    data = (FIXTURES / "ihc3-positive.hl7").read_bytes()
    outcome = process(RawMessage(data, SourceFormat.HL7V2), context)
    assert isinstance(outcome.error, AdapterError)
    assert outcome.error.code == "INTERNAL"
    assert outcome.message_id == "ihc3-positive"


def test_strict_mode_rejects_what_the_tokenizer_tolerates(context: Context) -> None:
    """--strict holds a message to its version's structure: a missing PID-3 is an error."""
    strict = Context(context.settings, context.mappings, strict=True)
    good = (FIXTURES / "ihc3-positive.hl7").read_bytes()
    assert process(RawMessage(good, SourceFormat.HL7V2), strict).error is None
    segments = [b"PID|1" if s.startswith(b"PID|") else s for s in good.split(b"\r")]
    broken = b"\r".join(segments)  # PID without PID-3, which v2.5.1 requires
    lenient = process(RawMessage(broken, SourceFormat.HL7V2), context)
    outcome = process(RawMessage(broken, SourceFormat.HL7V2), strict)
    assert lenient.error is None
    assert outcome.error is not None
    assert outcome.error.code == "HL7-MALFORMED"
    assert "structure" in outcome.error.reason


def test_validate_mode_passes_valid_bundles(context: Context) -> None:
    """--validate runs the fhir.resources models over each Bundle; ours pass."""
    validating = Context(context.settings, context.mappings, validate=True)
    data = (FIXTURES / "ish-g2-ihc2-recount.hl7").read_bytes()
    outcome = process(RawMessage(data, SourceFormat.HL7V2), validating)
    assert outcome.error is None


def test_er_pgr_only_order_says_no_her2_test(context: Context) -> None:
    """An ER/PgR-only order is not reported as a failed HER2 test."""
    bundle = _only(FIXTURES / "er-pgr-only.hl7", context)
    (report,) = _resources(bundle, "DiagnosticReport")
    assert report["conclusion"].startswith("HER2 not reported; category HER2-not-reported.")
    assert "not a failed HER2 test" in report["conclusion"]
    assert "indeterminate" not in report["conclusion"]
    assert "HR-positive" in report["conclusion"]


FHIR_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fhir"


def test_identify_names_the_fhir_sender_the_reader_maps_by() -> None:
    """A Bundle naming its sender only in MessageHeader.source.endpoint: the store's sender
    (identify) is the sender whose mapping file the reader picks."""
    from adapter.ingest.fhir_document import read_document

    data = (FHIR_FIXTURES / "message-example-lab.json").read_bytes()
    identity = identify(data)
    assert identity.sender == "https://lis.example-pathology.org/fhir"
    assert identity.message_id == "EXL-MSG-000123"
    assert (identity.message_id, identity.source) == (
        read_document(data).message_id,
        read_document(data).source,
    )
    with_lab = Context.from_settings(example_settings())  # the example lab's sender file
    outcome = process(RawMessage(data, SourceFormat.FHIR), with_lab)
    assert outcome.ok, outcome.error
    assert {record.origin.sending_application for record in outcome.records} == {identity.sender}


def test_identify_prefers_the_callers_source_and_defaults_to_fhir() -> None:
    """?source= wins over the document; a document naming no sender is stored under fhir."""
    data = (FHIR_FIXTURES / "message-example-lab.json").read_bytes()
    assert identify(data, fhir_source="urn:lab:a").sender == "urn:lab:a"
    plain = (FHIR_FIXTURES / "ihc-3plus.json").read_bytes()
    assert identify(plain).sender in ("fhir", identify(plain).source)


MSH = b"MSH|^~\\&"
BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    ("data", "sender", "message_id"),
    [
        pytest.param(
            b"MSH|^~\\&|LIS|LAB|||2024||ORU^R01|C-1|P|2.5.1\r", "LIS^LAB", "C-1", id="hl7"
        ),
        pytest.param(
            b"\xef\xbb\xbfMSH|^~\\&|LIS||||2024||ORU^R01|C-2|P|2.5\r", "LIS", "C-2", id="bom"
        ),
        pytest.param(b"MSH|^~\\&|LIS|LAB|||2024||ORU^R01|C-3", "", "C-3", id="truncated"),
        pytest.param(b"PID|1\r", "", None, id="no-msh"),
    ],
)
def test_identify_hl7(data: bytes, sender: str, message_id: str | None) -> None:
    """HL7 v2: MSH-3^MSH-4 and MSH-10, with a BOM or without a readable header too."""
    identity = identify(data, SourceFormat.HL7V2)
    assert (identity.sender, identity.message_id) == (sender, message_id)
