"""The ACK's MSH-7 time and the escaping fast path give what the slower forms give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapter.emit.ack import AckHeader, escape, hl7_timestamp

ZONES = [
    pytest.param(UTC, id="utc"),
    pytest.param(timezone(timedelta(hours=-5)), id="behind-utc"),
    pytest.param(timezone(timedelta(hours=5, minutes=30)), id="half-hour-ahead"),
    pytest.param(timezone(timedelta(minutes=-30)), id="half-hour-behind"),
    pytest.param(timezone(timedelta(hours=-23, minutes=-59)), id="largest-behind"),
    pytest.param(timezone(timedelta(hours=1, seconds=30)), id="seconds-in-offset"),
    pytest.param(None, id="naive"),
]


@pytest.mark.parametrize("zone", ZONES)
def test_hl7_timestamp_matches_strftime(zone: timezone | None) -> None:
    """YYYYMMDDHHMMSS and the offset as +/-HHMM, exactly as strftime writes them."""
    moment = datetime(2024, 3, 5, 9, 3, 7, 123456, tzinfo=zone)
    assert hl7_timestamp(moment) == moment.strftime("%Y%m%d%H%M%S%z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain text 2.30", "plain text 2.30", id="nothing-to-escape"),
        pytest.param("a|b", "a\\F\\b", id="field-separator"),
        pytest.param("line\r\nbreak", "line break", id="line-breaks"),
        pytest.param("tab\there", "tab here", id="control-character"),
        pytest.param("x#y", "x\\P\\y", id="truncation-character"),
    ],
)
def test_escape_with_and_without_specials(text: str, expected: str) -> None:
    """Texts without separators or control characters come back unchanged; others escaped."""
    header = AckHeader(control_id="C", encoding_characters="^~\\&#")
    assert escape(text, header) == expected
