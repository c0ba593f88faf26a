"""The conclusion's clinical sentences come from what the classifier fired, end to end."""

from __future__ import annotations

from decimal import Decimal

from adapter.classify import classify
from adapter.emit.wording import conclusion
from adapter.model import (
    AssayRecord,
    Ihc0Subtype,
    IhcResult,
    IhcScore,
    Interval,
    IshResult,
    Origin,
    ReceptorResult,
    SourceFormat,
    Specimen,
    Tissue,
)


def _record(**results: object) -> AssayRecord:
    return AssayRecord(
        origin=Origin(format=SourceFormat.HL7V2, message_id="W1"),
        specimen=Specimen(tissue=Tissue.BREAST),
        **results,  # type: ignore[arg-type]
    )


def _percent(value: str) -> ReceptorResult:
    return ReceptorResult(percent=Interval.point(Decimal(value)))


def _text(record: AssayRecord) -> str:
    return conclusion(record, classify(record))


ULTRALOW = IhcResult(score=IhcScore.ZERO, ihc0_subtype=Ihc0Subtype.ULTRALOW)


def test_ultralow_hr_negative_names_no_therapy() -> None:
    """DESTINY-Breast06 covers HR-positive disease only (spec section 10)."""
    text = _text(_record(her2_ihc=ULTRALOW, er=_percent("0"), pgr=_percent("0")))
    assert "No therapy is named" in text
    assert "identify candidates for trastuzumab deruxtecan" not in text


def test_ultralow_hr_positive_names_destiny_breast06() -> None:
    text = _text(_record(her2_ihc=ULTRALOW, er=_percent("80")))
    assert "(DESTINY-Breast06)" in text
    assert "DESTINY-Breast04" not in text


def test_low_hr_negative_names_destiny_breast04_only() -> None:
    text = _text(
        _record(her2_ihc=IhcResult(score=IhcScore.ONE), er=_percent("0"), pgr=_percent("0"))
    )
    assert "whatever the hormone receptor status (DESTINY-Breast04)" in text
    assert "DESTINY-Breast06" not in text


def test_group_4_negative_comment_is_in_the_conclusion() -> None:
    """ASCO/CAP require the comment with a negative group 4 result in the report itself."""
    ish = IshResult(ratio=Interval.point(Decimal("1.5")), her2_copies=Interval.point(Decimal("5")))
    text = _text(_record(her2_ihc=IhcResult(score=IhcScore.ONE), her2_ish=ish))
    assert "Comment: It is uncertain whether patients with ≥ 4.0 and < 6.0 HER2 signals" in text


def test_not_reported_is_not_called_indeterminate() -> None:
    text = _text(_record(er=_percent("95")))
    assert "HER2 not reported; category HER2-not-reported." in text
    assert "indeterminate" not in text
