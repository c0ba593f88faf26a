"""The error tree: stable, unique codes, each documented; and every code adapter/ can emit
(errors, warnings, HTTP request errors) is a row of docs/errors.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from adapter import errors
from adapter.classify.table import RULES_BY_ID

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


# --------------------------------------------------------------------------------------------
# Every code the code can emit, and no other, has a row in docs/errors.md
# --------------------------------------------------------------------------------------------

ADAPTER = Path(__file__).resolve().parent.parent / "adapter"
# Written like a code, but a position or a name: HL7 fields ("MSH-18", "OBX-5"), a charset, and
# the stem the ISH group rule ids are built from (classify/table.py).
_POSITION = re.compile(r"^[A-Z]{2}[A-Z0-9]-\d+$")
NOT_CODES = {"UTF-8", "HER2-ISH-G"}
_CODE = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+$")
_ROW = re.compile(r"^\| `([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+)` \|", re.MULTILINE)


def _literals() -> dict[str, set[str]]:
    """Each code-like string literal of adapter/, with the files that hold it."""
    found: dict[str, set[str]] = {}
    for path in sorted(ADAPTER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if _CODE.match(text) and not _POSITION.match(text):
                    found.setdefault(text, set()).add(path.relative_to(ADAPTER).as_posix())
    return found


def _codes_in_source() -> dict[str, set[str]]:
    """Warning, error and HTTP codes: rule ids (docs/rules.md) and names left out. A warning
    that shares its id with a rule (TISSUE-UNKNOWN) is documented in both."""
    return {
        code: files
        for code, files in _literals().items()
        if code not in RULES_BY_ID and code not in NOT_CODES
    }


def test_every_code_the_code_can_emit_is_documented() -> None:
    """A warning, error or HTTP code written anywhere in adapter/ has its row in docs/errors.md."""
    documented = set(_ROW.findall(DOCS.read_text(encoding="utf-8")))
    missing = {code: sorted(files) for code, files in _codes_in_source().items()}
    missing = {code: files for code, files in missing.items() if code not in documented}
    assert not missing, f"codes without a row in docs/errors.md: {missing}"


def test_docs_list_no_code_the_code_does_not_emit() -> None:
    """Every row of docs/errors.md names a code that adapter/ still holds."""
    documented = set(_ROW.findall(DOCS.read_text(encoding="utf-8")))
    assert documented - set(_literals()) == set()


def test_the_sweep_sees_warnings_and_errors() -> None:
    """The sweep finds codes of each kind: ingest warnings, grammar warnings, errors, HTTP."""
    codes = _codes_in_source()
    for code in ("CONFLICTING-RESULTS", "VALUE-AMBIGUOUS", "TEXT-DEFERRED", "HL7-MALFORMED"):
        assert code in codes
    assert "HTTP-NOT-FOUND" in codes
