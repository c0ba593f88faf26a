"""Reading reported numbers and timestamps, shared by the HL7 v2 and FHIR readers.

Numbers stay exact (``Decimal`` from the text as sent) and keep their shape: ``95``, ``95%``,
``<1``, ``>=6``, ``1-10``, ``1 to 10``. Anything else is not a number: callers look it up as a
wording instead. Nothing here guesses: ``"approx. 5"`` is not read as 5.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

from adapter.model import Interval

_COMPARATORS = ("<=", ">=", "<", ">", "=")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_RANGE_SEPARATORS = (" to ", "–", "—", "-")  # en/em dashes: what labs type


def parse_decimal(text: str) -> Decimal | None:
    """An exact decimal from ``text``, or ``None`` if it is not one plain number.

    Only ASCII digits with an optional sign and point: ``1e3``, ``1_000`` and other scripts'
    digits are not what a lab reports, so they are not read as numbers.
    """
    cleaned = text.strip()
    if not _PLAIN_NUMBER.fullmatch(cleaned):
        return None
    try:
        return Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        return None


def bounded(comparator: str, number: Decimal, text: str) -> Interval:
    """The interval a comparator and a number describe (``<1``, ``>=6``, ``=2.3``)."""
    if comparator == "<":
        return Interval(high=number, high_inclusive=False, text=text)
    if comparator == "<=":
        return Interval(high=number, text=text)
    if comparator == ">":
        return Interval(low=number, low_inclusive=False, text=text)
    if comparator == ">=":
        return Interval(low=number, text=text)
    return Interval.point(number, text)


def parse_interval(text: str) -> Interval | None:
    """A reported number, bound or range; ``None`` when the text is not one of those."""
    original = text.strip()
    body = original.removesuffix("%").strip()
    if not body:
        return None
    for comparator in _COMPARATORS:
        if body.startswith(comparator):
            number = parse_decimal(body[len(comparator) :])
            return None if number is None else bounded(comparator, number, original)
    number = parse_decimal(body)
    if number is not None:
        return Interval.point(number, original)
    return _parse_range(body, original)


def _parse_range(body: str, original: str) -> Interval | None:
    for separator in _RANGE_SEPARATORS:
        # Search from position 1 so a leading minus sign is never taken for a range separator.
        at = body.find(separator, 1)
        if at <= 0:
            continue
        low = parse_decimal(body[:at].removesuffix("%"))
        high = parse_decimal(body[at + len(separator) :].removesuffix("%"))
        if low is not None and high is not None and low <= high:
            return Interval(low=low, high=high, text=original)
    return None


def site_zone(name: str) -> tzinfo:
    """The configured site zone for naive timestamps."""
    return UTC if name.upper() == "UTC" else ZoneInfo(name)


def hl7_date(text: str) -> str | None:
    """An HL7 DT/DTM birth date as a FHIR ``date`` (``1953-12-28``, ``1953-12``, ``1953``).

    Only the date part is kept (a time of birth is not wanted); ``None`` when unreadable.
    """
    digits = text.strip()[:8]
    if len(digits) not in (4, 6, 8) or not (digits.isascii() and digits.isdigit()):
        return None
    padded = digits + "0101"[len(digits) - 4 :] if len(digits) < 8 else digits
    if _calendar_moment(padded + "000000") is None:
        return None
    return "-".join(part for part in (digits[:4], digits[4:6], digits[6:8]) if part)


@lru_cache(maxsize=4096)
def parse_hl7_datetime(text: str, zone: tzinfo) -> tuple[datetime | None, bool]:
    """An HL7 DTM/TS (``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]``) as an aware datetime.

    Returns the datetime (``None`` if unreadable) and whether it had less than minute precision,
    so the caller can warn that a date-only value was placed at midnight of the site zone.
    Remembered (bounded): a message names the same instant in several fields (MSH-7, OBR-7,
    OBR-22, OBX-14, SPM-17), and the datetimes are immutable.
    """
    value = text.strip().split("^", 1)[0]
    if not value:
        return None, False
    offset: tzinfo | None = None
    for sign in ("+", "-"):
        at = value.find(sign, 4)
        if at != -1:
            offset_text, value = value[at + 1 :], value[:at]
            if len(offset_text) != 4 or not offset_text.isdigit():
                return None, False
            hours, minutes_part = int(offset_text[:2]), int(offset_text[2:])
            if hours > 23 or minutes_part > 59:
                return None, False
            offset = _offset_zone(sign, hours * 60 + minutes_part)
            break
    digits, _, fraction = value.partition(".")
    if not digits.isdigit() or len(digits) not in (4, 6, 8, 10, 12, 14):
        return None, False
    padded = digits + "0101000000"[len(digits) - 4 :] if len(digits) < 8 else digits.ljust(14, "0")
    moment = _calendar_moment(padded[:14])
    if moment is None:
        return None, False
    if fraction:
        # A fraction belongs to the seconds: "202403121015.5" is not a valid DTM.
        if not fraction.isdigit() or len(digits) != 14:
            return None, False
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    coarse = len(digits) < 12
    return moment.replace(tzinfo=offset or zone), coarse


# At most 2 x 24 x 60 distinct offsets: one shared tzinfo each instead of one per timestamp.
_OFFSET_ZONES: dict[tuple[str, int], timezone] = {}


def _offset_zone(sign: str, minutes: int) -> timezone:
    key = (sign, minutes)
    zone = _OFFSET_ZONES.get(key)
    if zone is None:
        zone = timezone(timedelta(minutes=minutes if sign == "+" else -minutes))
        _OFFSET_ZONES[key] = zone
    return zone


def _calendar_moment(digits: str) -> datetime | None:
    """Fourteen digits ``YYYYMMDDHHMMSS`` as a naive datetime; ``None`` for an impossible date."""
    if not digits.isascii():
        # Other scripts' digits: strptime's own rules decide (rare enough not to hand-code).
        try:
            return datetime.strptime(digits, "%Y%m%d%H%M%S")
        except ValueError:
            return None
    # Same result as strptime("%Y%m%d%H%M%S") on ASCII digits, at a fraction of its cost.
    try:
        return datetime(
            int(digits[:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            int(digits[12:14]),
        )
    except ValueError:
        return None
