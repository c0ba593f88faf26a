"""The words a pathologist reads: ``DiagnosticReport.conclusion`` and the summary notes.

The conclusion states the official result first, then the therapy-relevant category and, where
the category is not an official result, says so (ASCO/CAP 2023 update); then the hormone receptor
status, the flags, and the guideline versions applied. Specific reasons
(which score, which ISH group, which discordance) come from the rules and flags the classifier
produced, so nothing clinical is decided here.
"""

from __future__ import annotations

from typing import Final

from adapter.classify.table import THERAPY_WORDS
from adapter.model import (
    AssayRecord,
    Category,
    Classification,
    IngestWarning,
    OfficialResult,
    ReceptorCall,
    ReportStatus,
    Tissue,
    UnusedResult,
)

OFFICIAL_RESULT_WORDS: Final[dict[OfficialResult, str]] = {
    OfficialResult.POSITIVE: "HER2 positive",
    OfficialResult.NEGATIVE: "HER2 negative",
    OfficialResult.EQUIVOCAL: "HER2 equivocal",
    OfficialResult.INDETERMINATE: "HER2 indeterminate",
}

RECEPTOR_WORDS: Final[dict[ReceptorCall, str]] = {
    ReceptorCall.POSITIVE: "positive",
    ReceptorCall.LOW_POSITIVE: "low positive",
    ReceptorCall.NEGATIVE: "negative",
}

_NOT_OFFICIAL = "is not an official ASCO/CAP result category (2023 update)"

CATEGORY_EXPLANATIONS: Final[dict[Category, str]] = {
    Category.HER2_POSITIVE: "",
    Category.HER2_LOW: f"HER2-low (IHC 1+, or IHC 2+ with negative ISH) {_NOT_OFFICIAL}.",
    Category.HER2_ULTRALOW: (
        "HER2-ultralow (IHC 0 with faint, incomplete membrane staining in >0% and ≤10% of "
        f"invasive tumour cells) {_NOT_OFFICIAL}."
    ),
    Category.HER2_NULL: (
        f"HER2-null (IHC 0 with no membrane staining) {_NOT_OFFICIAL}; it separates these "
        "tumours from HER2-ultralow."
    ),
    Category.HER2_NEGATIVE: (
        "No HER2-low, HER2-ultralow or HER2-null category is assigned: the results received do "
        "not establish which one applies (see the rules applied)."
    ),
    Category.HER2_EQUIVOCAL: (
        "An equivocal result is not a final HER2 status; ASCO/CAP require further work-up "
        "(see the rules applied)."
    ),
    Category.INDETERMINATE: (
        "No HER2 result could be established from the results received (see the flags and "
        "rules applied)."
    ),
    Category.HER2_NOT_REPORTED: (
        "This order carries no HER2 result (only ER/PgR); this is not a failed HER2 test."
    ),
    Category.HER2_NOT_UNDERSTOOD: (
        "A HER2 result was reported but its value could not be read, so no HER2 result is given; "
        "this is not a failed HER2 test. The message is kept: reprocess it once the mappings "
        "read the value."
    ),
}

ABSENT_HER2_WORDS: Final[dict[Category, str]] = {
    Category.HER2_NOT_REPORTED: "HER2 not reported",
    Category.HER2_NOT_UNDERSTOOD: "HER2 reported but not understood",
}
"""Said instead of an official result when there is none."""

STATUS_WORDS: Final = {
    ReportStatus.PRELIMINARY: "This report is preliminary: the classification may change.",
    ReportStatus.PARTIAL: "This report is partial: results are still to come.",
    ReportStatus.REGISTERED: "This report is registered only: results are still to come.",
    ReportStatus.CANCELLED: "This report was cancelled: it is not a result to act on.",
    ReportStatus.ENTERED_IN_ERROR: "This report was entered in error: it is not a result.",
    ReportStatus.CORRECTED: "This report corrects an earlier one for the same order.",
    ReportStatus.AMENDED: "This report amends an earlier one for the same order.",
    ReportStatus.UNKNOWN: "The report status was not given.",
}
"""Said first in the conclusion whenever the report is not simply final."""

GASTROESOPHAGEAL_NEGATIVE: Final = (
    "HER2-low, HER2-ultralow and HER2-null are breast cancer categories; they are not assigned "
    "in gastroesophageal adenocarcinoma."
)


def withdrawn_note() -> str:
    """The conclusion of a case whose every result was withdrawn (deleted, entered in error)."""
    return (
        "Every result of this case was withdrawn (deleted or entered in error): there is no "
        "HER2 result to act on, as if none had been sent."
    )


def conclusion(record: AssayRecord, classification: Classification) -> str:
    """The human-readable conclusion of one record's DiagnosticReport."""
    official = classification.official_result
    result = (
        ABSENT_HER2_WORDS[classification.category]
        if official is None
        else OFFICIAL_RESULT_WORDS[official]
    )
    sentences = [
        STATUS_WORDS.get(record.report_status, ""),
        f"{result}; category {classification.category.value}.",
        _category_explanation(classification),
        _not_understood_sentence(record),
        *(f"Comment: {comment}" for comment in classification.comments),
        _hormone_receptor_sentence(record, classification),
        *(THERAPY_WORDS[r.rule_id] for r in classification.rules if r.rule_id in THERAPY_WORDS),
        _flags_sentence(classification),
        f"Guidelines applied: {classification.guideline}.",
    ]
    return " ".join(sentence for sentence in sentences if sentence)


def _not_understood_sentence(record: AssayRecord) -> str:
    """Where the unread values are (HER2, ER or PgR): positions and analytes, never the values
    themselves. A report never reads as complete while a result in it was not understood."""
    places = [
        f"{u.provenance.locator} ({u.analyte.value})"
        for u in record.unused
        if u.not_understood and u.analyte is not None
    ]
    return f"Results not understood: {', '.join(places)}." if places else ""


def _category_explanation(classification: Classification) -> str:
    if (
        classification.category is Category.HER2_NEGATIVE
        and classification.tissue is Tissue.GASTROESOPHAGEAL
    ):
        return GASTROESOPHAGEAL_NEGATIVE
    return CATEGORY_EXPLANATIONS[classification.category]


def _hormone_receptor_sentence(record: AssayRecord, classification: Classification) -> str:
    calls = [
        f"{name} {RECEPTOR_WORDS[call]}"
        for name, call in (("ER", classification.er_result), ("PgR", classification.pgr_result))
        if call is not None
    ]
    if classification.hr_status is not None:
        detail = f" ({', '.join(calls)})" if calls else ""
        return f"Hormone receptor status {classification.hr_status.value}{detail}."
    if record.er is not None or record.pgr is not None:
        return "Hormone receptor status not determined from the ER/PgR results received."
    return ""


def _flags_sentence(classification: Classification) -> str:
    if not classification.flags:
        return ""
    listed = "; ".join(
        f"{flag.code.value} ({flag.reason.rstrip('. ')})" for flag in classification.flags
    )
    return f"Flags for review: {listed}."


def unused_note(unused: UnusedResult) -> str:
    """``OBX[7] (LN 2345-7) not used: <reason>``."""
    code = unused.provenance.code
    named = " ".join(part for part in (code.system, code.code) if part) if code else ""
    where = f"{unused.provenance.locator} ({named})" if named else unused.provenance.locator
    return f"{where} not used: {unused.reason}"


def warning_note(warning: IngestWarning) -> str:
    """Code and message only."""
    return f"Warning {warning.code}: {warning.message}"
