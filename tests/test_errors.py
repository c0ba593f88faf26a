"""The error tree: stable, unique codes, each documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter import errors

DOCS = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
FAMILIES = {"INPUT", "CONFIG", "TRANSIENT"}


def test_codes_are_unique() -> None:
    """No two error classes share a code: the code alone identifies the error."""
    codes = [cls.code for cls in errors.all_error_classes()]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize(
    "cls", [c for c in errors.all_error_classes() if c.code not in FAMILIES], ids=lambda c: c.code
)
def test_every_reported_code_is_documented(cls: type[errors.AdapterError]) -> None:
    """docs/errors.md has a row for every code a user can see."""
    assert f"| `{cls.code}` |" in DOCS.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("cls", "ack", "http"),
    [
        (errors.MalformedMessage, "AR", 400),
        (errors.NothingToClassify, "AE", 422),
        (errors.MessageTooLarge, "AR", 413),
        (errors.StoreUnavailable, "AE", 503),
        (errors.InvalidJson, "AE", 400),
    ],
)
def test_transport_mapping(cls: type[errors.AdapterError], ack: str, http: int) -> None:
    """Each error carries the ACK code and HTTP status the transports answer with."""
    assert (cls.ack_code, cls.http_status) == (ack, http)


def test_transient_errors_are_distinguishable() -> None:
    """A store outage is transient (no ACK, 503); bad content never is."""
    assert issubclass(errors.StoreUnavailable, errors.TransientError)
    assert not issubclass(errors.NothingToClassify, errors.TransientError)


def test_message_names_code_and_location() -> None:
    """str() of an error gives the code, the reason and where."""
    error = errors.MalformedMessage("OBX before any OBR", location="OBX[1]")
    assert str(error) == "HL7-MALFORMED: OBX before any OBR at OBX[1]"


def test_mapping_error_names_file_and_key() -> None:
    """A mapping error points at the file and the key."""
    error = errors.MappingFileError("bad analyte", file="mappings/x.toml", key="codes.3.analyte")
    assert error.location == "mappings/x.toml:codes.3.analyte"
