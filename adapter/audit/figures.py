"""The audit's figures: per sender and period, counts and shares, and the IHC drift tests.

Every list of categories, tissues and flags comes from the enums in ``adapter.model`` (plus any
value met in the data that an older or newer adapter wrote), so a new member shows up without a
change here. A sender with fewer than ``min_reports`` reports in a period shows counts only: its
shares are ``None``, and it takes part in no drift test.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from adapter.audit.facts import IhcClass, ReportFacts, UnusedKind
from adapter.audit.stats import TEST_NAME, two_proportion_test
from adapter.model import Category, FlagCode, Tissue

ALL_PERIODS = "all"
UNDATED = "undated"
MAX_MIN_REPORTS = 1_000_000
"""The largest ``min_reports`` taken (JSON numbers stay well inside 64 bits)."""
TOP_CODES = 20
"""Result codes listed per sender and period in the data-quality table (the rest are summed)."""


class Period(StrEnum):
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True)
class AuditOptions:
    period: Period = Period.MONTH
    min_reports: int = 10
    alpha: float = 0.001
    sender: str | None = None
    since: date | None = None  # inclusive, on the report day
    until: date | None = None  # exclusive

    def __post_init__(self) -> None:
        if not 1 <= self.min_reports <= MAX_MIN_REPORTS:
            raise ValueError(f"min_reports must be between 1 and {MAX_MIN_REPORTS}")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class AuditInput:
    """One report's facts with its sender and day; ``facts`` None: not indexed for the audit."""

    sender: str
    day: date | None
    facts: ReportFacts | None


@dataclass(frozen=True, slots=True)
class UnprocessedInput:
    """A message that gave no report: rejected (input error) or failed (the adapter's fault)."""

    sender: str
    day: date | None
    error_code: str


def period_of(day: date | None, period: Period) -> str:
    if day is None:
        return UNDATED
    if period is Period.MONTH:
        return f"{day.year:04d}-{day.month:02d}"
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


@dataclass
class _Cell:
    """The running counts of one sender in one period."""

    reports: int = 0
    not_indexed: int = 0
    categories: dict[str, Counter[str]] = field(default_factory=dict)  # tissue -> category
    ihc: dict[str, Counter[str]] = field(default_factory=dict)  # tissue -> IhcClass
    ihc2: int = 0
    ihc2_with_ish: int = 0
    hours: list[float] = field(default_factory=list)
    equivocal: int = 0
    pending: int = 0
    groups: Counter[int] = field(default_factory=Counter)
    disagreements: int = 0
    disagreement_rules: Counter[str] = field(default_factory=Counter)
    disagreement_calls: Counter[str] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)
    unused: Counter[str] = field(default_factory=Counter)
    unused_codes: Counter[tuple[str, str]] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    unprocessed: Counter[str] = field(default_factory=Counter)

    def add(self, facts: ReportFacts | None) -> None:
        self.reports += 1
        if facts is None:
            self.not_indexed += 1
            return
        _counter(self.categories, facts.tissue)[facts.category] += 1
        if facts.ihc is not None:
            _counter(self.ihc, facts.tissue)[facts.ihc] += 1
            if facts.ihc is IhcClass.TWO:
                self.ihc2 += 1
                self.ihc2_with_ish += facts.ish_reported
        if facts.ihc_to_ish_hours is not None:
            self.hours.append(facts.ihc_to_ish_hours)
        self.equivocal += facts.category == Category.HER2_EQUIVOCAL
        self.pending += FlagCode.PENDING_WORKUP in facts.flags
        if facts.ish_group is not None:
            self.groups[facts.ish_group] += 1
        self.flags.update(facts.flags)
        if FlagCode.LAB_INTERPRETATION_DIFFERS in facts.flags:
            self.disagreements += 1
            self.disagreement_rules.update(r for r in facts.rules if _is_her2_rule(r))
            # "positive → HER2-low": the lab's overall call against our category; without an
            # overall call, the call that differed was the ISH result as the lab stated it.
            stated = facts.lab_stated or "stated ISH result"
            self.disagreement_calls[f"{stated} → {facts.category}"] += 1
        for kind, code in facts.unused:
            self.unused[kind] += 1
            self.unused_codes[(kind, code)] += 1
        self.warnings.update(facts.warnings)

    def absorb(self, other: _Cell) -> None:
        self.reports += other.reports
        self.not_indexed += other.not_indexed
        for name in ("categories", "ihc"):
            mine: dict[str, Counter[str]] = getattr(self, name)
            for tissue, counts in getattr(other, name).items():
                _counter(mine, tissue).update(counts)
        self.ihc2 += other.ihc2
        self.ihc2_with_ish += other.ihc2_with_ish
        self.hours.extend(other.hours)
        self.equivocal += other.equivocal
        self.pending += other.pending
        self.groups.update(other.groups)
        self.disagreements += other.disagreements
        for name in (
            "disagreement_rules",
            "disagreement_calls",
            "flags",
            "unused",
            "unused_codes",
            "warnings",
        ):
            getattr(self, name).update(getattr(other, name))
        self.unprocessed.update(other.unprocessed)


def _counter(counters: dict[str, Counter[str]], key: str) -> Counter[str]:
    """``counters[key]``, made on first use (setdefault would build a Counter every call)."""
    found = counters.get(key)
    if found is None:
        found = counters[key] = Counter()
    return found


def _commonest(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _is_her2_rule(rule_id: str) -> bool:
    """ER, PgR and HR rules fire beside every HER2 call and say nothing about its disagreement."""
    return not rule_id.startswith(("ER-", "PGR-", "HR-"))


def _ordered(known: Iterable[str], seen: Iterable[str]) -> list[str]:
    """The vocabulary in its own order, then values met in the data that it does not name."""
    names = list(known)
    return names + sorted(set(seen) - set(names))


def build_audit(
    reports: Iterable[AuditInput],
    unprocessed: Iterable[UnprocessedInput] = (),
    options: AuditOptions | None = None,
    *,
    source: str = "store",
) -> dict[str, Any]:
    """The audit as plain JSON-ready data (the CLI's --json, the HTML page and its charts)."""
    options = options or AuditOptions()
    cells: dict[tuple[str, str], _Cell] = {}

    def cell_of(sender: str, day: date | None) -> _Cell:
        key = (sender, period_of(day, options.period))
        found = cells.get(key)
        if found is None:
            found = cells[key] = _Cell()
        return found

    for item in reports:
        if _kept(item.sender, item.day, options):
            cell_of(item.sender, item.day).add(item.facts)
    for message in unprocessed:
        if _kept(message.sender, message.day, options):
            cell_of(message.sender, message.day).unprocessed[message.error_code] += 1
    vocabulary = _vocabulary(cells.values())
    senders = sorted({sender for sender, _ in cells})
    periods = sorted({period for _, period in cells})
    rows = []
    for sender in senders:
        total = _Cell()
        for period in periods:
            cell = cells.get((sender, period))
            if cell is not None:
                rows.append(_cell_figures(sender, period, cell, vocabulary, options))
                total.absorb(cell)
        rows.append(_cell_figures(sender, ALL_PERIODS, total, vocabulary, options))
    return {
        "source": source,
        "options": {
            "period": options.period.value,
            "min_reports": options.min_reports,
            "alpha": options.alpha,
            "sender": options.sender,
            "since": options.since.isoformat() if options.since else None,
            "until": options.until.isoformat() if options.until else None,
        },
        "vocabulary": vocabulary,
        "senders": senders,
        "periods": periods,
        "cells": rows,
        "drift": _drift(cells, senders, periods, vocabulary, options),
    }


def _kept(sender: str, day: date | None, options: AuditOptions) -> bool:
    if options.sender is not None and sender != options.sender:
        return False
    if options.since is not None and (day is None or day < options.since):
        return False
    return not (options.until is not None and (day is None or day >= options.until))


def _vocabulary(cells: Iterable[_Cell]) -> dict[str, list[str]]:
    cells = list(cells)
    return {
        "tissues": _ordered(
            (t.value for t in Tissue), (t for c in cells for t in (*c.categories, *c.ihc))
        ),
        "categories": _ordered(
            (c.value for c in Category),
            (k for c in cells for n in c.categories.values() for k in n),
        ),
        "ihc": [i.value for i in IhcClass],
        "flags": _ordered((f.value for f in FlagCode), (k for c in cells for k in c.flags)),
        "unused": [k.value for k in UnusedKind],
    }


def _share(count: int, total: int, shown: bool) -> float | None:
    return round(count / total, 4) if shown and total else None


def _cell_figures(
    sender: str, period: str, cell: _Cell, vocabulary: dict[str, list[str]], options: AuditOptions
) -> dict[str, Any]:
    shown = cell.reports >= options.min_reports
    indexed = cell.reports - cell.not_indexed

    def counted(counts: Counter[str], names: list[str], total: int) -> dict[str, Any]:
        return {
            "total": total,
            "counts": {name: counts.get(name, 0) for name in names},
            "shares": {name: _share(counts.get(name, 0), total, shown) for name in names}
            if shown
            else None,
        }

    categories = {
        tissue: counted(cell.categories.get(tissue, Counter()), vocabulary["categories"], n)
        for tissue in vocabulary["tissues"]
        if (n := sum(cell.categories.get(tissue, Counter()).values()))
    }
    ihc = {
        tissue: counted(cell.ihc.get(tissue, Counter()), vocabulary["ihc"], n)
        for tissue in vocabulary["tissues"]
        if (n := sum(cell.ihc.get(tissue, Counter()).values()))
    }
    grouped = sum(cell.groups.values())
    groups_2_4 = sum(cell.groups.get(group, 0) for group in (2, 3, 4))
    # Ties in code order, not in the order read: a store returns its rows in no set order.
    codes = sorted(cell.unused_codes.items(), key=lambda item: (-item[1], item[0]))
    return {
        "sender": sender,
        "period": period,
        "reports": cell.reports,
        "indexed": indexed,
        "not_indexed": cell.not_indexed,
        "shares_shown": shown,
        "categories": categories,
        "ihc": ihc,
        "workup": {
            "ihc2": cell.ihc2,
            "ihc2_with_ish": cell.ihc2_with_ish,
            "ihc2_with_ish_share": _share(cell.ihc2_with_ish, cell.ihc2, shown),
            "ihc_to_ish_timed": len(cell.hours),
            "ihc_to_ish_median_hours": round(statistics.median(cell.hours), 2)
            if cell.hours
            else None,
            "equivocal": cell.equivocal,
            "equivocal_share": _share(cell.equivocal, indexed, shown),
            "pending": cell.pending,
            "pending_share": _share(cell.pending, indexed, shown),
            "ish_grouped": grouped,
            "groups": {str(group): cell.groups.get(group, 0) for group in range(1, 6)},
            "groups_2_4": groups_2_4,
            "groups_2_4_share": _share(groups_2_4, grouped, shown),
        },
        "disagreements": {
            "reports": cell.disagreements,
            "share": _share(cell.disagreements, indexed, shown),
            "by_rule": _commonest(cell.disagreement_rules),
            "by_call": _commonest(cell.disagreement_calls),
        },
        "quality": {
            "flags": {flag: cell.flags.get(flag, 0) for flag in vocabulary["flags"]},
            "flag_shares": {
                flag: _share(cell.flags.get(flag, 0), indexed, shown)
                for flag in vocabulary["flags"]
            }
            if shown
            else None,
            "unused": {kind: cell.unused.get(kind, 0) for kind in vocabulary["unused"]},
            "unused_codes": [
                {"kind": kind, "code": code, "count": count}
                for (kind, code), count in codes[:TOP_CODES]
            ],
            "unused_codes_other": sum(count for _, count in codes[TOP_CODES:]),
            "warnings": dict(sorted(cell.warnings.items())),
            "unprocessed": dict(sorted(cell.unprocessed.items())),
        },
    }


def _drift(
    cells: dict[tuple[str, str], _Cell],
    senders: list[str],
    periods: list[str],
    vocabulary: dict[str, list[str]],
    options: AuditOptions,
) -> dict[str, Any]:
    """Each IHC class's share in a sender's period against (a) the sender's own earlier periods
    and (b) the other senders in the same period; flagged when p < alpha."""
    tests: list[dict[str, Any]] = []
    dated = [period for period in periods if period != UNDATED]
    for sender in senders:
        earlier: dict[str, Counter[str]] = {}
        for period in dated:
            cell = cells.get((sender, period))
            if cell is None:
                continue
            for tissue, counts in cell.ihc.items():
                own_earlier = earlier.get(tissue, Counter())
                others: Counter[str] = Counter()
                for other in senders:
                    other_cell = cells.get((other, period))
                    if other != sender and other_cell is not None:
                        others.update(other_cell.ihc.get(tissue, Counter()))
                for against, reference in (("own-earlier", own_earlier), ("other-senders", others)):
                    tests.extend(
                        _tests(
                            sender, period, tissue, against, counts, reference, vocabulary, options
                        )
                    )
                _counter(earlier, tissue).update(counts)
    return {
        "test": TEST_NAME,
        "alpha": options.alpha,
        "min_reports": options.min_reports,
        "tests": len(tests),
        "results": tests,
        "flagged": [test for test in tests if test["flagged"]],
    }


def _tests(
    sender: str,
    period: str,
    tissue: str,
    against: str,
    counts: Counter[str],
    reference: Counter[str],
    vocabulary: dict[str, list[str]],
    options: AuditOptions,
) -> list[dict[str, Any]]:
    n1, n2 = sum(counts.values()), sum(reference.values())
    if n1 < options.min_reports or n2 < options.min_reports:
        return []
    results = []
    for name in vocabulary["ihc"]:
        test = two_proportion_test(counts.get(name, 0), n1, reference.get(name, 0), n2)
        if test is None:
            continue
        results.append(
            {
                "sender": sender,
                "period": period,
                "tissue": tissue,
                "ihc": name,
                "against": against,
                "count": counts.get(name, 0),
                "scored": n1,
                "share": round(test.share, 4),
                "reference_count": reference.get(name, 0),
                "reference_scored": n2,
                "reference_share": round(test.reference_share, 4),
                "z": round(test.z, 3),
                "p_value": float(f"{test.p_value:.3g}"),
                "flagged": test.p_value < options.alpha,
            }
        )
    return results
