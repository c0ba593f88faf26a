"""What the audit keeps of one classified report, from real pipeline output."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from audit_traffic import Case, message

from adapter.audit.facts import IhcClass, ReportFacts, UnusedKind, case_facts, unused_kind
from adapter.config import Settings
from adapter.pipeline import Context, process, split_input


@pytest.fixture(scope="module")
def context() -> Context:
    return Context.from_settings(Settings())


def facts_of(case: Case, context: Context) -> ReportFacts:
    (raw,) = split_input(message(case, 1))
    outcome = process(raw, context)
    assert outcome.error is None
    assert outcome.application is not None
    (view,) = outcome.application.cases
    return case_facts(view)


DAY = date(2024, 3, 10)


@pytest.mark.parametrize(
    ("ihc", "expected"),
    [
        ("0 null", IhcClass.ZERO_NULL),
        ("0 ultralow", IhcClass.ZERO_ULTRALOW),
        ("0", IhcClass.ZERO_UNKNOWN),
        ("1+", IhcClass.ONE),
        ("2+", IhcClass.TWO),
        ("3+", IhcClass.THREE),
    ],
)
def test_ihc_classes(ihc: str, expected: IhcClass, context: Context) -> None:
    """Each reported IHC score lands in its class; IHC 0 by the sub-type the rules assigned."""
    assert facts_of(Case("LAB", DAY, ihc=ihc), context).ihc is expected


def test_a_gastric_ihc_0_has_no_sub_type(context: Context) -> None:
    """Sub-types are a breast concept: a gastric IHC 0 is 'unknown sub-type'."""
    facts = facts_of(Case("LAB", DAY, ihc="0", site="stomach"), context)
    assert (facts.tissue, facts.ihc) == ("gastroesophageal", IhcClass.ZERO_UNKNOWN)


def test_work_up_facts(context: Context) -> None:
    """An IHC 2+ with a group 4 count: ISH present, group, hours from IHC to ISH, pending."""
    facts = facts_of(Case("LAB", DAY, ihc="2+", ish=("1.6", "4.9", "3.06"), ish_hours=30), context)
    assert facts.ish_reported
    assert facts.ish_group == 4
    assert facts.ihc_to_ish_hours == 30.0
    assert "pending-workup" in facts.flags
    assert facts.category == "HER2-equivocal"
    assert facts.reported_on == date(2024, 3, 13)  # OBR-22, three days after collection


def test_an_unmapped_code_is_kept_by_code_without_its_value(context: Context) -> None:
    """A result the mappings do not know is kept as its code and why, never its value."""
    facts = facts_of(Case("LAB", DAY, ihc="1+", unmapped_code="KI67"), context)
    assert facts.unused == ((UnusedKind.UNMAPPED_CODE, "urn:her2-adapter:local:99LOC|KI67"),)
    assert b"30" not in facts.to_json().replace(b"2024-03-13", b"")


def test_the_labs_overall_call_is_kept(context: Context) -> None:
    """The lab's overall call is kept beside our category for the disagreement table."""
    facts = facts_of(Case("LAB", DAY, ihc="1+", stated="Positive"), context)
    assert (facts.lab_stated, facts.category) == ("positive", "HER2-low")
    assert "lab-interpretation-differs" in facts.flags


def test_facts_survive_json(context: Context) -> None:
    """What the store keeps reads back as the same facts."""
    facts = facts_of(Case("LAB", DAY, ihc="2+", ish=("1.2", "2.5", "2.1")), context)
    assert ReportFacts.from_json(facts.to_json()) == facts


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("result code not in the mappings", UnusedKind.UNMAPPED_CODE),
        ("result code not in the mappings (sender example-lab)", UnusedKind.UNMAPPED_CODE),
        (
            "code 16112-5 is mapped to er-percent but its display names Ki-67: not used",
            UnusedKind.CODE_DISPLAY_MISMATCH,
        ),
        ("NM value not understood for her2-ihc", UnusedKind.NOT_UNDERSTOOD),
        ("not classified: Ki-67 is not a HER2 result", UnusedKind.NOT_CLASSIFIED),
        ("entered in error (OBX-11 W)", UnusedKind.ENTERED_IN_ERROR),
        ("no value (OBX-5 empty)", UnusedKind.NO_VALUE),
        ("something new", UnusedKind.OTHER),
    ],
)
def test_unused_reasons_fall_into_kinds(reason: str, kind: UnusedKind) -> None:
    """Ingest's reasons for not using a result fall into the data-quality kinds."""
    assert unused_kind(reason) is kind


def test_the_day_is_the_labs_own(context: Context) -> None:
    """Issued at 23:00 -05:00 on 31 March is 1 April in UTC, and 31 March for the audit."""
    case = Case("LAB", date(2024, 3, 28), ihc="1+")
    raw = message(case, 1).replace(b"20240331090000+0000", b"20240331230000-0500")
    (split,) = split_input(raw)
    outcome = process(split, context)
    assert outcome.application is not None
    (view,) = outcome.application.cases
    assert case_facts(view).reported_on == date(2024, 3, 31)


def test_a_code_whose_display_names_another_test_is_counted_by_code(context: Context) -> None:
    """Ki-67 sent under ER's LOINC code (fixtures/hl7v2/ki67-under-er-loinc.hl7)."""
    raw = (Path(__file__).parents[2] / "fixtures/hl7v2/ki67-under-er-loinc.hl7").read_bytes()
    (split,) = split_input(raw)
    outcome = process(split, context)
    assert outcome.application is not None
    kinds = {kind for view in outcome.application.cases for kind, _ in case_facts(view).unused}
    assert UnusedKind.CODE_DISPLAY_MISMATCH in kinds
