"""What the conclusion may say about therapy (section 10): only what a label says.

Trastuzumab deruxtecan: DESTINY-Breast04 covers HER2-low whatever the hormone receptor status;
DESTINY-Breast06 covers HER2-low and HER2-ultralow in HR-positive disease only. The rules fired
here choose the conclusion's words (``table.THERAPY_WORDS``); nothing is decided in the wording.
"""

from __future__ import annotations

from adapter.classify.trace import Trace
from adapter.model import Category, HrStatus, Tissue

_HR_POSITIVE = (HrStatus.POSITIVE, HrStatus.LOW_POSITIVE)


def fire_therapy_rules(
    tissue: Tissue, category: Category, hr: HrStatus | None, trace: Trace
) -> None:
    if tissue is not Tissue.BREAST:
        return
    hr_text = hr.value if hr is not None else "HR status not determined"
    if category is Category.HER2_LOW:
        trace.fire("THERAPY-DB04", f"HER2-low ({hr_text}): DESTINY-Breast04")
    if category not in (Category.HER2_LOW, Category.HER2_ULTRALOW):
        return
    if hr in _HR_POSITIVE:
        trace.fire("THERAPY-DB06", f"{category.value}, {hr_text}: DESTINY-Breast06")
    elif category is Category.HER2_ULTRALOW and hr is HrStatus.NEGATIVE:
        trace.fire("THERAPY-NONE-ULTRALOW-HR-NEGATIVE", "HER2-ultralow, HR-negative: no therapy")
    elif category is Category.HER2_ULTRALOW:
        trace.fire(
            "THERAPY-NONE-ULTRALOW-HR-UNKNOWN", f"HER2-ultralow, {hr_text}: no therapy named"
        )
