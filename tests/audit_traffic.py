"""Known test traffic for the audit: HL7 v2 ORU^R01 messages built from a few parameters.

Each ``Case`` is one breast (or stomach) HER2 report; ``message`` renders it as ER7 with the
report's day in OBR-7 / OBR-22 and, for ISH, the ISH result times ``ish_hours`` after the IHC.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from adapter.audit.figures import AuditOptions, build_audit
from adapter.audit.sources import from_store
from adapter.config import Settings
from adapter.mapping import load_mappings
from adapter.pipeline import Context
from adapter.service.handler import Service
from adapter.store import GroupCommitter, Transport, open_store

LAB_A, LAB_B, LAB_C = "LAB-A^LAB-A PATHOLOGY", "LAB-B^LAB-B PATHOLOGY", "LAB-C^LAB-C PATHOLOGY"
"""The senders of the known traffic as the store names them (MSH-3^MSH-4)."""
RECEIVED_AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
"""When the store received the traffic: after every report's own day, which the audit uses."""

# OBX-2 and OBX-5 of the IHC result for each class (OBX-3 is the tissue's IHC code).
IHC_VALUES = {
    "0 null": ("ST", "No staining"),
    "0 ultralow": ("ST", "0 with membrane staining"),
    "0": ("CWE", "0^Negative (0)^L"),
    "1+": ("CWE", "1+^Negative (1+)^L"),
    "2+": ("CWE", "2+^Equivocal (2+)^L"),
    "3+": ("CWE", "3+^Positive (3+)^L"),
}
IHC_CODES = {
    "breast": "85319-2^HER2 [Presence] in Breast cancer specimen by Immune stain^LN",
    "stomach": "18474-7^HER2 Ag [Presence] in Tissue by Immune stain^LN",
}
SITES = {
    "breast": "80248007^Left breast structure^SCT",
    "stomach": "69695003^Stomach structure^SCT",
}
ISH_CODES = (
    "49683-6^ERBB2 gene copy number/Chromosome 17 copy number in Tissue by FISH^LN",
    "74860-8^ERBB2 gene copy number/nucleus in Tissue by FISH^LN",
    "74861-6^Chromosome 17 copy number/nucleus in Tissue by FISH^LN",
)


def _segment(name: str, fields: dict[int, str]) -> str:
    """A segment from its numbered fields (the others empty)."""
    return "|".join([name, *(fields.get(i, "") for i in range(1, max(fields) + 1))])


@dataclass(frozen=True)
class Case:
    sender: str
    day: date
    ihc: str | None = "1+"
    ish: tuple[str, str, str] | None = None  # ratio, HER2 copies, CEP17 copies
    ish_hours: int = 48
    site: str = "breast"
    stated: str | None = None  # the lab's overall call (48676-1), e.g. "Positive"
    unmapped_code: str | None = None  # an extra OBX with this local code, not in the mappings


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S") + "+0000"


def message(case: Case, number: int, *, part: str = "all", issued_after: int | None = 72) -> bytes:
    """The case as one message; ``part`` "ihc" or "ish" sends that half alone (the ISH as an
    order of its own, for the same specimen), issued ``issued_after`` hours after collection
    (None: no OBR-22)."""
    collected = datetime(case.day.year, case.day.month, case.day.day, 9, 0)
    ish_time = collected + timedelta(hours=case.ish_hours)
    control = f"{case.sender}-{number:06d}" + ("" if part == "all" else f"-{part}")
    results: list[tuple[str, str, str, datetime]] = []  # OBX-2, OBX-3, OBX-5, OBX-14
    if case.ihc is not None and part != "ish":
        kind, value = IHC_VALUES[case.ihc]
        results.append((kind, IHC_CODES[case.site], value, collected))
    if case.ish is not None and part != "ihc":
        results.extend(
            ("NM", code, value, ish_time) for code, value in zip(ISH_CODES, case.ish, strict=True)
        )
    order = f"{number}R" if part == "ish" else str(number)  # the reflex order's own numbers
    if case.stated is not None:
        results.append(("ST", "48676-1^HER2 [Interpretation] in Tissue^LN", case.stated, collected))
    if case.unmapped_code is not None:
        results.append(("NM", f"{case.unmapped_code}^Local result^99LOC", "30", collected))
    segments = [
        f"MSH|^~\\&|{case.sender}|{case.sender} PATHOLOGY|HER2-ADAPTER|ONCOLOGY|"
        f"{_ts(collected)}||ORU^R01^ORU_R01|{control}|P|2.5.1|||AL|NE",
        f"PID|1||MRN{number:07d}^^^{case.sender}^MR||TEST^PATIENT||19600101|F",
        f"ORC|RE|PLC{order}^EHR|ACC{order}^{case.sender}||CM",
        _segment(
            "OBR",
            {
                1: "1",
                2: f"PLC{order}^EHR",
                3: f"ACC{order}^{case.sender}",
                4: "HER2^HER2 panel^L",
                7: _ts(collected),
                22: "" if issued_after is None else _ts(collected + timedelta(hours=issued_after)),
                24: "SP",
                25: "F",
            },
        ),
        *(
            _segment("OBX", {1: str(i), 2: kind, 3: code, 4: "1", 5: value, 11: "F", 14: _ts(at)})
            for i, (kind, code, value, at) in enumerate(results, start=1)
        ),
        _segment(
            "SPM",
            {
                1: "1",
                2: f"^ACC{number}-A1&{case.sender}",
                4: "TISS^Tissue^HL70487",
                7: "CNB^Core needle biopsy^L",
                8: SITES[case.site],
                17: _ts(collected),
            },
        ),
    ]
    return ("\r".join(segments) + "\r").encode()


# --------------------------------------------------------------------------------------------
# The known traffic of the audit tests
# --------------------------------------------------------------------------------------------

MONTHS = (date(2024, 1, 10), date(2024, 2, 10), date(2024, 3, 10), date(2024, 4, 10))

# A month of breast reports from a steady lab: IHC class -> reports (40 in all).
STEADY_MONTH = {"0 null": 4, "0 ultralow": 4, "0": 2, "1+": 14, "2+": 8, "3+": 8}
# LAB-B's April: IHC 0 (null) jumps from 10% to 40%, at the expense of 1+ (still 40 reports).
JUMP_MONTH = {"0 null": 16, "0 ultralow": 4, "0": 2, "1+": 2, "2+": 8, "3+": 8}
# Of each month's eight IHC 2+: reflex ISH group 5 (negative), group 4 without a recount
# (equivocal, pending) and no ISH yet (equivocal, pending).
IHC2_WORKUP = (("1.2", "2.5", "2.1"),) * 4 + (("1.6", "4.9", "3.06"),) * 2 + (None,) * 2
ISH_HOURS = (24, 48, 72, 96, 120, 144)  # the six ISH results of a month, after their IHC


def month_cases(sender: str, day: date, mix: dict[str, int]) -> list[Case]:
    cases: list[Case] = []
    workup = iter(IHC2_WORKUP)
    hours = iter(ISH_HOURS)
    for ihc, count in mix.items():
        for _ in range(count):
            ish = next(workup) if ihc == "2+" else None
            cases.append(Case(sender, day, ihc=ihc, ish=ish, ish_hours=next(hours) if ish else 48))
    # One disagreement (lab says positive, IHC 1+ is negative) replaces a plain 1+ ...
    cases[cases.index(Case(sender, day, ihc="1+"))] = Case(sender, day, "1+", stated="Positive")
    # ... and one 3+ carries a local code the mappings do not know.
    cases[cases.index(Case(sender, day, ihc="3+"))] = Case(sender, day, "3+", unmapped_code="KI67")
    # A gastric biopsy beside the breast work.
    cases.append(Case(sender, day, ihc="1+", site="stomach"))
    return cases


def known_traffic() -> list[Case]:
    """LAB-A steady for four months; LAB-B steady, then IHC 0 jumps in April; LAB-C sends five
    reports in March (too few for shares) and one message with no HER2 result."""
    cases: list[Case] = []
    for day in MONTHS:
        cases += month_cases("LAB-A", day, STEADY_MONTH)
        cases += month_cases("LAB-B", day, JUMP_MONTH if day.month == 4 else STEADY_MONTH)
    cases += [Case("LAB-C", MONTHS[2], ihc="1+") for _ in range(5)]
    cases.append(Case("LAB-C", MONTHS[2], ihc=None))  # no HER2 result: rejected
    return cases


# The reflex traffic: IHC 2+ reports whose ISH comes in a later message.
DAY = date(2024, 3, 10)
LAB_R = "LAB-R^LAB-R PATHOLOGY"
IHC2 = Case("LAB-R", DAY, ihc="2+", ish=("1.2", "2.5", "2.1"))  # group 5 once the ISH comes
REFLEX_DAYS = (2, 3, 5, 9)  # the ISH message's issue time, days after the IHC message's


def reflex_traffic() -> list[bytes]:
    """Four IHC 2+ reports, each followed by its reflex ISH in another order and message, the
    later ones first (the ISH of one case arrives after the IHC of the next)."""
    ihc = [message(IHC2, n, part="ihc") for n in range(1, 5)]
    ish = [
        message(IHC2, n, part="ish", issued_after=72 + 24 * days)
        for n, days in zip(range(1, 5), REFLEX_DAYS, strict=True)
    ]
    return [ihc[0], ihc[1], ish[0], ihc[2], ish[1], ihc[3], ish[2], ish[3]]


def build_store(url: str, cases: list[Case]) -> None:
    """Runs the cases through the service core (the real pipeline and store writer) into the
    store at ``url``."""
    store_messages(url, [message(case, number) for number, case in enumerate(cases, start=1)])


def store_messages(url: str, messages: list[bytes]) -> None:
    """Runs messages, in order, through the service core into the store at ``url``."""

    async def run() -> None:
        settings = Settings(store=url, workers=0)
        with open_store(url) as store:
            async with GroupCommitter(store) as committer:
                context = Context(settings, load_mappings(settings.mappings_dir))
                service = Service(context, committer, lambda: RECEIVED_AT)
                for data in messages:
                    await service.handle(data, Transport.MLLP)

    asyncio.run(run())


def audit_of(url: str, **options: Any) -> dict[str, Any]:
    """The audit of the store at ``url`` with these AuditOptions."""
    with open_store(url) as store:
        data = from_store(store, sender=options.get("sender"))
    return build_audit(data.reports, data.unprocessed, AuditOptions(**options))


def cell(audit: dict[str, Any], sender: str, period: str) -> dict[str, Any]:
    (found,) = [c for c in audit["cells"] if c["sender"] == sender and c["period"] == period]
    return found
