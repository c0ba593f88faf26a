"""What the audit keeps of one classified report: enums, counts and codes, no patient data.

``case_facts(view)`` runs where the Bundle is built, once per case report (the service's
workers, ``reprocess``, the audit over message files), and the store indexes the result as JSON
beside the report. Everything in it is either a value of an adapter vocabulary (category,
tissue, flag, rule id), a lab's result *code* (never its value or text), a day, or a number of
hours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import orjson

from adapter.model import (
    IHC_ANALYTES,
    ISH_ANALYTES,
    Analyte,
    AssayRecord,
    Category,
    Classification,
    Coding,
    IhcScore,
    UnusedResult,
)

if TYPE_CHECKING:
    from adapter.cases.book import Arrival
    from adapter.cases.combine import CaseView


class IhcClass(StrEnum):
    """The IHC score as the audit counts it; IHC 0 split by the sub-type the rules assigned."""

    ZERO_NULL = "0 null"
    ZERO_ULTRALOW = "0 ultralow"
    ZERO_UNKNOWN = "0 unknown sub-type"
    ONE = "1+"
    TWO = "2+"
    THREE = "3+"


class UnusedKind(StrEnum):
    """Why a reported result was not used, as a data-quality class."""

    UNMAPPED_CODE = "unmapped-code"
    CODE_DISPLAY_MISMATCH = "code-display-mismatch"  # a mapped code whose display names another
    NOT_UNDERSTOOD = "value-not-understood"
    NOT_CLASSIFIED = "not-classified"  # a code the mappings exclude on purpose (Ki-67 ...)
    ENTERED_IN_ERROR = "entered-in-error"
    NO_VALUE = "no-value"
    OTHER = "other"


# The reason texts ingest gives (adapter/ingest/obx.py, fhir_observation.py); a new wording
# falls into OTHER, and tests/audit/test_facts.py checks each class against real ingest output.
_UNUSED_MARKERS: tuple[tuple[str, UnusedKind], ...] = (
    ("not in the mappings", UnusedKind.UNMAPPED_CODE),
    (" is mapped to ", UnusedKind.CODE_DISPLAY_MISMATCH),  # adapter/ingest/codecheck.py
    ("not understood", UnusedKind.NOT_UNDERSTOOD),
    ("not classified", UnusedKind.NOT_CLASSIFIED),
    ("entered in error", UnusedKind.ENTERED_IN_ERROR),
    ("no value", UnusedKind.NO_VALUE),
)

_SCORE_CLASS = {
    IhcScore.ONE: IhcClass.ONE,
    IhcScore.TWO: IhcClass.TWO,
    IhcScore.THREE: IhcClass.THREE,
}
_ZERO_CLASS = {
    Category.HER2_NULL: IhcClass.ZERO_NULL,
    Category.HER2_ULTRALOW: IhcClass.ZERO_ULTRALOW,
}


@dataclass(frozen=True, slots=True)
class ReportFacts:
    tissue: str
    category: str
    official: str
    ihc: IhcClass | None  # None: no IHC score reported
    ish_reported: bool
    ish_group: int | None
    flags: tuple[str, ...]
    rules: tuple[str, ...]
    unused: tuple[tuple[UnusedKind, str], ...]  # (kind, "system|code") per result not used
    warnings: tuple[str, ...]  # ingest warning codes
    lab_stated: str | None  # the lab's own overall HER2 call (Interpretation), when it gave one
    reported_on: date | None  # the report's issue day (else its effective day), lab's offset
    ihc_to_ish_hours: float | None  # first ISH time minus first IHC time, when both are sent

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "tissue": self.tissue,
                "category": self.category,
                "official": self.official,
                "ihc": self.ihc,
                "ish": self.ish_reported,
                "group": self.ish_group,
                "flags": self.flags,
                "rules": self.rules,
                "unused": self.unused,
                "warnings": self.warnings,
                "lab_stated": self.lab_stated,
                "day": self.reported_on.isoformat() if self.reported_on else None,
                "ihc_to_ish_hours": self.ihc_to_ish_hours,
            }
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> ReportFacts:
        item: dict[str, Any] = orjson.loads(data)
        day = item.get("day")
        return cls(
            tissue=item["tissue"],
            category=item["category"],
            official=item["official"],
            ihc=IhcClass(item["ihc"]) if item.get("ihc") else None,
            ish_reported=bool(item.get("ish")),
            ish_group=item.get("group"),
            flags=tuple(item.get("flags", ())),
            rules=tuple(item.get("rules", ())),
            unused=tuple((UnusedKind(kind), code) for kind, code in item.get("unused", ())),
            warnings=tuple(item.get("warnings", ())),
            lab_stated=item.get("lab_stated"),
            reported_on=date.fromisoformat(day) if day else None,
            ihc_to_ish_hours=item.get("ihc_to_ish_hours"),
        )


def case_facts(view: CaseView) -> ReportFacts:
    """The facts of one case report, as the case stands after a message."""
    record, classification = view.record, view.classification
    moment = record.issued or record.effective
    lab = record.lab_interpretation
    return ReportFacts(
        tissue=classification.tissue.value,
        category=classification.category.value,
        # "none": no HER2 result to classify (HER2-not-reported / HER2-not-understood)
        official=classification.official_result.value if classification.official_result else "none",
        ihc=ihc_class(record, classification),
        ish_reported=record.her2_ish is not None,
        ish_group=classification.ish_group,
        flags=tuple(dict.fromkeys(flag.code.value for flag in classification.flags)),
        rules=tuple(dict.fromkeys(rule.rule_id for rule in classification.rules)),
        unused=tuple(_unused(item) for item in record.unused),
        warnings=tuple(warning.code for warning in record.warnings),
        lab_stated=lab.stated.value if lab is not None and lab.stated is not None else None,
        # The day as the lab wrote it (its own offset): a report issued late on 31 March counts
        # in March wherever the audit runs.
        reported_on=moment.date() if moment else None,
        ihc_to_ish_hours=ihc_to_ish_hours(view),
    )


def ihc_class(record: AssayRecord, classification: Classification) -> IhcClass | None:
    score = record.her2_ihc.score if record.her2_ihc is not None else None
    return ihc_class_of(score, classification.category)


def ihc_class_of(score: IhcScore | None, category: Category | str) -> IhcClass | None:
    """The reported score; IHC 0 is null or ultralow only when the rules made it that category
    (a sub-type is a breast concept, and one contradicted by the stained share is unknown)."""
    if score is None:
        return None
    if score is IhcScore.ZERO:
        return _ZERO_CLASS.get(Category(category), IhcClass.ZERO_UNKNOWN)
    return _SCORE_CLASS[score]


def unused_kind(reason: str) -> UnusedKind:
    lowered = reason.lower()
    return next((kind for marker, kind in _UNUSED_MARKERS if marker in lowered), UnusedKind.OTHER)


def code_label(code: Coding | None) -> str:
    """``system|code`` (or the code alone); a result code is lab vocabulary, not patient data."""
    if code is None or not code.code:
        return "(no code)"
    return f"{code.system}|{code.code}" if code.system else code.code


def _unused(item: UnusedResult) -> tuple[UnusedKind, str]:
    kind = unused_kind(item.reason)
    if item.not_understood and kind is UnusedKind.OTHER:
        kind = UnusedKind.NOT_UNDERSTOOD  # ingest says so, whatever its wording
    return kind, code_label(item.provenance.code)


def ihc_to_ish_hours(view: CaseView) -> float | None:
    """Hours from the case's first IHC result to its first ISH result, along its timeline.

    Which came first is the case's own history (the version of the case that brought each, as
    ``case show`` lists them), so a reflex ISH sent days later in another order or message
    counts. The times are the lab's, never the store's receipt clock, so a backfilled store or
    a replay measures the lab rather than the load:

    - both brought by one order in one message: their result times (OBX-14 / effective), the
      only times that tell them apart there;
    - brought by different orders or messages: the issue times (OBR-22 / issued) of the orders
      that first brought them, since result times there often repeat the specimen's
      collection time.

    None when a time is missing (never a guess), or when the ISH came before the IHC.
    """
    return turnaround(
        (o.analyte, o.effective, arrival)
        for o, arrival in zip(view.record.observations, view.arrivals, strict=True)
    )


TimedResult = tuple[Analyte, datetime | None, "Arrival"]
"""A result's analyte, its own time (OBX-14 / effective) and when it came into its case."""


def turnaround(results: Iterable[TimedResult]) -> float | None:
    """``ihc_to_ish_hours`` over results as (analyte, result time, arrival)."""
    timed = list(results)
    ihc = [(at, arrival) for analyte, at, arrival in timed if analyte in IHC_ANALYTES]
    ish = [(at, arrival) for analyte, at, arrival in timed if analyte in ISH_ANALYTES]
    if not ihc or not ish:
        return None
    first_ihc, first_ish = _first(ihc), _first(ish)
    start: datetime | None
    end: datetime | None
    if first_ihc == first_ish:
        start = min((at for at, a in ihc if a == first_ihc and at), default=None)
        end = min((at for at, a in ish if a == first_ish and at), default=None)
    else:
        start, end = first_ihc.issued, first_ish.issued
    if start is None or end is None:
        return None
    hours = (end - start).total_seconds() / 3600
    return round(hours, 2) if hours >= 0 else None


def _first(results: list[tuple[datetime | None, Arrival]]) -> Arrival:
    """The earliest arrival: the first version, and in it the order issued first."""
    return min(
        (arrival for _, arrival in results),
        key=lambda a: (
            a.version,
            a.issued is None,
            a.issued.timestamp() if a.issued else 0.0,
            a.order,
        ),
    )
