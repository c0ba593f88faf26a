"""Guideline classification: ``classify(record) -> Classification``, a pure, total function.

The tissue picks the rule set (breast ASCO/CAP 2018-2023, gastroesophageal Bartley 2016); an
unknown tissue runs both and keeps a result only where they agree. Every rule and threshold lives
in ``table.py``; ``docs/rules.md`` is rendered from it.
"""

from __future__ import annotations

from adapter.classify.her2_breast import breast_category, breast_status
from adapter.classify.her2_common import (
    Her2Status,
    absent_her2,
    flag_lab_calls,
    flag_reading,
    flag_stated_only,
    non_negative_category,
)
from adapter.classify.her2_gastric import gastric_category, gastric_status
from adapter.classify.receptors import classify_receptors
from adapter.classify.table import (
    GUIDELINE_BREAST,
    GUIDELINE_GASTRIC,
    GUIDELINE_RECEPTORS,
    PENDING_TISSUE,
)
from adapter.classify.therapy import fire_therapy_rules
from adapter.classify.trace import Trace
from adapter.model import (
    AssayRecord,
    Category,
    Classification,
    FlagCode,
    OfficialResult,
    Tissue,
)

__all__ = ["classify"]


def classify(record: AssayRecord) -> Classification:
    tissue = record.specimen.tissue
    absent_trace = Trace()
    flag_code_findings(record, absent_trace)
    absent = absent_her2(record, absent_trace)
    if absent is not None:
        return _without_her2(record, absent, absent_trace)
    if tissue is Tissue.BREAST:
        status = breast_status(record)
        category = breast_category(status)
        guidelines = [GUIDELINE_BREAST]
    elif tissue is Tissue.GASTROESOPHAGEAL:
        status = gastric_status(record)
        category = gastric_category(status)
        guidelines = [GUIDELINE_GASTRIC]
    else:
        status, category = _unknown_tissue(record)
        guidelines = [GUIDELINE_BREAST, GUIDELINE_GASTRIC]
    trace = status.trace
    trace.absorb(absent_trace)
    flag_stated_only(record, status.official, trace)
    flag_lab_calls(record, status.official, category, trace)
    flag_reading(record, trace)
    receptors = classify_receptors(record.er, record.pgr, trace)
    if receptors.reported:
        guidelines.append(GUIDELINE_RECEPTORS)
    fire_therapy_rules(tissue, category, receptors.hr, trace)
    return Classification(
        guideline="; ".join(guidelines),
        tissue=tissue,
        official_result=status.official,
        category=category,
        ish_group=status.ish_group,
        er_result=receptors.er,
        pgr_result=receptors.pgr,
        hr_status=receptors.hr,
        flags=tuple(trace.flags),
        rules=tuple(trace.rules),
        comments=tuple(trace.comments),
    )


# Ingest findings that a reviewer must see as flags, not only as notes.
_CODE_FINDINGS: dict[str, FlagCode] = {
    "CODE-DISPLAY-MISMATCH": FlagCode.CODE_DISPLAY_MISMATCH,
    "CODE-INFERRED": FlagCode.CODE_INFERRED,
    "CONFLICTING-PROBE": FlagCode.PROBE_CONFLICTING,
}


def flag_code_findings(record: AssayRecord, trace: Trace) -> None:
    """A code whose display names another test (not used), a local code read from its display
    (used), and single- and dual-probe ISH both stated (the counts decide, section 3): each is
    flagged with the position and the reason."""
    for warning in record.warnings:
        code = _CODE_FINDINGS.get(warning.code)
        if code is not None:
            where = f"{warning.locator}: " if warning.locator else ""
            trace.flag(code, f"{where}{warning.message}")


def _without_her2(record: AssayRecord, category: Category, trace: Trace) -> Classification:
    """No HER2 result to classify (section 4.6): no official result; ER and PgR still are."""
    receptors = classify_receptors(record.er, record.pgr, trace)
    guideline = GUIDELINE_RECEPTORS if receptors.reported else GUIDELINE_BREAST
    return Classification(
        guideline=guideline,
        tissue=record.specimen.tissue,
        official_result=None,
        category=category,
        er_result=receptors.er,
        pgr_result=receptors.pgr,
        hr_status=receptors.hr,
        flags=tuple(trace.flags),
        rules=tuple(trace.rules),
    )


def _unknown_tissue(record: AssayRecord) -> tuple[Her2Status, Category]:
    """Never guess the tissue: keep a result only when both rule sets give it."""
    breast = breast_status(record)
    gastric = gastric_status(record)
    trace = Trace()
    trace.absorb(breast.trace)
    trace.absorb(gastric.trace)
    both = (
        f"breast rules give {breast.official.value}, "
        f"gastroesophageal rules give {gastric.official.value}"
    )
    if breast.official is not gastric.official:
        # Neither rule set is picked, and no test failed: the case waits for its tissue.
        trace.fire("TISSUE-UNKNOWN", f"tissue unknown; {both}: equivocal")
        trace.flag(FlagCode.TISSUE_UNKNOWN, f"tissue unknown and the rule sets disagree: {both}")
        trace.flag(FlagCode.PENDING_WORKUP, f"equivocal, pending {PENDING_TISSUE}")
        official = OfficialResult.EQUIVOCAL
    else:
        official = breast.official
        trace.fire("TISSUE-UNKNOWN-AGREE", f"tissue unknown; both rule sets give {official.value}")
        trace.flag(
            FlagCode.TISSUE_UNKNOWN,
            f"tissue unknown; breast and gastroesophageal rules agree on {official.value}; "
            "HER2-low/ultralow/null not assigned (breast concepts)",
        )
    # ISH groups are a breast concept: not reported when the tissue is not known to be breast.
    status = Her2Status(official, None, None, trace)
    return status, non_negative_category(official, trace) or Category.HER2_NEGATIVE
