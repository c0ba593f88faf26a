"""Reported numbers and HL7 timestamps: exact, shape-keeping, and never guessed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from adapter.ingest.values import parse_decimal, parse_hl7_datetime, parse_interval, site_zone
from adapter.model import Interval

D = Decimal
BERLIN = ZoneInfo("Europe/Berlin")

# --------------------------------------------------------------------------------------------
# parse_interval
# --------------------------------------------------------------------------------------------

# text -> (low, low_inclusive, high, high_inclusive)
INTERVALS = [
    ("95", (D("95"), True, D("95"), True)),
    ("95%", (D("95"), True, D("95"), True)),
    ("95 %", (D("95"), True, D("95"), True)),
    (" 95 ", (D("95"), True, D("95"), True)),
    ("10.5", (D("10.5"), True, D("10.5"), True)),
    ("<1", (None, True, D("1"), False)),
    ("<1%", (None, True, D("1"), False)),
    ("<=1", (None, True, D("1"), True)),
    (">6", (D("6"), False, None, True)),
    (">=6", (D("6"), True, None, True)),
    ("=2.3", (D("2.3"), True, D("2.3"), True)),
    ("1-10", (D("1"), True, D("10"), True)),
    ("1 - 10", (D("1"), True, D("10"), True)),
    ("1%-10%", (D("1"), True, D("10"), True)),
    ("1 to 10", (D("1"), True, D("10"), True)),
    ("1–10", (D("1"), True, D("10"), True)),  # en dash
    ("1—10", (D("1"), True, D("10"), True)),  # em dash
    ("5-5", (D("5"), True, D("5"), True)),
    ("-5", (D("-5"), True, D("-5"), True)),  # a sign, not a range from nothing to 5
    ("-1-5", (D("-1"), True, D("5"), True)),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(*row, id=row[0]) for row in INTERVALS])
def test_parse_interval(
    text: str, expected: tuple[Decimal | None, bool, Decimal | None, bool]
) -> None:
    """Points, bounds and ranges keep their shape and their exact digits."""
    parsed = parse_interval(text)
    assert parsed is not None
    assert (parsed.low, parsed.low_inclusive, parsed.high, parsed.high_inclusive) == expected
    assert parsed.text == text.strip()


def test_interval_keeps_trailing_zeros() -> None:
    """2.30 stays 2.30: the digits as reported, never rounded or normalised."""
    parsed = parse_interval("2.30")
    assert parsed is not None
    assert str(parsed.value) == "2.30"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("%", id="percent-sign-only"),
        pytest.param("abc", id="word"),
        pytest.param("approx. 5", id="approximate"),
        pytest.param("~5", id="tilde"),
        pytest.param("10-1", id="reversed-range"),
        pytest.param("1,5", id="decimal-comma"),
        pytest.param("<", id="comparator-only"),
        pytest.param("=<1", id="unknown-comparator"),
        pytest.param("<>1", id="not-equal"),
        pytest.param("1-", id="open-range"),
        pytest.param("1-abc", id="range-with-word"),
        pytest.param("NaN", id="nan"),
        pytest.param("Infinity", id="infinity"),
        pytest.param(">-Infinity", id="bound-infinity"),
        pytest.param("2+", id="ihc-score"),
        pytest.param("5 cells", id="number-with-word"),
    ],
)
def test_parse_interval_rejects(text: str) -> None:
    """Anything that is not a number, bound or range is left for the wording tables."""
    assert parse_interval(text) is None


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("1e3", id="exponent"),
        pytest.param("1_000", id="underscore"),
        pytest.param("1٢", id="arabic-indic-digit"),
    ],
)
def test_parse_interval_reads_only_plain_numbers(text: str) -> None:
    """Only a plain number (sign, digits, point) is read; anything else is not guessed at."""
    assert parse_interval(text) is None


def test_range_admits_only_its_band() -> None:
    """A range is kept whole, so it falls in one band only when every value does."""
    parsed = parse_interval("1-10")
    assert parsed is not None
    assert parsed.value is None
    assert parsed.within(Interval(low=D("1"), high=D("100")))
    assert not parsed.within(Interval(low=D("1"), high=D("10"), high_inclusive=False))


# --------------------------------------------------------------------------------------------
# parse_decimal
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2.3", "2.3", id="decimal"),
        pytest.param("2.30", "2.30", id="trailing-zero-kept"),
        pytest.param("+1", "1", id="plus-sign"),
        pytest.param("-0.5", "-0.5", id="minus-sign"),
        pytest.param(".5", "0.5", id="leading-point"),
        pytest.param(" 7 ", "7", id="surrounding-space"),
    ],
)
def test_parse_decimal(text: str, expected: str) -> None:
    """A plain number is read exactly, as a Decimal."""
    parsed = parse_decimal(text)
    assert parsed is not None
    assert parsed == Decimal(expected)
    assert str(parsed) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="word"),
        pytest.param("1,5", id="decimal-comma"),
        pytest.param("0x10", id="hex"),
        pytest.param("NaN", id="nan"),
        pytest.param("-Infinity", id="minus-infinity"),
        pytest.param("1 2", id="two-numbers"),
        pytest.param("95%", id="percent"),
    ],
)
def test_parse_decimal_rejects(text: str) -> None:
    """Anything but one finite plain number is not a decimal."""
    assert parse_decimal(text) is None


# --------------------------------------------------------------------------------------------
# parse_hl7_datetime
# --------------------------------------------------------------------------------------------

PRECISIONS = [
    ("2024", datetime(2024, 1, 1, tzinfo=UTC), True),
    ("202403", datetime(2024, 3, 1, tzinfo=UTC), True),
    ("20240312", datetime(2024, 3, 12, tzinfo=UTC), True),
    ("2024031210", datetime(2024, 3, 12, 10, tzinfo=UTC), True),
    ("202403121015", datetime(2024, 3, 12, 10, 15, tzinfo=UTC), False),
    ("20240312101530", datetime(2024, 3, 12, 10, 15, 30, tzinfo=UTC), False),
    ("20240312101530.1", datetime(2024, 3, 12, 10, 15, 30, 100000, tzinfo=UTC), False),
    ("20240312101530.1234", datetime(2024, 3, 12, 10, 15, 30, 123400, tzinfo=UTC), False),
    # Beyond microseconds the digits are cut, not rounded up into the next microsecond.
    ("20240312101530.1234569", datetime(2024, 3, 12, 10, 15, 30, 123456, tzinfo=UTC), False),
    ("20240312101530^S", datetime(2024, 3, 12, 10, 15, 30, tzinfo=UTC), False),  # TS.2 ignored
    (" 20240312101530 ", datetime(2024, 3, 12, 10, 15, 30, tzinfo=UTC), False),
]


@pytest.mark.parametrize(
    ("text", "expected", "coarse"), [pytest.param(*row, id=row[0].strip()) for row in PRECISIONS]
)
def test_hl7_datetime_precisions(text: str, expected: datetime, coarse: bool) -> None:
    """Every DTM precision is read; less than minute precision is reported as coarse."""
    moment, is_coarse = parse_hl7_datetime(text, UTC)
    assert moment == expected
    assert moment is not None
    assert moment.utcoffset() == timedelta(0)
    assert is_coarse is coarse


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        pytest.param("20240312101530+0100", timedelta(hours=1), id="plus-0100"),
        pytest.param("20240312101530-0500", timedelta(hours=-5), id="minus-0500"),
        pytest.param("20240312101530+0545", timedelta(hours=5, minutes=45), id="plus-0545"),
        pytest.param("20240312101530+0000", timedelta(0), id="utc-explicit"),
        pytest.param("20240312101530.25-0330", timedelta(hours=-3, minutes=-30), id="fraction"),
        pytest.param("20240312-0500", timedelta(hours=-5), id="date-only-with-offset"),
    ],
)
def test_hl7_datetime_offset_wins_over_site_zone(text: str, offset: timedelta) -> None:
    """A sent offset is kept; the site zone is only for naive values."""
    moment, _ = parse_hl7_datetime(text, BERLIN)
    assert moment is not None
    assert moment.utcoffset() == offset


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        pytest.param("20240115120000", timedelta(hours=1), id="berlin-winter-cet"),
        pytest.param("20240715120000", timedelta(hours=2), id="berlin-summer-cest"),
        pytest.param("20240330120000", timedelta(hours=1), id="day-before-spring-change"),
        pytest.param("20240331120000", timedelta(hours=2), id="day-of-spring-change"),
        pytest.param("20240715", timedelta(hours=2), id="date-only-summer"),
    ],
)
def test_site_zone_applies_to_naive_values(text: str, offset: timedelta) -> None:
    """A naive timestamp takes the site zone with the offset in force on that date."""
    moment, _ = parse_hl7_datetime(text, BERLIN)
    assert moment is not None
    assert moment.utcoffset() == offset
    assert moment.replace(tzinfo=None) == datetime.strptime(text.ljust(14, "0"), "%Y%m%d%H%M%S")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("2024-03-12", id="iso-date"),
        pytest.param("2024-03-12T10:15:00", id="iso-datetime"),
        pytest.param("abc", id="word"),
        pytest.param("202", id="three-digits"),
        pytest.param("20240", id="odd-length"),
        pytest.param("2024031210153", id="thirteen-digits"),
        pytest.param("20240230", id="february-30"),
        pytest.param("20241301", id="month-13"),
        pytest.param("2024031225", id="hour-25"),
        pytest.param("20240312101560", id="second-60"),
        pytest.param("20240312101530.ab", id="bad-fraction"),
        pytest.param("20240312101530+01", id="short-offset"),
        pytest.param("20240312101530+01:00", id="offset-with-colon"),
    ],
)
def test_hl7_datetime_invalid(text: str) -> None:
    """An unreadable timestamp is None (and not coarse), never a guess."""
    assert parse_hl7_datetime(text, UTC) == (None, False)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("20240312101530+2500", id="offset-25-hours"),
        pytest.param("20240312101530-9999", id="offset-99-hours"),
        pytest.param("20240312101530+0160", id="offset-60-minutes"),
    ],
)
def test_hl7_datetime_impossible_offset_is_invalid(text: str) -> None:
    """An offset outside ±23:59 (or with minutes ≥ 60) is invalid, not an exception."""
    assert parse_hl7_datetime(text, UTC) == (None, False)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("202403121015.5", id="fraction-after-minutes"),
        pytest.param("2024031210.5", id="fraction-after-hours"),
    ],
)
def test_hl7_datetime_fraction_needs_seconds(text: str) -> None:
    """A fraction is only valid after seconds."""
    assert parse_hl7_datetime(text, UTC) == (None, False)


def test_fixed_offset_is_preserved_exactly() -> None:
    """The instant is the one the sender meant: 10:15+01:00 is 09:15 UTC."""
    moment, _ = parse_hl7_datetime("202403121015+0100", BERLIN)
    assert moment == datetime(2024, 3, 12, 9, 15, tzinfo=UTC)
    assert moment is not None
    assert moment.tzinfo == timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("UTC", UTC, id="UTC"),
        pytest.param("utc", UTC, id="utc-lower-case"),
        pytest.param("Europe/Berlin", BERLIN, id="iana-zone"),
    ],
)
def test_site_zone(name: str, expected: object) -> None:
    """The configured site zone is UTC or an IANA zone."""
    assert site_zone(name) == expected


# Fast path for the calendar fields: every boundary a strptime("%Y%m%d%H%M%S") reading decides.
CALENDAR_BOUNDARIES = [
    pytest.param(stamp, id=stamp)
    for stamp in (
        "20240229120000",  # leap day
        "20230229120000",  # not a leap year
        "19000229120000",  # century, not a leap year
        "20000229120000",  # 400-year leap year
        "20240431000000",  # April has 30 days
        "20241301000000",  # month 13
        "20240001000000",  # month 0
        "20240100000000",  # day 0
        "20240101240000",  # hour 24
        "20240101006000",  # minute 60
        "20240101000060",  # second 60 (strptime reads it, datetime refuses it)
        "20240101000061",
        "00000101000000",  # year 0
        "00010101000000",
        "99991231235959",
    )
]


@pytest.mark.parametrize("stamp", CALENDAR_BOUNDARIES)
def test_hl7_datetime_calendar_matches_strptime(stamp: str) -> None:
    """Reading YYYYMMDDHHMMSS accepts exactly the dates strptime accepts, with the same value."""
    try:
        expected: datetime | None = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        expected = None
    assert parse_hl7_datetime(stamp, UTC)[0] == expected


def test_hl7_datetime_other_scripts_digits_follow_strptime() -> None:
    """Digits of other scripts are read exactly as strptime reads them (a year, not a month)."""
    assert parse_hl7_datetime("٢٠٢٤", UTC) == (datetime(2024, 1, 1, tzinfo=UTC), True)
    assert parse_hl7_datetime("٢٠٢٤٠٣", UTC) == (None, False)


def test_hl7_datetime_equal_offsets_share_one_zone() -> None:
    """Two timestamps with one offset carry the same fixed zone, written the same way."""
    first, _ = parse_hl7_datetime("20240301120000-0500", UTC)
    second, _ = parse_hl7_datetime("20240302120000-0500", UTC)
    assert first is not None
    assert second is not None
    assert first.tzinfo is second.tzinfo
    assert first.utcoffset() == timedelta(hours=-5)
