"""Every value copied from a message into a Bundle goes through the datatype checks.

Fuzzing found, one field at a time, values that reached a Bundle without passing
``adapter/emit/datatypes.py`` (a unit separator in PID-5, a form feed in OBR-2, in MSH-4). This
sweep does what fuzzing does, but for every field, component and sub-component of a message that
fills every field the adapter reads: each value, with a character FHIR's ``string`` refuses put
into it, must give a specific error or a Bundle that FHIR R4 accepts. A new field read without the
checks fails here, not in CI's fuzzing a week later.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzz.invariant import check, context

from adapter.model import SourceFormat
from adapter.pipeline import RawMessage, process

EVERY_FIELD_READ = "\r".join(
    (
        "MSH|^~\\&|COPATH^1.2.840.1^ISO|GOODHEALTH PATHOLOGY^2.16.840.1.113883.3.1^ISO"
        "|HER2-ADAPTER|ONCOLOGY|20240314162000-0500||ORU^R01^ORU_R01|sweep-1|P|2.5.1|||AL|NE",
        "PID|1||TST000175^^^GOODHEALTH&2.16.840.1.113883.3.2&ISO^MR~778^^^HOSP^PI"
        "||TEST^PATIENT^WHISKEY||19840319|F",
        "ORC|RE|PLC1074^EHR|SP24-01074^COPATH||CM",
        "OBR|1|PLC1074^EHR|SP24-01074^COPATH|HER2IHC^HER2 immunohistochemistry^L"
        "|||20240318084500-0500|||||||20240318090000-0500|BRST&Breast&L^^CNB^LBR&Left breast&L"
        "|1234567893^TESTDOC^ORDERING^^^^^^NPI||||||20240320101000-0500||SP|F"
        "||||P1^F1|||1234567890&PATHOLOGIST&PAT&&&&&&NPI",
        "OBX|1|CWE|85319-2^HER2 by IHC^LN|1|0^Negative (0)^L||||||F|||20240318084500-0500"
        "||^RESP^ONE|4B5^PATHWAY HER2 (4B5)^L||||||GOODHEALTH LAB^^^^^GH&2.16.840.1.113883.3.9&ISO",
        "NTE|1|L|Faint incomplete membrane staining in 5% of tumour cells.",
        "OBX|2|NM|49683-6^HER2/CEP17 ratio^LN|1|1.5|{ratio}^ratio^UCUM|||||F",
        "OBX|3|NM|16112-5^ER^LN|1|90|%^percent^UCUM|||||F",
        "OBX|4|ST|16113-3^PR^LN|1|Positive, 40% moderate||||||F",
        "OBX|5|TX|22637-3^Pathology report final diagnosis^LN|1"
        "|ER: Positive (90%, strong). Allred score 8.||||||F",
        "SPM|1|^SP24-01074-A1&COPATH||TISS^Tissue^HL70487|||CNB^Core needle biopsy^L"
        "|80248007^Left breast structure^SCT||||||||||20240318084500-0500|20240318090000-0500",
    )
)
WITHOUT_PERFORMING_LAB = EVERY_FIELD_READ.replace(
    "||||||GOODHEALTH LAB^^^^^GH&2.16.840.1.113883.3.9&ISO", ""
)
"""The same message with the lab named by MSH-4 instead of OBX-23."""
FHIR_INPUTS = ("transaction-report.json", "ihc-2plus-ish-panel.json", "panel-has-member.json")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"
SEPARATORS = "|^~&"
REFUSED_IN_STRING = ("\x1f", "\x0c", "\u00a0")


def _leaves(message: str) -> Iterator[tuple[str, int, int]]:
    """(description, start, end) of every non-empty value between separators, MSH-1/2 aside."""
    offset = 0
    for line in message.split("\r"):
        start = offset + (9 if line.startswith("MSH|") else 4)
        position = start
        for index in range(start, offset + len(line) + 1):
            at_end = index == offset + len(line)
            if at_end or message[index] in SEPARATORS:
                if index > position:
                    yield f"{line[:3]} at {position - offset}", position, index
                position = index + 1
        offset += len(line) + 1


def _with_refused(value: str) -> Iterator[tuple[str, str]]:
    middle = len(value) // 2
    for refused in REFUSED_IN_STRING:
        yield f"{ord(refused):x}", value[:middle] + refused + value[middle:]
    yield "only", "\x1f"


def _hl7_variants() -> Iterator[object]:
    for name, base in (("obx23", EVERY_FIELD_READ), ("msh4", WITHOUT_PERFORMING_LAB)):
        for where, start, end in _leaves(base):
            for how, changed in _with_refused(base[start:end]):
                text = base[:start] + changed + base[end:]
                yield pytest.param(text, id=f"{name}-{where}-{how}")


def _string_paths(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _string_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _string_paths(value, (*path, index))
    elif isinstance(node, str) and path[-1] != "resourceType":
        yield path


def _fhir_variants() -> Iterator[object]:
    for name in FHIR_INPUTS:
        document = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
        for path in _string_paths(document):
            parent = document
            for step in path[:-1]:
                parent = parent[step]
            value = parent[path[-1]]
            for how, changed in _with_refused(value):
                parent[path[-1]] = changed
                where = ".".join(map(str, path))
                yield pytest.param(json.dumps(document), id=f"{name}-{where}-{how}")
            parent[path[-1]] = value


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        pytest.param(EVERY_FIELD_READ.encode(), "hl7v2", id="hl7v2-obx23"),
        pytest.param(WITHOUT_PERFORMING_LAB.encode(), "hl7v2", id="hl7v2-msh4"),
        *(
            pytest.param((FIXTURES / name).read_bytes(), "fhir", id=f"fhir-{name}")
            for name in FHIR_INPUTS
        ),
    ],
)
def test_the_unchanged_input_gives_a_bundle(data: bytes, kind: str) -> None:
    """Each base input gives a valid Bundle (else the sweep would test errors only)."""
    formats = {"hl7v2": SourceFormat.HL7V2, "fhir": SourceFormat.FHIR}
    outcome = process(RawMessage(data, formats[kind]), context())
    assert outcome.error is None
    assert outcome.bundle_json is not None
    check(data, kind)


@pytest.mark.parametrize("message", list(_hl7_variants()))
def test_a_refused_character_in_any_hl7_value_is_checked(message: str) -> None:
    check(message.encode(), "hl7v2")


@pytest.mark.parametrize("document", list(_fhir_variants()))
def test_a_refused_character_in_any_fhir_string_is_checked(document: str) -> None:
    check(document.encode(), "fhir")
