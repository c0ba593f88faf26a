"""adapter.api, the public Python contract: the same outcomes as the command line, typed fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mapping_support import example_mappings_dir
from typer.testing import CliRunner

from adapter import api
from adapter.cli import app
from adapter.emit.bundle import dumps
from adapter.model import Category, HrStatus, SourceFormat

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GOOD = FIXTURES / "hl7v2" / "ihc3-positive.hl7"
BATCH = FIXTURES / "hl7v2" / "batch-3.hl7"
AT = datetime(2024, 3, 5, 16, 30, tzinfo=UTC)


def test_convert_gives_the_bundle_convert_prints() -> None:
    """One path: the API's bytes are the command line's, for every message of a batch."""
    printed = CliRunner().invoke(app, ["convert", str(BATCH)]).stdout_bytes.splitlines()
    results = api.convert_all(BATCH.read_bytes())
    assert [r.bundle_json for r in results] == printed
    assert [r.position for r in results] == [1, 2, 3]


def test_result_fields() -> None:
    result = api.convert(GOOD.read_bytes())
    assert result.ok
    assert result.format is SourceFormat.HL7V2
    assert result.message_id == "ihc3-positive"
    assert result.categories == (Category.HER2_POSITIVE,)
    assert result.hr_statuses == (None,)
    assert result.bundle is not None
    assert result.bundle["resourceType"] == "Bundle"


def test_each_result_owns_its_bundle() -> None:
    """Editing one Result's Bundle, the concepts the emitter shares between messages included,
    changes neither a later Result's Bundle nor its JSON."""
    converter = api.Converter()
    first = converter.convert(GOOD.read_bytes())
    assert first.bundle is not None
    report = next(
        e["resource"]
        for e in first.bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
    )
    report["category"][0]["coding"][0]["code"] = "edited"
    assert first.bundle is first.bundle  # parsed once, then kept
    second = converter.convert(GOOD.read_bytes())
    assert second.bundle is not None
    assert b'"edited"' not in (second.bundle_json or b"")
    assert "edited" not in json.dumps(second.bundle, default=str)
    assert dumps(second.bundle) == second.bundle_json  # the same Bundle, decimals digit for digit


def test_hr_status_is_reported() -> None:
    result = api.convert((FIXTURES / "hl7v2" / "er-10.5-pgr-0.hl7").read_bytes())
    assert result.hr_statuses == (HrStatus.POSITIVE,)


def test_ack_answers_as_the_service_would() -> None:
    good = api.convert(GOOD.read_bytes()).ack(at=AT)
    assert good is not None
    msh, msa = good.split(b"\r")[:2]
    assert msh.startswith(b"MSH|^~\\&|HER2-ADAPTER|ONCOLOGY|COPATH|GOODHEALTH PATHOLOGY|")
    assert b"|20240305163000+0000|" in msh
    assert msa == b"MSA|AA|ihc3-positive"
    rejected = api.convert((FIXTURES / "hl7v2" / "bad-glucose-only.hl7").read_bytes())
    segments = (rejected.ack(at=AT) or b"").split(b"\r")
    assert segments[1].startswith(b"MSA|AE|bad-glucose-only|NO-HER2-RESULT: ")
    assert segments[2].startswith(b"ERR|")


def test_unreadable_hl7_gets_ar() -> None:
    result = api.convert((FIXTURES / "hl7v2" / "bad-obx-before-obr.hl7").read_bytes())
    assert result.error is not None
    assert result.error.code == "HL7-MALFORMED"
    assert (result.ack(at=AT) or b"").split(b"\r")[1].startswith(b"MSA|AR|")


def test_fhir_has_no_ack_and_takes_a_sender() -> None:
    exlab = (FIXTURES / "fhir" / "message-example-lab.json").read_bytes()
    with_examples = api.Converter(mappings=example_mappings_dir())
    result = with_examples.convert(exlab)
    assert result.ok, result.error
    assert result.format is SourceFormat.FHIR
    assert result.ack() is None
    shipped = api.convert(exlab)  # the example lab is not active in the shipped mappings
    assert shipped.bundle_json != result.bundle_json


def test_sender_names_a_fhir_source() -> None:
    """``sender`` does what ``convert --source`` does."""
    hl7_bundle = api.convert(
        (FIXTURES / "hl7v2" / "exlab-sp-ge6.hl7").read_bytes(), mappings=example_mappings_dir()
    )
    assert hl7_bundle.bundle_json is not None
    source = "https://lis.example-pathology.org/fhir"
    converter = api.Converter(mappings=example_mappings_dir())
    without = converter.convert(hl7_bundle.bundle_json)
    named = converter.convert(hl7_bundle.bundle_json, sender=source)
    assert named.ok
    assert named.bundle_json != without.bundle_json


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "no message in the input"),
        (BATCH.read_bytes(), "3 messages in one input; convert_all() takes batches"),
    ],
    ids=["empty", "batch"],
)
def test_convert_takes_one_message(data: bytes, reason: str) -> None:
    result = api.convert(data)
    assert result.error is not None
    assert (result.error.code, result.error.reason) == ("HL7-MALFORMED", reason)
    assert result.bundle is None


def test_bad_mappings_directory_raises(tmp_path: Path) -> None:
    """A wrong configuration is the caller's to fix: it raises, unlike bad input."""
    from adapter.errors import MappingFileError

    with pytest.raises(MappingFileError):
        api.Converter(mappings=tmp_path / "missing")


def test_public_names() -> None:
    assert sorted(api.__all__) == ["Converter", "Result", "convert", "convert_all"]
