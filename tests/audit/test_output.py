"""The audit over the adapter's own output: Bundles, and a receiver's export of them, give the
figures the messages give; a third party's Bundle beside them is classified as input."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from audit_traffic import audit_of, cell, known_traffic, message, reflex_traffic, store_messages
from typer.testing import CliRunner

from adapter.api import Converter
from adapter.cli import app

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "fixtures" / "cases"
MCODE = ROOT / "tests/peers/packages/hl7.fhir.us.mcode/package/example"
GOODHEALTH_LAB = "GOODHEALTH PATHOLOGY"  # DiagnosticReport.performer: MSH-4 (OBX-23 when sent)


def bundles_of(messages: list[bytes]) -> list[dict[str, Any]]:
    """The Bundles ``convert`` writes for the messages, in one run (cases combined)."""
    converter = Converter(combine=True)
    found = []
    for data in messages:
        for result in converter.convert_all(data):
            if result.bundle_json is not None:
                found.append(orjson.loads(result.bundle_json))
    return found


def ndjson(items: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


def export_of(bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a FHIR server holds after taking each transaction in turn, as its NDJSON export:
    the latest version of every resource, by type and id, references as ``Type/id``."""
    held: dict[tuple[str, str], dict[str, Any]] = {}
    for bundle in bundles:
        urls = {
            e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle["entry"]
        }
        for entry in bundle["entry"]:
            text = orjson.dumps(entry["resource"]).decode()
            text = re.sub(
                r'"(urn:uuid:[0-9a-f-]+)"', lambda m, urls=urls: f'"{urls.get(m[1], m[1])}"', text
            )
            resource = orjson.loads(text)
            held[(resource["resourceType"], resource["id"])] = resource
    return [held[key] for key in sorted(held)]


def _senders_renamed(audit: dict[str, Any]) -> dict[str, Any]:
    """The messages' senders (MSH-3^MSH-4) as the Bundles name them (the performer, MSH-4)."""
    text = orjson.dumps(audit).decode()
    for sender in audit["senders"]:
        text = text.replace(f'"{sender}"', f'"{sender.split("^", 1)[1]}"')
    return dict(orjson.loads(text))


def _audit(runner: CliRunner, *paths: Path) -> dict[str, Any]:
    result = runner.invoke(app, ["audit", *map(str, paths), "--json", "-"])
    assert result.exit_code == 0, result.output
    return dict(orjson.loads(result.stdout))


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def traffic() -> list[bytes]:
    """The known traffic of the audit tests, less its one message with no HER2 result (it
    gives no Bundle), and the reflex traffic (ISH in later messages)."""
    cases = [case for case in known_traffic() if case.ihc is not None]
    return [message(case, n) for n, case in enumerate(cases, start=1)] + reflex_traffic()


def test_bundles_give_the_figures_of_their_messages(
    runner: CliRunner, tmp_path: Path, traffic: list[bytes]
) -> None:
    """Every figure, drift test included, over the Bundles equals the figures over the
    messages that made them: categories, IHC classes, work-up and IHC→ISH hours, the lab's
    calls, flags, unmapped codes by code."""
    messages = tmp_path / "messages"
    messages.mkdir()
    for number, data in enumerate(traffic, start=1):
        (messages / f"m{number:03d}.hl7").write_bytes(data)
    (tmp_path / "bundles.ndjson").write_bytes(ndjson(bundles_of(traffic)))
    from_messages = _senders_renamed(_audit(runner, messages))
    from_bundles = _audit(runner, tmp_path / "bundles.ndjson")
    assert from_bundles["cells"] == from_messages["cells"]
    assert from_bundles["drift"] == from_messages["drift"]
    assert from_bundles["drift"]["flagged"]  # LAB-B's April jump, as over the messages
    april = cell(from_bundles, "LAB-B PATHOLOGY", "2024-04")
    assert april["quality"]["unused_codes"] == [
        {"kind": "unmapped-code", "code": "urn:her2-adapter:local:99LOC|KI67", "count": 1}
    ]
    assert april["disagreements"]["by_call"] == {"positive → HER2-low": 1}


def test_a_receivers_export_gives_the_same_figures(
    runner: CliRunner, tmp_path: Path, traffic: list[bytes]
) -> None:
    """A server that took every Bundle holds each resource once, references as Type/id: its
    NDJSON export audits as the Bundles do, the reflex ISH's hours included."""
    bundles = bundles_of(traffic)
    (tmp_path / "bundles.ndjson").write_bytes(ndjson(bundles))
    (tmp_path / "export.ndjson").write_bytes(ndjson(export_of(bundles)))
    from_bundles = _audit(runner, tmp_path / "bundles.ndjson")
    from_export = _audit(runner, tmp_path / "export.ndjson")
    assert from_export["cells"] == from_bundles["cells"]
    reflex = cell(from_export, "LAB-R PATHOLOGY", "2024-03")["workup"]
    assert (reflex["ihc_to_ish_timed"], reflex["ihc_to_ish_median_hours"]) == (4, 96.0)


def test_a_case_over_two_bundle_files_counts_once(runner: CliRunner, tmp_path: Path) -> None:
    """The IHC 2+ Bundle and the reflex ISH Bundle in two files: the second's case report lists
    the first's IHC as Observation/<id>; one report, with its ISH, 52.25 h apart (OBR-22)."""
    files = sorted((CASES / "ihc2-then-ish-g2").iterdir())
    for number, bundle in enumerate(bundles_of([path.read_bytes() for path in files]), 1):
        (tmp_path / f"{number}.json").write_bytes(orjson.dumps(bundle))
    month = cell(_audit(runner, tmp_path), GOODHEALTH_LAB, "2026-03")
    assert month["reports"] == 1
    assert month["categories"]["breast"]["counts"]["HER2-equivocal"] == 1
    work = month["workup"]
    assert (work["ihc2"], work["ihc2_with_ish"], work["ihc_to_ish_median_hours"]) == (1, 1, 52.25)
    assert work["groups"]["2"] == 1


@pytest.mark.parametrize("folder", sorted(p.name for p in CASES.iterdir() if p.is_dir()), ids=str)
def test_every_case_fixture_audits_the_same_from_its_bundles(
    runner: CliRunner, tmp_path: Path, folder: str
) -> None:
    """Each case fixture's messages, and its Bundles, give the same figures."""
    files = sorted((CASES / folder).iterdir())
    (tmp_path / "out.ndjson").write_bytes(ndjson(bundles_of([p.read_bytes() for p in files])))
    from_messages = _audit(runner, *files)
    from_bundles = _audit(runner, tmp_path / "out.ndjson")
    strip = {"unprocessed"}  # rejected messages give no Bundle
    for audit in (from_messages, from_bundles):
        for found in audit["cells"]:
            found["sender"] = "-"
            found["quality"] = {k: v for k, v in found["quality"].items() if k not in strip}
    by_period = lambda audit: sorted(  # noqa: E731 - one line's sort key
        orjson.dumps(c, option=orjson.OPT_SORT_KEYS) for c in audit["cells"]
    )
    assert by_period(from_bundles) == by_period(from_messages)


@pytest.mark.skipif(not MCODE.is_dir(), reason="bash tests/peers/fetch-packages.sh")
def test_a_third_partys_bundle_beside_ours_is_classified_as_input(
    runner: CliRunner, tmp_path: Path
) -> None:
    """HL7's mCODE example Bundle (a collection with a HER2 TumorMarkerTest, no adapter
    summary) is a message to classify; our Bundles beside it are audited as output."""
    (tmp_path / "mcode.json").write_bytes(
        (MCODE / "Bundle-mcode-patient-bundle-jenny-m.json").read_bytes()
    )
    files = sorted((CASES / "ihc2-then-ish-g2").iterdir())
    (tmp_path / "ours.ndjson").write_bytes(ndjson(bundles_of([p.read_bytes() for p in files])))
    audit = _audit(runner, tmp_path)
    assert audit["senders"] == ["GOODHEALTH PATHOLOGY", "fhir"]
    mcode = cell(audit, "fhir", "all")
    assert mcode["reports"] == 1
    assert mcode["categories"]["breast"]["counts"]["HER2-negative"] == 1
    assert cell(audit, GOODHEALTH_LAB, "all")["workup"]["ihc2_with_ish"] == 1


@pytest.mark.skipif(not MCODE.is_dir(), reason="bash tests/peers/fetch-packages.sh")
def test_another_systems_reports_in_an_export_of_ours_are_classified(
    runner: CliRunner, tmp_path: Path
) -> None:
    """A registry's export holding our resources and the mCODE example's: ours are audited as
    output; each of the other reports, with what it names, is classified as input (the one
    with the HER2 TumorMarkerTest is HER2-negative, the other has no HER2 result)."""
    files = sorted((CASES / "ihc2-then-ish-g2").iterdir())
    ours = export_of(bundles_of([p.read_bytes() for p in files]))
    mcode = orjson.loads((MCODE / "Bundle-mcode-patient-bundle-jenny-m.json").read_bytes())
    theirs = export_of([mcode])
    (tmp_path / "export.ndjson").write_bytes(ndjson(ours + theirs))
    audit = _audit(runner, tmp_path / "export.ndjson")
    assert audit["senders"] == [GOODHEALTH_LAB, "fhir"]
    other = cell(audit, "fhir", "all")
    assert other["reports"] == 1
    assert other["categories"]["breast"]["counts"]["HER2-negative"] == 1
    assert other["quality"]["unprocessed"] == {"NO-HER2-RESULT": 1}
    assert cell(audit, GOODHEALTH_LAB, "all")["reports"] == 1


def test_a_store_of_the_messages_agrees_with_their_bundles(
    runner: CliRunner, tmp_path: Path
) -> None:
    """The store (the service's own index) and the Bundles it wrote give the same cells."""
    data = reflex_traffic()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store_messages(url, data)
    (tmp_path / "out.ndjson").write_bytes(ndjson(bundles_of(data)))
    assert (
        _audit(runner, tmp_path / "out.ndjson")["cells"] == _senders_renamed(audit_of(url))["cells"]
    )


def test_notes_in_a_labs_own_words_are_not_taken(runner: CliRunner, tmp_path: Path) -> None:
    """Only the emitter's own note forms count: a lab note shaped like a warning or a "not
    used" line, with no adapter code or locator, adds nothing."""
    files = sorted((CASES / "ihc2-then-ish-g2").iterdir())
    bundles = bundles_of([p.read_bytes() for p in files])
    for entry in bundles[-1]["entry"]:
        resource = entry["resource"]
        if any(
            c.get("code", {}).get("coding", [{}])[0].get("code") == "her2-category"
            for c in resource.get("component", [])
        ):
            resource["note"] = [
                {"text": "Warning DOE: call Dr Smith"},
                {"text": "Jane Doe (MRN 123) not used: see chart"},
                {"text": "Warning ISH-VALUE-FAILED: the lab says so"},
                {"text": "OBX[4] (99LOC KI67) not used: the code is not in the mappings"},
            ]
    (tmp_path / "out.ndjson").write_bytes(ndjson(bundles))
    quality = cell(_audit(runner, tmp_path / "out.ndjson"), GOODHEALTH_LAB, "2026-03")["quality"]
    assert quality["warnings"] == {"ISH-VALUE-FAILED": 1}
    assert quality["unused_codes"] == [{"kind": "unmapped-code", "code": "99LOC|KI67", "count": 1}]


def test_a_case_report_of_another_shape_is_counted_as_invalid(
    runner: CliRunner, tmp_path: Path
) -> None:
    """An edited Bundle whose case report and summary break the emitter's shapes is one line of
    FHIR-INVALID, never a traceback or a guess; its intact neighbour still counts."""
    files = sorted((CASES / "two-specimens-one-patient").iterdir())
    bundles = bundles_of([p.read_bytes() for p in files])
    for entry in bundles[0]["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Observation" and "component" in resource:
            resource["component"][0]["valueCodeableConcept"] = "HER2-positive"
            resource["note"] = {"text": "not a list"}
        if resource["resourceType"] == "DiagnosticReport":
            resource["performer"] = "Organization/x"
    bundles.append({"resourceType": "Bundle", "entry": {"resource": "broken"}})
    (tmp_path / "out.ndjson").write_bytes(ndjson(bundles))
    audit = _audit(runner, tmp_path / "out.ndjson")
    assert cell(audit, "(no performer named)", "undated")["quality"]["unprocessed"] == {
        "FHIR-INVALID": 1
    }
    assert cell(audit, GOODHEALTH_LAB, "2026-03")["reports"] == 1
