"""How a record finds its case when keys are missing or disagree (docs/cases.md, the keys)."""

from __future__ import annotations

import re
from pathlib import Path

from adapter.cases import PriorMessage
from adapter.cases.log import CaseLog
from adapter.config import Settings
from adapter.model import SourceFormat
from adapter.pipeline import Context, Outcome, RawMessage, process

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "cases"
CONTEXT = Context.from_settings(Settings())


def fixture(name: str) -> str:
    return (CASES / name).read_bytes().decode()


def changed(text: str, control_id: str, pattern: str, replacement: str) -> bytes:
    text = re.sub(r"(ORU_R01\|)[^|]*", rf"\g<1>{control_id}", text, count=1)
    return re.sub(pattern, replacement, text).encode()


def run(*messages: bytes) -> list[Outcome]:
    cases = CaseLog()
    outcomes = []
    for data in messages:
        outcome = process(RawMessage(data, SourceFormat.HL7V2), CONTEXT, cases.prior)
        assert outcome.application is not None, outcome.error
        cases.add(PriorMessage(data, SourceFormat.HL7V2), outcome.application)
        outcomes.append(outcome)
    return outcomes


def case_of(outcome: Outcome) -> str:
    assert outcome.application is not None
    (order,) = outcome.application.orders
    return order.case_id


def test_no_specimen_under_an_accession_of_several_specimens_is_a_case_of_its_own() -> None:
    left = fixture("two-specimens-one-patient/1-left-ihc3.hl7")
    right = fixture("two-specimens-one-patient/2-right-ihc0.hl7")
    unnamed = changed(right, "unnamed-1", r"SPM\|[^\r]*\r", "")
    outcomes = run(left.encode(), right.encode(), unnamed)
    cases = [case_of(o) for o in outcomes]
    assert len(set(cases)) == 3  # never merged into either specimen's case
    assert outcomes[2].application is not None
    (view,) = outcomes[2].application.cases
    assert "CASE-SPECIMEN-NOT-NAMED" in {w.code for w in view.record.warnings}


def test_no_specimen_under_an_accession_of_one_specimen_joins_it() -> None:
    ihc = fixture("ihc2-then-ish-g5/1-ihc.hl7")
    ish = changed(fixture("ihc2-then-ish-g5/2-ish.hl7"), "no-spm-1", r"SPM\|[^\r]*\r", "")
    first, second = run(ihc.encode(), ish)
    assert case_of(first) == case_of(second)
    assert second.classifications[0].category.value == "HER2-low"


def test_a_specimen_named_later_joins_the_accession_case_that_had_none() -> None:
    ihc = changed(fixture("ihc2-then-ish-g5/1-ihc.hl7"), "no-spm-0", r"SPM\|[^\r]*\r", "")
    ish = fixture("ihc2-then-ish-g5/2-ish.hl7").encode()
    first, second = run(ihc, ish)
    assert case_of(first) == case_of(second)


def test_no_patient_identifier_never_joins() -> None:
    """Without PID-3 nothing tells two patients apart: each order is a case of its own."""
    ihc = changed(fixture("ihc2-then-ish-g5/1-ihc.hl7"), "anon-1", r"PID\|1\|\|[^|]*", "PID|1||")
    ish = changed(fixture("ihc2-then-ish-g5/2-ish.hl7"), "anon-2", r"PID\|1\|\|[^|]*", "PID|1||")
    first, second = run(ihc, ish)
    assert case_of(first) != case_of(second)
    assert second.classifications[0].category.value != "HER2-low"


def test_a_placer_number_never_matches_a_filler_number() -> None:
    """Numbers keep their kind: an order whose placer number equals another's filler is apart."""
    ihc = changed(fixture("ihc2-then-ish-g5/1-ihc.hl7"), "kind-1", r"SPM\|[^\r]*\r", "")
    ish = changed(
        fixture("ihc2-then-ish-g5/2-ish.hl7"),
        "kind-2",
        r"(ORC\|RE\|)PLC9005\^EHR\|SP26-09005\^COPATH|(OBR\|2\|)PLC9005\^EHR\|SP26-09005\^COPATH|SPM\|[^\r]*\r",
        lambda m: (
            (m.group(1) or m.group(2) or "") + "SP26-09005^EHR|OTHER-1^COPATH"
            if (m.group(1) or m.group(2))
            else ""
        ),
    )
    first, second = run(ihc, ish)
    assert case_of(first) != case_of(second)
