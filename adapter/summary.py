"""``convert --summary``: what a run classified and rejected, counted, on stderr.

Counts are per record (one ORDER_OBSERVATION group or FHIR report: a message may carry several)
for categories and HR status, and per message for rejections, by error code. Only codes, category
names and counts are printed: a summary never holds patient data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from adapter.cli_jobs import Converted
from adapter.model import Category, HrStatus

NO_HR_STATUS = "no ER/PgR"


@dataclass
class Summary:
    messages: int = 0
    converted: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    hr_statuses: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)

    def add(self, result: Converted) -> None:
        self.messages += 1
        if result.error is not None:
            self.rejections[result.error.code] += 1
            return
        self.converted += 1
        for classification in result.classifications:
            self.categories[classification.category.value] += 1
            status = classification.hr_status
            self.hr_statuses[status.value if status is not None else NO_HR_STATUS] += 1

    def lines(self) -> list[str]:
        rejected = self.messages - self.converted
        return [
            f"messages: {self.messages} ({self.converted} converted, {rejected} rejected)",
            "HER2 category: " + _counts(self.categories, [c.value for c in Category]),
            "HR status: " + _counts(self.hr_statuses, [*(s.value for s in HrStatus), NO_HR_STATUS]),
            "rejected: " + _counts(self.rejections, sorted(self.rejections)),
        ]


def _counts(counts: Counter[str], order: list[str]) -> str:
    """``name count`` for every name counted, in the given order; ``none`` when nothing was."""
    shown = [f"{name} {counts[name]}" for name in order if counts[name]]
    return ", ".join(shown) if shown else "none"
