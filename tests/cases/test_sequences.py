"""Message sequences end to end: one case per specimen, whatever the order and the transport.

Each folder of ``fixtures/cases/`` is run as ``convert`` runs its files: in name order, one run.
Checks: the final state of every case is the hand-written expectation (expectations.toml); every
Bundle is byte-identical to the reviewed golden file (``HER2_UPDATE_GOLDENS=1`` rewrites them;
read the diff); every Bundle is valid R4; and a receiver that PUTs every Bundle in turn ends
with one report of record per case, referencing only results it holds and that still count.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapter.cases import PriorMessage
from adapter.cases.combine import CaseView
from adapter.cases.log import CaseLog
from adapter.config import Settings
from adapter.pipeline import Context, Outcome, RawMessage, process, split_input

ROOT = Path(__file__).resolve().parents[2]
SEQUENCES = ROOT / "fixtures" / "cases"
EXPECTED = ROOT / "fixtures" / "expected" / "cases"
UPDATE = os.environ.get("HER2_UPDATE_GOLDENS") == "1"
SPECS: dict[str, Any] = tomllib.loads((SEQUENCES / "expectations.toml").read_text("utf-8"))
NAMES = sorted(SPECS)


@pytest.fixture(scope="module")
def context() -> Context:
    return Context.from_settings(Settings())


def messages(name: str) -> list[RawMessage]:
    return [m for f in sorted((SEQUENCES / name).iterdir()) for m in split_input(f.read_bytes())]


def run(sequence: list[RawMessage], context: Context) -> list[Outcome]:
    cases = CaseLog()
    outcomes = []
    for message in sequence:
        outcome = process(message, context, cases.prior)
        assert outcome.error is None, (message.position, outcome.error)
        assert outcome.application is not None
        cases.add(PriorMessage(message.data, message.format), outcome.application)
        outcomes.append(outcome)
    return outcomes


def final_cases(outcomes: list[Outcome]) -> list[CaseView]:
    """The last view of every case, in the order the cases were first touched."""
    last: dict[str, CaseView] = {}
    for outcome in outcomes:
        assert outcome.application is not None
        for view in outcome.application.cases:
            last[view.case_id] = view
    return list(last.values())


def test_every_sequence_has_expectations() -> None:
    folders = {p.name for p in SEQUENCES.iterdir() if p.is_dir()}
    assert folders == set(SPECS)


@pytest.mark.parametrize("name", NAMES)
def test_final_cases_are_what_the_spec_says(name: str, context: Context) -> None:
    finals = final_cases(run(messages(name), context))
    wanted = SPECS[name]["cases"]
    assert len(finals) == len(wanted)
    for view, want in zip(finals, wanted, strict=True):
        got = view.classification
        assert got.official_result.value == want["official"]
        assert got.category.value == want["category"]
        assert got.ish_group == want.get("ish_group")
        assert (got.hr_status.value if got.hr_status else None) == want.get("hr_status")
        assert view.record.report_status.value == want["status"]
        assert len(view.result_ids) == want["results"]
        assert set(want.get("flags", [])) <= {flag.code.value for flag in got.flags}


@pytest.mark.parametrize("name", NAMES)
def test_bundles_are_the_reviewed_golden_file(name: str, context: Context) -> None:
    produced = b"".join(
        o.bundle_json + b"\n" for o in run(messages(name), context) if o.bundle_json
    )
    golden = EXPECTED / f"{name}.ndjson"
    if UPDATE and (not golden.exists() or golden.read_bytes() != produced):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(produced)
    assert produced == golden.read_bytes(), f"{golden} differs: review the change"


@pytest.mark.parametrize("name", NAMES)
def test_bundles_are_valid_r4(name: str, context: Context, valid_r4: Callable[[Any], None]) -> None:
    for outcome in run(messages(name), context):
        valid_r4(outcome.bundle_json)


def receive(outcomes: list[Outcome]) -> dict[str, dict[str, Any]]:
    """A receiver that applies every entry of every Bundle, in order.

    The adapter's own resources are PUTs; what the receiver already has (the Patient, the lab)
    is a conditional create, kept once.
    """
    held: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        assert outcome.bundle_json is not None
        for entry in orjson.loads(outcome.bundle_json)["entry"]:
            request, resource = entry["request"], entry["resource"]
            if request["method"] == "POST":
                assert "ifNoneExist" in request
                held.setdefault(f"{resource['resourceType']}/{resource['id']}", resource)
                continue
            assert request["method"] == "PUT"
            held[request["url"]] = resource
    return held


@pytest.mark.parametrize("name", NAMES)
def test_a_receiver_that_puts_everything_holds_one_correct_report_per_case(
    name: str, context: Context
) -> None:
    outcomes = run(messages(name), context)
    held = receive(outcomes)
    finals = final_cases(outcomes)
    reports = [r for r in held.values() if r["resourceType"] == "DiagnosticReport"]
    assert sorted(r["id"] for r in reports) == sorted(v.report_id for v in finals)
    for view in finals:
        report = held[f"DiagnosticReport/{view.report_id}"]
        assert report["conclusionCode"][0]["coding"][0]["code"] == view.classification.category
        referenced = [
            item["reference"].removeprefix("urn:uuid:").removeprefix("Observation/")
            for item in report["result"]
        ]
        # every current result, then the summary and the ER / PgR status Observations
        assert referenced[: len(view.result_ids) + 1] == [*view.result_ids, view.summary_id]
        for result_id in referenced:
            assert held[f"Observation/{result_id}"]["status"] != "entered-in-error"


@pytest.mark.parametrize(
    "name", [n for n in NAMES if len(messages(n)) == 2 and len(SPECS[n]["cases"]) == 1]
)
def test_two_messages_in_either_order_give_the_same_case(name: str, context: Context) -> None:
    """ISH before IHC too: the classifier sees the whole case whatever arrived first."""
    forward = final_cases(run(messages(name), context))
    backward = final_cases(run(messages(name)[::-1], context))
    assert [v.classification for v in backward] == [v.classification for v in forward]


def test_a_deleted_result_leaves_the_case_as_if_never_sent(context: Context) -> None:
    outcomes = run(messages("delete-ish"), context)
    before = outcomes[SPECS["delete-ish"]["as_after"] - 1].application
    assert before is not None
    (after,) = final_cases(outcomes)
    assert after.classification == before.cases[0].classification
    assert after.result_ids == before.cases[0].result_ids


@pytest.mark.parametrize("name", ["equal-accession-two-patients", "equal-accession-two-senders"])
def test_equal_numbers_of_two_patients_or_senders_share_no_resource(
    name: str, context: Context
) -> None:
    """Never merged, and no id of a patient's resources in common (issue 16).

    The lab and the interpreting pathologist (Organization, Practitioner) are the same people
    for both, and are the same resources.
    """
    by_subject: dict[str, set[str]] = {}
    for outcome in run(messages(name), context):
        assert outcome.bundle_json is not None
        for entry in orjson.loads(outcome.bundle_json)["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] in ("Organization", "Practitioner"):
                continue
            subject = resource.get("subject", {}).get("reference") or f"urn:uuid:{resource['id']}"
            by_subject.setdefault(subject, set()).add(
                f"{resource['resourceType']}/{resource['id']}"
            )
    first, second = by_subject.values()
    assert first.isdisjoint(second)


def test_the_first_patient_keeps_the_ids_it_had_alone(context: Context) -> None:
    """Ids of a patient's message are those it gets converted alone (stores keep their ids)."""
    sequence = messages("equal-accession-two-patients")
    together = run(sequence, context)
    alone = run(sequence[:1], context)
    assert together[0].bundle_json == alone[0].bundle_json
    assert together[2].bundle_json != run(sequence[2:], context)[0].bundle_json
