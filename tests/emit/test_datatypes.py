"""FHIR datatype writers: the per-Bundle datetime memo writes what date_time writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapter.emit.datatypes import DateTimeTexts, date_time
from adapter.errors import OutputInvalid


def test_memo_tells_equal_instants_in_different_offsets_apart() -> None:
    """One instant written in UTC and in -05:00 keeps each its own offset."""
    utc = datetime(2024, 3, 25, 21, 20, tzinfo=UTC)
    eastern = utc.astimezone(timezone(timedelta(hours=-5)))
    assert utc == eastern
    times = DateTimeTexts()
    assert times(utc, "x") == "2024-03-25T21:20:00+00:00"
    assert times(eastern, "x") == "2024-03-25T16:20:00-05:00"
    assert times(utc, "x") == date_time(utc, "x")


def test_memo_refuses_what_date_time_refuses() -> None:
    """An offset FHIR cannot write raises, naming the element, on every call."""
    odd = datetime(2024, 1, 1, tzinfo=timezone(timedelta(seconds=30)))
    times = DateTimeTexts()
    for _ in range(2):
        with pytest.raises(OutputInvalid) as raised:
            times(odd, "Observation.issued")
        assert raised.value.location == "Observation.issued"
