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

import pytest
from emit.ingest_reads import fhir_paths, hl7_positions, hl7_value, string_paths
from fuzz.invariant import check, context

from adapter.ingest.er7 import parse_message
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
        "OBX|2|SN|49683-6^HER2/CEP17 ratio^LN|1|^1.5^:^1|{ratio}^ratio^UCUM|||||F",
        "OBX|3|NM|16112-5^ER^LN|1|90|%^percent^UCUM||N|||F",
        "OBX|4|ST|16113-3^PR^LN|1|Positive, 40% moderate||||||F",
        "OBX|5|TX|22637-3^Pathology report final diagnosis^LN|1"
        "|ER: Positive (90%, strong). Allred score 8.||||||F",
        "OBX|6|SN|74860-8^ERBB2 copies per nucleus^LN|1|<^4.0|{copies}/{cell}^copies per cell^UCUM"
        "|||||F",
        "SPM|1|^SP24-01074-A1&COPATH||TISS^Tissue^HL70487|||CNB^Core needle biopsy^L"
        "|80248007^Left breast structure^SCT|||||||||20240318084500-0500|20240318090000-0500",
    )
)
WITHOUT_PERFORMING_LAB = EVERY_FIELD_READ.replace(
    "||||||GOODHEALTH LAB^^^^^GH&2.16.840.1.113883.3.9&ISO", ""
)
"""The same message with the lab named by MSH-4 instead of OBX-23."""
FHIR_INPUTS = (
    "transaction-report.json",
    "ihc-2plus-ish-panel.json",
    "panel-has-member.json",
    # Chosen so that every string any FHIR fixture makes the ingest read is read in one of
    # these (test_the_sweep_reaches_every_string_the_fhir_ingest_reads): contained results,
    # the mCODE patient bundle, components, R5 spellings, data-absent reasons, conclusions,
    # presented forms, specimens, methods, notes, a message bundle's source endpoint.
    "report-contained.json",
    "mcode-patient-bundle-jenny-m.json",
    "ish-panel-components.json",
    "r5-spellings.json",
    "cap-ecc.json",
    "data-absent-reason.json",
    "ihc-3plus.json",
    "report-conclusion.json",
    "datetime-no-offset.json",
    "er-pgr-components.json",
    "ihc-0-ultralow-note.json",
    "message-example-lab.json",
    "note-method.json",
)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"


def _derived() -> dict[str, bytes]:
    """Inputs that read what only fixtures without a Bundle have (a sender's ``meta.source``,
    a lone Observation's ``valueQuantity``), made from one that gives a Bundle."""
    base = json.loads((FIXTURES / "ihc-3plus.json").read_text(encoding="utf-8"))
    with_source = {**base, "meta": {**base["meta"], "source": "https://lis.example.org/fhir"}}
    ratio = {key: value for key, value in base.items() if key != "valueCodeableConcept"}
    ratio["interpretation"] = []
    ratio["code"] = {"coding": [{"system": "http://loinc.org", "code": "49683-6"}]}
    ratio["valueQuantity"] = {
        "value": 2.4,
        "unit": "ratio",
        "system": "http://unitsofmeasure.org",
        "code": "{ratio}",
    }
    return {
        "ihc-3plus-with-source": json.dumps(with_source).encode(),
        "ish-ratio-quantity": json.dumps(ratio).encode(),
    }


def _fhir_inputs() -> dict[str, bytes]:
    return {name: (FIXTURES / name).read_bytes() for name in FHIR_INPUTS} | _derived()


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


def _fhir_variants() -> Iterator[object]:
    """Each string the ingest reads, changed (one of each path in each type of resource);
    strings it never reads cannot reach a Bundle."""
    for name, data in _fhir_inputs().items():
        read = fhir_paths(data)
        document = json.loads(data)
        seen: set[tuple[str, ...]] = set()
        for generic, exact in string_paths(document):
            parent, types = document, []
            for step in exact[:-1]:
                parent = parent[step]
                if isinstance(parent, dict) and "resourceType" in parent:
                    types.append(parent["resourceType"])
            # One string per path and resource type: the same code reads its repeats.
            key = (*generic, *types)
            if generic not in read or key in seen:
                continue
            seen.add(key)
            value = parent[exact[-1]]
            for how, changed in _with_refused(value):
                parent[exact[-1]] = changed
                where = ".".join(map(str, exact))
                yield pytest.param(json.dumps(document), id=f"{name}-{where}-{how}")
            parent[exact[-1]] = value


def _fixtures(folder: str, pattern: str) -> list[Path]:
    root = FIXTURES.parent
    return sorted(path for path in (root / folder).rglob(pattern) if "expected" not in path.parts)


def test_the_sweep_message_fills_every_field_the_hl7_ingest_reads() -> None:
    """Every position the ingest asks for, over every HL7 v2 fixture, holds a value in the
    sweep message (else a field read without the checks would go unnoticed here)."""
    fixtures = _fixtures("hl7v2", "*.hl7") + _fixtures("cases", "*.hl7")
    asked = hl7_positions([path.read_bytes() for path in fixtures])
    sweep = parse_message(EVERY_FIELD_READ)
    empty = sorted(
        position
        for position in asked
        if not any(hl7_value(each, position) for each in sweep.segments_named(position[0]))
    )
    assert len(fixtures) > 100
    assert empty == [], f"fill these in EVERY_FIELD_READ: {empty}"


def test_the_sweep_reaches_every_string_the_fhir_ingest_reads() -> None:
    """Every string path any FHIR fixture makes the ingest read is read in a sweep input."""
    every = set().union(*(fhir_paths(path.read_bytes()) for path in _fixtures("fhir", "*.json")))
    swept = set().union(*(fhir_paths(data) for data in _fhir_inputs().values()))
    missing = sorted(".".join(path) for path in every - swept)
    assert missing == [], f"add an input that has these to FHIR_INPUTS: {missing}"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        pytest.param(EVERY_FIELD_READ.encode(), "hl7v2", id="hl7v2-obx23"),
        pytest.param(WITHOUT_PERFORMING_LAB.encode(), "hl7v2", id="hl7v2-msh4"),
        *(pytest.param(data, "fhir", id=f"fhir-{name}") for name, data in _fhir_inputs().items()),
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
