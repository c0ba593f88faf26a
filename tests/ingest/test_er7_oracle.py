"""The ER7 tokenizer agrees with hl7apy, the reference parser, on real and generated messages.

hl7apy keeps values escaped and numbers positions only by element names, dropping empty elements;
so both parses are reduced to ``{(field, repetition, component, subcomponent): raw value}`` over
non-blank leaves and compared whole. Unescaping is checked against the generator's own values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message as hl7apy_parse_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.ingest.er7 import (
    Message,
    Segment,
    Separators,
    decode_message,
    parse_message,
    split_messages,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7v2"

Key = tuple[object, int, int, int]
Leaves = dict[Key, str]

# --------------------------------------------------------------------------------------------
# Reducing both parses to comparable leaves
# --------------------------------------------------------------------------------------------

_POSITION = re.compile(r"_(\d+)$")


def _position(name: str | None, ordinal: int) -> int:
    """The 1-based position hl7apy encodes in an element name, else the element's ordinal."""
    found = _POSITION.search(name or "")
    return int(found.group(1)) if found else ordinal


def _hl7apy_leaf(subcomponent: Any) -> str:
    value = subcomponent.value
    inner = getattr(value, "value", value)
    # Dates and numbers are converted by hl7apy; their ER7 form is the comparable text.
    return inner if isinstance(inner, str) else str(subcomponent.to_er7())


def hl7apy_segments(text: str) -> list[tuple[str, Leaves, int | None]]:
    """Per segment: name, leaves, and the structure length when hl7apy left fields unnamed."""
    parsed = hl7apy_parse_message(
        text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False
    )
    result: list[tuple[str, Leaves, int | None]] = []
    for segment in parsed.children:
        leaves: Leaves = {}
        previous_name: str | None = None
        repetition = 0
        extras = 0
        for field in segment.children:
            if field.name is None:
                extras += 1
                field_key: object = ("extra", extras)
                repetition = 1
            else:
                field_key = _position(field.name, 0)
                repetition = repetition + 1 if field.name == previous_name else 1
            previous_name = field.name
            for c_index, component in enumerate(field.children, start=1):
                c = _position(component.name, c_index)
                for s_index, subcomponent in enumerate(component.children, start=1):
                    s = _position(subcomponent.name, s_index)
                    value = _hl7apy_leaf(subcomponent)
                    if value.strip():
                        leaves[(field_key, repetition, c, s)] = value
        structure = len(segment.structure_by_name) if extras else None
        result.append((segment.name, leaves, structure))
    return result


def our_leaves(segment: Segment, structure: int | None) -> Leaves:
    """Our parse reduced like hl7apy's; fields past ``structure`` are numbered as extras."""
    # hl7apy strips each segment's text before splitting it: do the same to the last field.
    *head, last = segment.raw_fields
    segment = Segment(segment.name, (*head, last.rstrip()), segment.separators, "utf-8")
    leaves: Leaves = {}
    extras = 0
    for n in range(1, segment.field_count + 1):
        if not segment.raw(n).strip():
            continue
        for rep in range(1, len(segment.raw_repetitions(n)) + 1):
            if structure is not None and n > structure:
                extras += 1
                field_key: object = ("extra", extras)
                rep_key = 1
            else:
                field_key, rep_key = n, rep
            for c in range(1, len(segment.raw_components(n, rep)) + 1):
                for s, value in enumerate(segment.raw_subcomponents(n, c, rep), start=1):
                    if value.strip():
                        leaves[(field_key, rep_key, c, s)] = value
    return leaves


def assert_same_as_hl7apy(text: str) -> Message:
    ours = parse_message(text)
    reference = hl7apy_segments(text)
    assert [segment.name for segment in ours.segments] == [name for name, _, _ in reference]
    for index, (segment, (_, expected, structure)) in enumerate(
        zip(ours.segments, reference, strict=True), start=1
    ):
        assert our_leaves(segment, structure) == expected, f"segment {index} {segment.name}"
    return ours


# --------------------------------------------------------------------------------------------
# Realistic messages and fixture files
# --------------------------------------------------------------------------------------------

INLINE_MESSAGES = {
    "v2.5.1-breast-panel-ihc-fish-er-pgr": (
        "MSH|^~\\&|PATHLAB^2.16.840.1.113883.3.1234^ISO|GENHOSP^2.16.840.1.113883.3.99^ISO|"
        "HER2ADAPTER|ONCHUB|20240312101500+0100||ORU^R01^ORU_R01|PL-000101|P|2.5.1|||AL|NE|USA|"
        "UNICODE UTF-8|||LRI_Common_Component^^2.16.840.1.113883.9.16^ISO\r"
        "PID|1||MRN000123^^^GENHOSP&2.16.840.1.113883.3.99&ISO^MR~999-55-1234^^^SSA^SS||"
        "DOE^JANE^Q^^^^L||19650412|F|||1 MAIN ST^^SPRINGFIELD^IL^62701^USA\r"
        "PV1|1|O|ONC^^^GENHOSP\r"
        "ORC|RE|ORD-88^EPIC|SP24-1234^PATHLAB||CM\r"
        "OBR|1|ORD-88^EPIC|SP24-1234^PATHLAB|85337-4^Breast cancer panel^LN|||20240310090000|||"
        "||||||1234567890^SMITH^JOHN^^^DR^^^NPI&2.16.840.1.113883.4.6&ISO||||||20240312101500|"
        "||F\r"
        "OBX|1|CWE|85319-2^HER2 [Presence] in Breast cancer specimen by Immune stain^LN|1|"
        "LA6577-6^Positive^LN^3+^Score 3+^L||||||F|||20240311|||||20240312101500\r"
        "OBX|2|NM|85318-4^HER2 copy number/CEP17 ratio by FISH^LN|2|2.35|{ratio}^ratio^UCUM|"
        "<2.0||||F\r"
        "OBX|3|NM|49683-6^HER2 copy number per cell^LN|2|6.10|{copies}/{cell}^^UCUM||||||F\r"
        "OBX|4|SN|85337-4^Estrogen receptor positive cells^LN|3|>^90|%^percent^UCUM||||||F\r"
        "OBX|5|SN|85339-0^Progesterone receptor positive cells^LN|4|^10^-^20|%^^UCUM||||||F\r"
        "NTE|1|L|ER strong \\T\\ diffuse; PgR weak\\R\\moderate.\r"
        "SPM|1|SP24-1234-A1&PATHLAB&2.16.840.1.113883.3.1234&ISO||TISS^Tissue^HL70487|||"
        "EXCISION^Excision^L|LBR^Left breast^L||||||||||20240310090000|20240310100000\r"
    ),
    "v2.5.1-gastric-biopsy-text-results": (
        "MSH|^~\\&|ANATPATH|CITYHOSP|HER2ADAPTER|ONCHUB|20240401083000||ORU^R01^ORU_R01|"
        "AP-7781|P|2.5.1|||AL|NE||8859/1\r"
        "PID|1||445566^^^CITYHOSP^MR||MÜLLER^HANS||19580102|M\r"
        "OBR|1||G24-0042^ANATPATH|85336-6^Gastric cancer HER2 panel^LN|||20240329||||||"
        "|||||||||20240401083000|||F\r"
        "OBX|1|ST|85319-2^HER2 IHC score^LN|1|2+||||||F\r"
        "OBX|2|TX|22637-3^Pathology report final diagnosis^LN|1|Adenocarcinoma, intestinal "
        "type~Biopsy: 5 fragments||||||F\r"
        "OBX|3|FT|22638-1^Comments^LN|1|HER2 IHC 2+ in \\H\\cluster of ≥5 cells\\N\\."
        "\\.br\\ISH reflex requested\\E\\pending.||||||P\r"
        "NTE|1|L|Specimen fixed 8 h in 10\\X25\\ NBF\r"
        "SPM|1|G24-0042-B1||TISS^Tissue^HL70487|||BX^Biopsy^L|STO^Stomach^L\r"
    ),
    "v2.3-legacy-ce-results": (
        "MSH|^~\\&|LEGACYLIS|OLDHOSP|ADAPTER|HUB|200401011200||ORU^R01|L2003-1|P|2.3\r"
        "PID|||PAT01^^^OLDHOSP||ROE^RICHARD||19500101|M\r"
        "OBR|1||S04-11^LEGACYLIS|HER2^HER2 panel^L|||200312301000\r"
        "OBX|1|CE|HER2IHC^HER2 by IHC^L||POS^Positive 3+^L||||||F\r"
        "OBX|2|NM|HER2RAT^HER2/CEP17 ratio^L||4.1|ratio|<2.0|H|||F\r"
        "OBX|3|ST|ERPCT^ER percent^L||<1%||||||F\r"
        "NTE|1||Results \\E\\ reviewed by \\S\\pathologist\\S\\\r"
    ),
    "v2.8-truncation-char-and-repeats": (
        "MSH|^~\\&#|PATHLAB^1.2.3.4^ISO|GENHOSP|HER2ADAPTER|ONCHUB|20240501120000-0500||"
        "ORU^R01^ORU_R01|V28-0001|P|2.8|||AL|NE||UNICODE UTF-8\r"
        "PID|1||A1^^^H^MR~B2^^^H^PI~C3^^^H^PT||SMITH^ANNA||19700707|F\r"
        "ORC|RE||P-1^PATHLAB\r"
        "OBR|1||P-1^PATHLAB|85337-4^Breast cancer panel^LN|||20240430\r"
        "OBX|1|CWE|85319-2^HER2 IHC^LN|1|LA6576-8^Negative^LN~LA14261-2^1+^LN||||||F\r"
        "OBX|2|NM|85318-4^HER2/CEP17^LN|2|1.8|{ratio}^^UCUM|<2.0|N|||F\r"
        "OBX|3|CWE|16112-5^ER^LN|3|LA6576-8^Negative^LN^^^^^^Negative (\\X3C\\1%)||||||F\r"
        "SPM|1|S-1||TISS^Tissue^HL70487\r"
    ),
    "v2.5.1-empty-fields-and-trailing-separators": (
        "MSH|^~\\&|LAB||||20240601||ORU^R01|E-1|P|2.5.1||||||\r"
        "PID|||X^^^^^^^^^||^^^^||||||||||||\r"
        "OBR|1\r"
        "OBX|1|CWE|85319-2^^LN||^^^^^^^^^&&&||||||F|||\r"
        "OBX|2|ST|X^^L||  spaced value  ||||||F\r"
        "NTE|1\r"
    ),
    "v2.5.1-z-segment-and-fields-past-structure": (
        "MSH|^~\\&|LAB|HOSP|||20240701||ORU^R01^ORU_R01|Z-1|P|2.5.1\r"
        "PID|1||Z1^^^H^MR\r"
        "OBR|1||Z-ACC\r"
        "OBX|1|ST|X^Y^L||value||||||F|||||||||||||||||past-structure~rep2|x^y\r"
        "ZHR|1|HER2 lab extension^sub&part|||a~b~~c\r"
    ),
}


@pytest.mark.parametrize("text", list(INLINE_MESSAGES.values()), ids=list(INLINE_MESSAGES))
def test_inline_messages_match_hl7apy(text: str) -> None:
    """Every field, repetition, component and subcomponent matches hl7apy's parse."""
    ours = assert_same_as_hl7apy(text)
    assert ours.message_type.code == "ORU"


def _fixture_files() -> list[Any]:
    params = []
    for path in sorted(FIXTURES.glob("*.hl7")):
        marks = []
        if path.name.startswith("bad-"):
            marks.append(pytest.mark.skip(reason="intentionally malformed; hl7apy cannot parse it"))
        params.append(pytest.param(path, id=path.name, marks=marks))
    if not params:
        params.append(
            pytest.param(None, id="no-fixtures", marks=pytest.mark.skip(reason="no fixture files"))
        )
    return params


@pytest.mark.parametrize("path", _fixture_files())
def test_fixture_files_match_hl7apy(path: Path) -> None:
    """Each message of each fixture file tokenizes exactly as hl7apy parses it."""
    raws = split_messages(path.read_bytes())
    assert raws, "fixture holds no message"
    for raw in raws:
        assert_same_as_hl7apy(decode_message(raw).text)


# --------------------------------------------------------------------------------------------
# Generated messages
# --------------------------------------------------------------------------------------------

SEPARATOR_POOL = "|^~\\&#*$@%!?/+=;:{}[]<>`'\""
TEXT_ALPHABET = "abcXYZ019 .,-<>µé≥" + SEPARATOR_POOL


@dataclass(frozen=True)
class GeneratedMessage:
    text: str
    separators: Separators
    # segment name -> fields -> repetitions -> components -> subcomponents (unescaped)
    segments: list[tuple[str, list[list[list[list[str]]]]]]


def escape(value: str, separators: Separators) -> str:
    escape_char = separators.escape
    value = value.replace(escape_char, f"{escape_char}E{escape_char}")
    for separator, code in (
        (separators.field, "F"),
        (separators.component, "S"),
        (separators.subcomponent, "T"),
        (separators.repetition, "R"),
    ):
        value = value.replace(separator, f"{escape_char}{code}{escape_char}")
    return value


leaf_text = st.text(alphabet=TEXT_ALPHABET, max_size=6)
components = st.lists(st.lists(leaf_text, min_size=1, max_size=3), min_size=1, max_size=3)
field_values = st.lists(components, min_size=1, max_size=3)


@st.composite
def generated_messages(draw: st.DrawFn) -> GeneratedMessage:
    chars = draw(st.permutations(SEPARATOR_POOL).map(lambda pool: pool[:6]))
    truncation = draw(st.booleans())
    separators = Separators(*chars[:5], chars[5] if truncation else "")
    f, c, _, _, s, _ = separators
    version = "2.7" if truncation else "2.5.1"
    encoding = "".join(separators[1:])
    msh = ["MSH", encoding, "LAB", "HOSP", "", "", "20240101", "", f"ORU{c}R01{c}ORU_R01"]
    header = f.join([*msh, "GEN-1", "P", version])
    names = draw(st.lists(st.sampled_from(["ZHR", "ZX1", "ZAB"]), min_size=1, max_size=4))
    segments: list[tuple[str, list[list[list[list[str]]]]]] = []
    lines = [header]
    for name in names:
        fields = draw(st.lists(field_values, min_size=1, max_size=6))
        segments.append((name, fields))
        encoded_fields = [
            separators.repetition.join(
                c.join(s.join(escape(leaf, separators) for leaf in comp) for comp in rep)
                for rep in reps
            )
            for reps in fields
        ]
        lines.append(f.join([name, *encoded_fields]))
    return GeneratedMessage("\r".join(lines) + "\r", separators, segments)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated_messages())
def test_generated_messages_match_generator_and_hl7apy(generated: GeneratedMessage) -> None:
    """Random separators and nesting: unescaped values equal the generator's, raw equal hl7apy's."""
    parsed = assert_same_as_hl7apy(generated.text)
    assert parsed.separators == generated.separators
    assert parsed.control_id == "GEN-1"
    sub = generated.separators.subcomponent
    for segment, (name, fields) in zip(parsed.segments[1:], generated.segments, strict=True):
        assert segment.name == name
        assert segment.field_count == len(fields)
        for n, reps in enumerate(fields, start=1):
            empty_field = reps == [[[""]]]
            assert len(segment.raw_repetitions(n)) == (0 if empty_field else len(reps))
            for rep, comps in enumerate(reps, start=1):
                expected = [] if comps == [[""]] else [sub.join(subs) for subs in comps]
                assert segment.components(n, rep) == expected
                for c, subs in enumerate(comps, start=1):
                    for s, leaf in enumerate(subs, start=1):
                        assert segment.component(n, c, s, rep) == leaf
