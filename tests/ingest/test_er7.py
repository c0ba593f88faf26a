"""Unit tests for the ER7 tokenizer: splitting, decoding, parsing, accessors and escapes."""

from __future__ import annotations

import pytest

from adapter.errors import EncodingError, MalformedMessage
from adapter.ingest.er7 import (
    HierarchicDesignator,
    MessageType,
    Separators,
    decode_message,
    parse_message,
    split_messages,
    unescape,
)

MSH = "MSH|^~\\&|LAB|HOSP|ADAPTER|HUB|20240312101500||ORU^R01^ORU_R01|{cid}|P|2.5.1"
STANDARD = Separators("|", "^", "~", "\\", "&", "")


def message(cid: str = "C1", *segments: str) -> str:
    return "\r".join([MSH.format(cid=cid), *segments]) + "\r"


def msh_bytes(cid: str) -> bytes:
    return MSH.format(cid=cid).encode()


def control_ids(raws: list[bytes]) -> list[str]:
    return [parse_message(decode_message(raw).text).control_id for raw in raws]


# --------------------------------------------------------------------------------------------
# split_messages
# --------------------------------------------------------------------------------------------

SPLIT_CASES = [
    pytest.param(msh_bytes("A") + b"\rPID|1\r", ["A"], id="single-message-cr"),
    pytest.param(msh_bytes("A") + b"\nPID|1\n", ["A"], id="single-message-lf"),
    pytest.param(msh_bytes("A") + b"\r\nPID|1\r\n", ["A"], id="single-message-crlf"),
    pytest.param(msh_bytes("A") + b"\r\nPID|1\nOBX|1\r", ["A"], id="mixed-line-ends"),
    pytest.param(b"\xef\xbb\xbf" + msh_bytes("A") + b"\r", ["A"], id="utf8-bom-stripped"),
    pytest.param(
        msh_bytes("A") + b"\rPID|1\r" + msh_bytes("B") + b"\rPID|2\r", ["A", "B"], id="back-to-back"
    ),
    pytest.param(
        b"\r\n\n" + msh_bytes("A") + b"\r\n\r\n  \r\nPID|1\n\n" + msh_bytes("B") + b"\n\n",
        ["A", "B"],
        id="blank-lines-ignored",
    ),
    pytest.param(
        b"FHS|^~\\&|LAB\rBHS|^~\\&|LAB\r"
        + msh_bytes("A")
        + b"\rPID|1\r"
        + msh_bytes("B")
        + b"\rPID|2\rBTS|2\rFTS|1\r",
        ["A", "B"],
        id="batch-envelope-dropped",
    ),
    pytest.param(
        b"\x0b" + msh_bytes("A") + b"\rPID|1\r\x1c\r\n\x0b" + msh_bytes("B") + b"\r\x1c\r",
        ["A", "B"],
        id="mllp-frames",
    ),
    pytest.param(
        b"junk\r\n\x0b" + msh_bytes("A") + b"\r\x1c\r--- 2024-01-01 ---\n\x0b"
        b"\xef\xbb\xbf" + msh_bytes("B") + b"\r\x1c",
        ["A", "B"],
        id="mllp-junk-between-frames-and-no-trailing-cr",
    ),
    pytest.param(
        b"\x0bBHS|^~\\&\r" + msh_bytes("A") + b"\r" + msh_bytes("B") + b"\rBTS|2\r\x1c\r",
        ["A", "B"],
        id="mllp-framed-batch",
    ),
    pytest.param(b"", [], id="empty-input"),
    pytest.param(b"\r\n\r\n", [], id="only-blank-lines"),
]


@pytest.mark.parametrize(("data", "expected_ids"), SPLIT_CASES)
def test_split_messages_finds_each_message(data: bytes, expected_ids: list[str]) -> None:
    """Every message is found, in order, whatever the framing and line ends."""
    assert control_ids(split_messages(data)) == expected_ids


def test_split_messages_normalises_segment_ends_to_cr() -> None:
    """Returned messages use CR between segments and end with CR, keeping segment text intact."""
    data = msh_bytes("A") + b"\r\nPID|1||X \n\nOBX|1|ST|c||v\r"
    assert split_messages(data) == [msh_bytes("A") + b"\rPID|1||X \rOBX|1|ST|c||v\r"]


def test_split_messages_keeps_bytes_undecoded() -> None:
    """Splitting works on bytes, so each message can be decoded in its own charset."""
    latin = msh_bytes("A") + b"\rNTE|1||caf\xe9\r"
    utf8 = msh_bytes("B") + b"\rNTE|1||caf\xc3\xa9\r"
    assert split_messages(latin + utf8) == [latin, utf8]


SPLIT_ERRORS = [
    pytest.param(b"PID|1\r" + msh_bytes("A"), "line 1", id="segment-before-first-msh"),
    pytest.param(b"hello\n\n" + msh_bytes("A"), "line 1", id="text-before-first-msh"),
    pytest.param(b"\r\n" + b"XYZ\r\n" + msh_bytes("A"), "line 2", id="location-counts-lines"),
    pytest.param(msh_bytes("A") + b"\rBTS|1\rPID|1\r", "line 3", id="segment-after-batch-trailer"),
    pytest.param(b"\x0bPID|1\r\x1c\r", "frame 1, line 1", id="mllp-frame-without-msh"),
    pytest.param(b"\x0b" + msh_bytes("A") + b"\r", "byte 0", id="mllp-frame-not-terminated"),
    pytest.param(
        b"\x0b" + msh_bytes("A") + b"\r\x0b" + msh_bytes("B") + b"\x1c",
        "byte ",
        id="mllp-frame-inside-frame",
    ),
]


@pytest.mark.parametrize(("data", "location"), SPLIT_ERRORS)
def test_split_messages_rejects_content_outside_messages(data: bytes, location: str) -> None:
    """Content that belongs to no message is an error with a location, not silently dropped."""
    with pytest.raises(MalformedMessage) as caught:
        split_messages(data)
    assert caught.value.location is not None
    assert caught.value.location.startswith(location)


# --------------------------------------------------------------------------------------------
# decode_message
# --------------------------------------------------------------------------------------------


def with_charset(charset: str, body: bytes) -> bytes:
    header = f"MSH|^~\\&|LAB|HOSP|||20240312||ORU^R01|C1|P|2.5.1|||AL|NE||{charset}|"
    return header.encode("ascii") + b"\rNTE|1||" + body + b"\r"


DECODE_CASES = [
    pytest.param(with_charset("", b"plain"), "plain", "ascii", False, id="undeclared-ascii"),
    pytest.param(
        with_charset("", "Lé".encode()), "Lé", "utf-8", True, id="undeclared-utf8-flagged"
    ),
    pytest.param(
        with_charset("", b"L\xe9"), "Lé", "latin-1", True, id="undeclared-latin1-fallback"
    ),
    pytest.param(
        with_charset("ASCII", b"L\xe9"), "Lé", "latin-1", True, id="declared-ascii-but-latin1"
    ),
    pytest.param(with_charset("ISO IR6", b"plain"), "plain", "ascii", False, id="iso-ir6-is-ascii"),
    pytest.param(with_charset("8859/1", b"L\xe9"), "Lé", "latin-1", False, id="8859-1"),
    pytest.param(with_charset("8859/2", b"\xb3"), "ł", "iso8859-2", False, id="8859-2"),
    pytest.param(with_charset("8859/15", b"\xa4"), "€", "iso8859-15", False, id="8859-15"),
    pytest.param(
        with_charset("UNICODE UTF-8", "µg ≥ 2.0".encode()),
        "µg ≥ 2.0",
        "utf-8",
        False,
        id="unicode-utf-8",
    ),
    pytest.param(
        with_charset("unicode utf-8 ", "é".encode()), "é", "utf-8", False, id="case-insensitive"
    ),
    pytest.param(
        with_charset("8859/1~UNICODE UTF-8", b"\xe9"), "é", "latin-1", False, id="first-rep-wins"
    ),
    pytest.param(
        with_charset("UNICODE", "é".encode()), "é", "utf-8", True, id="unicode-readable-as-utf8"
    ),
    pytest.param(with_charset("ISO-8859-1", b"L\xe9"), "Lé", "latin-1", False, id="ISO-8859-1"),
    pytest.param(with_charset("iso8859-1", b"L\xe9"), "Lé", "latin-1", False, id="iso8859-1"),
    pytest.param(with_charset("ISO_8859-2", b"\xb3"), "ł", "iso8859-2", False, id="ISO_8859-2"),
    pytest.param(with_charset("UTF8", "é".encode()), "é", "utf-8", False, id="UTF8"),
]


@pytest.mark.parametrize(("raw", "text_tail", "codec", "fallback_used"), DECODE_CASES)
def test_decode_message_uses_declared_charset(
    raw: bytes, text_tail: str, codec: str, fallback_used: bool
) -> None:
    """MSH-18 picks the codec; a codec other than the declared one is flagged."""
    decoded = decode_message(raw)
    assert decoded.text.endswith(f"NTE|1||{text_tail}\r")
    assert decoded.codec == codec
    assert decoded.fallback_used is fallback_used


def test_decode_message_reports_declared_charset() -> None:
    """The declared MSH-18 value travels with the result, for the ingest warning."""
    assert decode_message(with_charset("8859/1", b"x")).declared_charset == "8859/1"
    assert decode_message(msh_bytes("A") + b"\r").declared_charset == ""


def test_decode_message_custom_fallback() -> None:
    """The fallback codec for undeclared non-UTF-8 bytes is the caller's choice."""
    decoded = decode_message(with_charset("", b"\x80"), fallback="cp1252")
    assert decoded.text.endswith("NTE|1||€\r")
    assert decoded.codec == "cp1252"


DECODE_ERRORS = [
    pytest.param(with_charset("UNICODE UTF-8", b"L\xe9 x"), "UNICODE UTF-8", id="bad-utf8"),
    pytest.param(with_charset("UNICODE UTF-16", b"\xff\xfe"), "UNICODE UTF-16", id="utf16"),
    pytest.param(with_charset("UNICODE", b"\xe9"), "UNICODE", id="unicode-not-utf8"),
    pytest.param(with_charset("8859/3", b"\xa5"), "8859/3", id="byte-undefined-in-8859-3"),
    pytest.param(with_charset("8859/12", b"x"), "8859/12", id="8859-12-does-not-exist"),
    pytest.param(with_charset("KLINGON", b"x"), "KLINGON", id="unknown-charset"),
]


@pytest.mark.parametrize(("raw", "charset"), DECODE_ERRORS)
def test_decode_message_rejects_undecodable(raw: bytes, charset: str) -> None:
    """Bytes not valid in the declared set raise EncodingError naming that set."""
    with pytest.raises(EncodingError) as caught:
        decode_message(raw)
    assert charset in caught.value.reason
    assert caught.value.location == "MSH-18"


def test_decode_message_requires_msh() -> None:
    """A message whose bytes do not start with MSH cannot have its header read."""
    with pytest.raises(MalformedMessage):
        decode_message(b"PID|1\r")


# --------------------------------------------------------------------------------------------
# parse_message: header, separators, validation
# --------------------------------------------------------------------------------------------


def test_parse_message_header_properties() -> None:
    """MSH conveniences read the standard MSH fields."""
    parsed = parse_message(
        "MSH|^~\\&|LAB^1.2.3^ISO|HOSP|ADAPTER|HUB^2.16.840^ISO|20240312||ORU^R01^ORU_R01|"
        "CTRL-9|P|2.5.1\rPID|1\r"
    )
    assert parsed.control_id == "CTRL-9"
    assert parsed.version == "2.5.1"
    assert parsed.message_type == MessageType("ORU", "R01", "ORU_R01")
    assert parsed.message_type == ("ORU", "R01", "ORU_R01")
    assert parsed.sending_application == HierarchicDesignator("LAB", "1.2.3", "ISO")
    assert parsed.sending_facility == HierarchicDesignator("HOSP", "", "")
    assert parsed.receiving_application == HierarchicDesignator("ADAPTER", "", "")
    assert parsed.receiving_facility == HierarchicDesignator("HUB", "2.16.840", "ISO")
    assert [segment.name for segment in parsed.segments] == ["MSH", "PID"]


def test_message_type_structure_is_not_inferred() -> None:
    """A 2.3 MSH-9 without a structure component gives an empty structure, not a guess."""
    parsed = parse_message("MSH|^~\\&|||||||ORU^R01|C1|P|2.3\r")
    assert parsed.message_type == MessageType("ORU", "R01", "")


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        pytest.param(1, "|", id="MSH-1-is-field-separator"),
        pytest.param(2, "^~\\&", id="MSH-2-is-encoding-characters"),
        pytest.param(3, "LAB", id="MSH-3-sending-application"),
        pytest.param(7, "20240312101500", id="MSH-7-date-time"),
        pytest.param(9, "ORU^R01^ORU_R01", id="MSH-9-message-type"),
        pytest.param(10, "C1", id="MSH-10-control-id"),
        pytest.param(12, "2.5.1", id="MSH-12-version"),
        pytest.param(13, "", id="MSH-13-absent"),
    ],
)
def test_msh_field_numbering_is_shifted(n: int, expected: str) -> None:
    """MSH-1 is the separator itself, so MSH field n is the (n-1)th piece after the name."""
    assert parse_message(message()).msh.field(n) == expected


def test_other_segments_number_from_the_name() -> None:
    """Outside MSH, field n is the nth piece after the segment name."""
    pid = parse_message(message("C1", "PID|1|ext|MRN^^^H^MR")).segments[1]
    assert [pid.field(n) for n in range(5)] == ["", "1", "ext", "MRN^^^H^MR", ""]
    assert pid.field_count == 3


def test_msh_separator_fields_are_atomic() -> None:
    """MSH-1 and MSH-2 are never split into components or unescaped."""
    msh = parse_message(message()).msh
    assert msh.components(2) == ["^~\\&"]
    assert msh.component(2, 1) == "^~\\&"
    assert msh.component(2, 2) == ""
    assert msh.repetitions(2) == ["^~\\&"]
    assert msh.raw(1) == "|"


@pytest.mark.parametrize(
    ("text", "separators"),
    [
        pytest.param(message(), STANDARD, id="standard"),
        pytest.param(
            "MSH#*$@%#A#B#C#D#20240312##ORU*R01#C1#P#2.5.1\rPID#1\r",
            Separators("#", "*", "$", "@", "%", ""),
            id="custom-separators",
        ),
        pytest.param(
            "MSH|^~\\&#|A|B|C|D|20240312||ORU^R01|C1|P|2.7\r",
            Separators("|", "^", "~", "\\", "&", "#"),
            id="v2.7-truncation-character",
        ),
        pytest.param(
            "MSH|^~|A|B|C|D|20240312||ORU^R01|C1|P|2.3\r",
            Separators("|", "^", "~", "", "", ""),
            id="two-encoding-characters",
        ),
    ],
)
def test_separators_come_from_msh(text: str, separators: Separators) -> None:
    """MSH-1 and MSH-2 declare the separators; undeclared ones are empty."""
    assert parse_message(text).separators == separators


def test_custom_separators_split_fields() -> None:
    """With MSH#*$@%, # splits fields, * components, $ repetitions, % subcomponents."""
    parsed = parse_message("MSH#*$@%#A#B#C#D#20240312##ORU*R01#C1#P#2.5.1\rOBX#1#CWE#a*b%c$d#\r")
    obx = parsed.segments[1]
    assert parsed.message_type == MessageType("ORU", "R01", "")
    assert obx.raw_repetitions(3) == ["a*b%c", "d"]
    assert obx.component(3, 2, 2) == "c"
    assert obx.component(3, 1, rep=2) == "d"
    assert obx.field(4) == ""


def test_two_encoding_characters_do_not_split_subcomponents() -> None:
    """Without a declared subcomponent separator, & and \\ are plain text."""
    parsed = parse_message("MSH|^~|A|B|C|D|2024||ORU^R01|C1|P|2.3\rNTE|1||A & B \\F\\\r")
    assert parsed.segments[1].component(3, 1) == "A & B \\F\\"


def test_parse_accepts_lf_and_bom() -> None:
    """Text handed in directly may still use LF segment ends or carry a BOM."""
    parsed = parse_message("\ufeff" + message("C1", "PID|1").replace("\r", "\r\n"))
    assert [segment.name for segment in parsed.segments] == ["MSH", "PID"]
    assert parsed.segments[1].field(1) == "1"


PARSE_ERRORS = [
    pytest.param("", "segment 1", id="empty"),
    pytest.param("PID|1\r" + message(), "segment 1", id="no-msh-first"),
    pytest.param("MSH", "MSH-1", id="truncated-after-name"),
    pytest.param("MSHA^~\\&|x", "MSH-1", id="alphanumeric-field-separator"),
    pytest.param("MSH ^~\\& x", "MSH-1", id="space-field-separator"),
    pytest.param("MSH||A|B", "MSH-2", id="no-encoding-characters"),
    pytest.param("MSH|^~\\&#!|A", "MSH-2", id="six-encoding-characters"),
    pytest.param("MSH|^^\\&|A", "MSH-2", id="repeated-encoding-character"),
    pytest.param("MSH|^A\\&|A", "MSH-2", id="alphanumeric-encoding-character"),
    pytest.param("MSH|^~\\&|LAB|HOSP|||2024||", "MSH-9", id="truncated-before-msh-9"),
    pytest.param("MSH|^~\\&|LAB|HOSP|||2024||^R01|C1|P|2.5", "MSH-9", id="msh-9-code-empty"),
    pytest.param("MSH|^~\\&|LAB|HOSP|||2024||ORU^R01", "MSH-10", id="truncated-before-msh-10"),
    pytest.param("MSH|^~\\&|LAB|HOSP|||2024||ORU^R01|C1|P", "MSH-12", id="no-msh-12"),
    pytest.param("MSH|^~\\&|LAB|HOSP|||2024||ORU^R01|C1|P|^x", "MSH-12", id="msh-12-id-empty"),
    pytest.param(message("C1", "PID|1", "OBX|1", "obx|2"), "segment 4", id="lowercase-name"),
    pytest.param(message("C1", "PI|1"), "segment 2", id="two-letter-name"),
    pytest.param(message("C1", "OBXX|1"), "segment 2", id="four-letter-name"),
    pytest.param(message("C1", "ÖBX|1"), "segment 2", id="non-ascii-name"),
    pytest.param(message("C1", " PID|1"), "segment 2", id="leading-space"),
    pytest.param(message("C1", "PID|1", message("C2")), "segment 3", id="second-msh"),
]


@pytest.mark.parametrize(("text", "location"), PARSE_ERRORS)
def test_parse_message_rejects_unusable_messages(text: str, location: str) -> None:
    """Unreadable or incomplete messages raise MalformedMessage with an HL7 location."""
    with pytest.raises(MalformedMessage) as caught:
        parse_message(text)
    assert caught.value.location == location


@pytest.mark.parametrize(
    "name", ["OBX", "ZB1", "Z01", "123", "NTE"], ids=lambda name: f"valid-name-{name}"
)
def test_segment_names_of_uppercase_letters_and_digits(name: str) -> None:
    """Segment names are three uppercase letters or digits."""
    assert parse_message(message("C1", f"{name}|x")).segments[1].name == name


def test_empty_segment_lines_are_skipped() -> None:
    """Blank lines between segments are not segments."""
    parsed = parse_message(message("C1", "", "PID|1", "", "OBX|1"))
    assert [segment.name for segment in parsed.segments] == ["MSH", "PID", "OBX"]


# --------------------------------------------------------------------------------------------
# Accessors
# --------------------------------------------------------------------------------------------

OBX = "OBX|1|CWE|85319-2^HER2^LN~X1^Local^L|sub|3+^Positive^99LAB&1.2.3&ISO~2+^Equivocal||||||F"


@pytest.fixture
def obx() -> object:
    return parse_message(message("C1", OBX)).segments[1]


ACCESS_CASES = [
    ("field", (3,), "85319-2^HER2^LN"),
    ("field", (3, 2), "X1^Local^L"),
    ("field", (3, 3), ""),
    ("field", (99,), ""),
    ("field", (0,), ""),
    ("field", (-1,), ""),
    ("repetitions", (3,), ["85319-2^HER2^LN", "X1^Local^L"]),
    ("repetitions", (4,), ["sub"]),
    ("repetitions", (6,), []),
    ("repetitions", (99,), []),
    ("components", (3,), ["85319-2", "HER2", "LN"]),
    ("components", (3, 2), ["X1", "Local", "L"]),
    ("components", (5,), ["3+", "Positive", "99LAB&1.2.3&ISO"]),
    ("components", (6,), []),
    ("components", (3, 5), []),
    ("component", (3,), "85319-2"),
    ("component", (3, 2), "HER2"),
    ("component", (3, 4), ""),
    ("component", (3, 1, 1, 2), "X1"),
    ("component", (3, 2, 2), ""),
    ("component", (5, 3), "99LAB"),
    ("component", (5, 3, 2), "1.2.3"),
    ("component", (5, 3, 3), "ISO"),
    ("component", (5, 3, 4), ""),
    ("component", (5, 1, 1, 2), "2+"),
    ("component", (5, 1, 1, 3), ""),
    ("component", (6, 1), ""),
    ("component", (99, 9, 9, 9), ""),
    ("component", (3, 0), ""),
    ("subcomponents", (5, 3), ["99LAB", "1.2.3", "ISO"]),
    ("subcomponents", (5, 1), ["3+"]),
    ("subcomponents", (5, 9), []),
    ("raw", (5,), "3+^Positive^99LAB&1.2.3&ISO~2+^Equivocal"),
    ("raw", (11,), "F"),
    ("raw", (12,), ""),
    ("raw_repetition", (5, 2), "2+^Equivocal"),
    ("raw_repetition", (5, 0), ""),
]


@pytest.mark.parametrize(
    ("method", "args", "expected"),
    [pytest.param(*case, id=f"{case[0]}{case[1]}") for case in ACCESS_CASES],
)
def test_segment_accessors(
    obx: object, method: str, args: tuple[int, ...], expected: object
) -> None:
    """Accessors use 1-based HL7 positions and return empty values for absent parts."""
    assert getattr(obx, method)(*args) == expected


def test_escaped_separators_are_not_split() -> None:
    """Escapes are resolved after splitting, so an escaped ^ or ~ stays inside its value."""
    nte = parse_message(message("C1", "NTE|1||HER2\\S\\neu\\R\\x \\T\\ y^two~rep")).segments[1]
    assert nte.raw_components(3) == ["HER2\\S\\neu\\R\\x \\T\\ y", "two"]
    assert nte.component(3, 1) == "HER2^neu~x & y"
    assert nte.components(3) == ["HER2^neu~x & y", "two"]
    assert nte.repetitions(3) == ["HER2^neu~x & y^two", "rep"]
    assert nte.raw_component(3, 1) == "HER2\\S\\neu\\R\\x \\T\\ y"


def test_trailing_whitespace_is_kept() -> None:
    """Values are returned exactly as sent, spaces included."""
    nte = parse_message(message("C1", "NTE|1|| padded ")).segments[1]
    assert nte.field(3) == " padded "


# --------------------------------------------------------------------------------------------
# Escapes
# --------------------------------------------------------------------------------------------

ESCAPE_CASES = [
    ("no escapes here", "no escapes here", "plain"),
    ("a\\F\\b", "a|b", "field-separator"),
    ("a\\S\\b", "a^b", "component-separator"),
    ("a\\T\\b", "a&b", "subcomponent-separator"),
    ("a\\R\\b", "a~b", "repetition-separator"),
    ("a\\E\\b", "a\\b", "escape-character"),
    ("\\E\\F\\E\\", "\\F\\", "escaped-escape-is-not-reinterpreted"),
    ("line1\\.br\\line2", "line1\nline2", "ft-line-break"),
    ("a\\.sp\\b", "a\nb", "ft-skip-line"),
    ("a\\.sp2\\b", "a\n\nb", "ft-skip-two-lines"),
    ("\\H\\HER2\\N\\ amplified", "HER2 amplified", "highlight-dropped"),
    ("\\.in+4\\a\\.ti-2\\b\\.sk3\\c\\.ce\\d\\.fi\\e\\.nf\\", "abcde", "formatting-dropped"),
    ("\\X41\\", "A", "hex-ascii"),
    ("\\XC3A9\\", "é", "hex-utf8"),
    ("\\XE9\\", "é", "hex-invalid-utf8-falls-back-to-latin1"),
    ("\\X4\\", "\\X4\\", "hex-odd-digits-literal"),
    ("\\XZZ\\", "\\XZZ\\", "hex-bad-digits-literal"),
    ("\\X\\", "\\X\\", "hex-empty-literal"),
    ("a\\Q\\b", "a\\Q\\b", "unknown-escape-literal"),
    ("a\\Cxxyy\\b", "a\\Cxxyy\\b", "charset-escape-literal"),
    ("\\.zz\\", "\\.zz\\", "unknown-formatting-literal"),
    ("\\.spx\\", "\\.spx\\", "bad-skip-count-literal"),
    ("a\\\\b", "a\\\\b", "empty-escape-literal"),
    ("50\\", "50\\", "unterminated-literal"),
    ("C:\\path", "C:\\path", "single-escape-char-literal"),
    ("\\F\\\\S\\", "|^", "adjacent-escapes"),
    ("a\\F\\b\\", "a|b\\", "escape-then-unterminated"),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [pytest.param(raw, exp, id=case_id) for raw, exp, case_id in ESCAPE_CASES]
)
def test_unescape(raw: str, expected: str) -> None:
    """Escape sequences become their text; anything unrecognised stays literal."""
    assert unescape(raw, STANDARD) == expected


def test_unescape_uses_custom_escape_character() -> None:
    """The escape character is whatever MSH-2 declares, and \\ is then plain text."""
    separators = Separators("#", "*", "$", "@", "%", "")
    assert unescape("@F@ @S@ @T@ @R@ @E@ \\F\\", separators) == "# * % $ @ \\F\\"


def test_unescape_hex_uses_message_codec() -> None:
    """\\X..\\ bytes are decoded in the message's own character set."""
    assert unescape("\\XB3\\", STANDARD, "iso8859-2") == "ł"


def test_unescape_of_undeclared_separator_is_literal() -> None:
    """An escape for a separator the message did not declare cannot be resolved."""
    separators = Separators("|", "^", "~", "\\", "", "")
    assert unescape("a\\T\\b\\S\\c", separators) == "a\\T\\b^c"


def test_segment_unescape_uses_codec_from_parse() -> None:
    """parse_message passes its codec on to the accessors' hex escapes."""
    parsed = parse_message(message("C1", "NTE|1||\\XE9\\"), codec="latin-1")
    assert parsed.segments[1].field(3) == "é"
    assert parsed.codec == "latin-1"


# --------------------------------------------------------------------------------------------
# Message helpers
# --------------------------------------------------------------------------------------------


def test_segment_lookup_helpers() -> None:
    """first_segment and segments_named find segments by name in order."""
    parsed = parse_message(message("C1", "PID|1", "OBX|1", "NTE|1", "OBX|2"))
    assert [segment.field(1) for segment in parsed.segments_named("OBX")] == ["1", "2"]
    first = parsed.first_segment("NTE")
    assert first is not None
    assert first.field(1) == "1"
    assert parsed.first_segment("SPM") is None
    assert parsed.segments_named("SPM") == []


def test_end_to_end_latin1_batch() -> None:
    """Split, decode and parse a latin-1 batch with CRLF line ends."""
    data = (
        b"BHS|^~\\&\r\n"
        + with_charset("8859/1", b"Fr\xe4ulein \\S\\ Gr\xfc\xdfe").replace(b"\r", b"\r\n")
        + b"BTS|1\r\n"
    )
    (raw,) = split_messages(data)
    decoded = decode_message(raw)
    parsed = parse_message(decoded.text, codec=decoded.codec)
    assert parsed.segments[1].field(3) == "Fräulein ^ Grüße"


def test_component_lists_are_the_callers_own() -> None:
    """Changing a returned component list never changes what the segment answers next."""
    obx = parse_message(message("C1", "OBX|1|CWE|85319-2^HER2 IHC^LN")).segments[1]
    obx.raw_components(3).clear()
    obx.components(3).append("x")
    assert obx.raw_components(3) == ["85319-2", "HER2 IHC", "LN"]
    assert obx.components(3) == ["85319-2", "HER2 IHC", "LN"]
    assert obx.component(3, 2) == "HER2 IHC"


def test_repeated_reads_of_a_field_agree() -> None:
    """Every repetition is split on its own, however often and in whatever order it is read."""
    pid = parse_message(message("C1", "PID|1||A^^^X&1.2&ISO~B\\S\\C^^^Y")).segments[1]
    for _ in range(2):
        assert pid.component(3, 4, 2, rep=1) == "1.2"
        assert pid.components(3, rep=2) == ["B^C", "", "", "Y"]
        assert pid.raw_component(3, 1, rep=2) == "B\\S\\C"
        assert pid.component(3, 1, rep=1) == "A"
        assert pid.raw_subcomponents(3, 4, rep=1) == ["X", "1.2", "ISO"]
