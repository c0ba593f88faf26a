"""What the classifier collects while it walks the table: rules fired and flags raised.

A ``Trace`` is a local accumulator: each ``classify`` call makes its own, so the classifier stays a
pure function of the record. Reasons quote values as the lab reported them (``Interval.text``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapter.classify.table import RULES_BY_ID
from adapter.model import FiredRule, Flag, FlagCode, Interval


@dataclass
class Trace:
    rules: list[FiredRule] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)  # for DiagnosticReport.conclusion

    def fire(self, rule_id: str, reason: str) -> None:
        citation = RULES_BY_ID[rule_id].citation
        # Field by field rather than ``FiredRule(...) in self.rules``: the same test without
        # building a model and running pydantic's __eq__ against every rule already fired.
        for known in self.rules:
            if known.rule_id == rule_id and known.reason == reason and known.citation == citation:
                return
        self.rules.append(FiredRule(rule_id=rule_id, citation=citation, reason=reason))

    def flag(self, code: FlagCode, reason: str) -> None:
        for known in self.flags:
            if known.code == code and known.reason == reason:
                return
        self.flags.append(Flag(code=code, reason=reason))

    def comment(self, text: str) -> None:
        """A comment the guideline asks to report with the result."""
        if text not in self.comments:
            self.comments.append(text)

    def absorb(self, other: Trace) -> None:
        """Take over another trace's rules and flags, keeping order and dropping repeats.

        Comments are not taken over: they belong to one tissue's result (an ISH group comment
        is a breast concept), and a merged trace reports no group.
        """
        for fired in other.rules:
            if fired not in self.rules:
                self.rules.append(fired)
        for raised in other.flags:
            self.flag(raised.code, raised.reason)


def place(value: Interval, bands: tuple[Interval, ...]) -> Interval | None:
    """The one band holding the whole reported interval, or ``None`` when it straddles bands."""
    holding = [band for band in bands if value.within(band)]
    return holding[0] if len(holding) == 1 else None


def show(value: Interval) -> str:
    """The value as the lab sent it; a readable form when no text was kept."""
    if value.text:
        return value.text
    if value.value is not None:
        return str(value.value)
    low = "" if value.low is None else f"{'≥' if value.low_inclusive else '>'} {value.low}"
    high = "" if value.high is None else f"{'≤' if value.high_inclusive else '<'} {value.high}"
    return " and ".join(part for part in (low, high) if part) or "any value"
