"""FHIR datatype writers: the per-Bundle datetime memo writes what date_time writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from adapter.emit.codes import UCUM
from adapter.emit.datatypes import (
    DateTimeTexts,
    code,
    codeable,
    date_time,
    identifier,
    quantity,
    text,
    uri,
)
from adapter.errors import ValueNotWritable
from adapter.model import Coding, Identifier, Interval


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
        with pytest.raises(ValueNotWritable) as raised:
            times(odd, "Observation.issued")
        assert raised.value.location == "Observation.issued"


@pytest.mark.parametrize(
    "value", ["TISS\r", "TI\rSS", " TISS", "TISS ", "TI  SS", "TI\tSS", "TI\u00a0SS", ""]
)
def test_a_code_fhir_refuses_is_refused_naming_the_element(value: str) -> None:
    with pytest.raises(ValueNotWritable) as raised:
        code(value, "SPM-4: Specimen.type.coding.code")
    assert raised.value.location == "SPM-4: Specimen.type.coding.code"
    assert raised.value.code == "VALUE-INVALID"


@pytest.mark.parametrize("value", ["TISS", "LA11842-4", "3+", "two words", "ü"])
def test_codes_fhir_takes_are_written_as_sent(value: str) -> None:
    assert code(value, "x") == value


def test_a_uri_with_whitespace_is_refused() -> None:
    assert uri("http://loinc.org", "x") == "http://loinc.org"
    with pytest.raises(ValueNotWritable):
        uri("http://lab example.org", "Observation.code.coding.system")


def test_free_text_keeps_its_words_with_refused_whitespace_as_spaces() -> None:
    assert text("Positive\u00a0(3+)\x0bsee\u2028note") == "Positive (3+) see note"
    assert text("line one\r\nline two\ttab") == "line one\r\nline two\ttab"
    assert text("\u00a0 \x0c") is None
    assert text(None) is None


def test_a_coding_checks_code_and_system_and_cleans_the_display() -> None:
    concept = codeable(
        Coding(system="http://loinc.org", code="85319-2", display="HER2\u00a0IHC"), "c"
    )
    assert concept == {
        "coding": [{"system": "http://loinc.org", "code": "85319-2", "display": "HER2 IHC"}],
        "text": "HER2 IHC",
    }
    with pytest.raises(ValueNotWritable) as raised:
        codeable(Coding(system="http://loinc.org", code="85319-2\r"), "OBX[1]: Observation.code")
    assert raised.value.location == "OBX[1]: Observation.code.coding.code"


def test_an_empty_identifier_is_refused() -> None:
    with pytest.raises(ValueNotWritable) as raised:
        identifier(Identifier(value=" "), "PID-3: Patient.identifier[0]")
    assert raised.value.location == "PID-3: Patient.identifier[0].value"


def test_a_quantity_holds_its_unit_code_to_code() -> None:
    """A FHIR sender's own ``valueQuantity.code`` is copied: a refused one names the element."""
    point = Interval.point(Decimal("90"), "90")
    written = quantity(point, "percent", "%", "OBX[3]: Observation.valueQuantity")
    assert written == {"value": Decimal("90"), "unit": "percent", "system": UCUM, "code": "%"}
    with pytest.raises(ValueNotWritable) as refused:
        quantity(point, "percent", "\x1f%", "OBX[3]: Observation.valueQuantity")
    assert refused.value.location == "OBX[3]: Observation.valueQuantity.code"
