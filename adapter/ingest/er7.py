"""Fast tokenizer for HL7 v2 ER7 ("pipe and hat") messages.

This is the measured hot path of HL7 v2 ingest: hl7apy's full parse costs milliseconds per ORU,
splitting on separators costs microseconds, and this module stays close to the latter. It only
splits and unescapes; it knows nothing of segment grammars or data types (ingest does that).

Three steps, each usable alone::

    split_messages(data)   bytes of a file, stream or MLLP dump -> one bytes object per message
    decode_message(raw)    bytes -> text, using the character set declared in MSH-18
    parse_message(text)    text -> Message of Segments with 1-based HL7 field accessors

Field numbering follows HL7: ``seg.field(3)`` is ``PID-3``. In MSH the field separator itself is
MSH-1 and the encoding characters are MSH-2, so ``msh.field(9)`` is MSH-9 as the standard counts.
Values are split first and unescaped afterwards, so an escaped ``\\S\\`` never becomes a split.
"""

from __future__ import annotations

import codecs
import re
from typing import NamedTuple

from adapter.errors import EncodingError, MalformedMessage
from adapter.ingest.mllp import END_BLOCK, START_BLOCK

__all__ = [
    "DecodedMessage",
    "HierarchicDesignator",
    "Message",
    "MessageType",
    "Segment",
    "Separators",
    "decode_message",
    "parse_message",
    "split_messages",
    "unescape",
]

_BOM = b"\xef\xbb\xbf"
_BATCH_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")

# --------------------------------------------------------------------------------------------
# Splitting a byte stream into messages
# --------------------------------------------------------------------------------------------


def split_messages(data: bytes) -> list[bytes]:
    """Split a file or stream into messages, each starting with ``MSH`` and ending with CR.

    Accepts one message, messages back to back, an FHS/BHS ... BTS/FTS batch (the envelope
    segments are dropped) and MLLP-framed dumps (bytes between frames are ignored). Segment ends
    may be CR, LF or CRLF, mixed; blank lines are ignored.
    """
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if START_BLOCK not in data:
        return _split_plain(data, where="")
    messages: list[bytes] = []
    for number, frame in enumerate(_mllp_frames(data), start=1):
        if frame.startswith(_BOM):
            frame = frame[len(_BOM) :]
        messages.extend(_split_plain(frame, where=f"frame {number}, "))
    return messages


def _mllp_frames(data: bytes) -> list[bytes]:
    frames: list[bytes] = []
    start = data.find(START_BLOCK)
    while start >= 0:
        end = data.find(END_BLOCK, start + 1)
        if end < 0:
            # A frame without its end block is most likely a truncated capture: refuse it
            # rather than hand on a message that may be missing its last segments.
            raise MalformedMessage("MLLP frame is not terminated", location=f"byte {start}")
        nested = data.find(START_BLOCK, start + 1, end)
        if nested >= 0:
            raise MalformedMessage(
                "MLLP frame starts inside another frame", location=f"byte {nested}"
            )
        frames.append(data[start + 1 : end])
        start = data.find(START_BLOCK, end + 1)
    return frames


def _split_plain(data: bytes, *, where: str) -> list[bytes]:
    if b"\n" in data:
        data = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    messages: list[bytes] = []
    current: list[bytes] | None = None
    for line_number, line in enumerate(data.split(b"\r"), start=1):
        if not line.strip():
            continue
        head = line[:3]
        if head == b"MSH":
            if current is not None:
                messages.append(b"\r".join(current) + b"\r")
            current = [line]
        elif head in _BATCH_ENVELOPE:
            if current is not None:
                messages.append(b"\r".join(current) + b"\r")
            current = None
        elif current is None:
            raise MalformedMessage(
                "content outside a message (expected MSH or a batch header)",
                location=f"{where}line {line_number}",
            )
        else:
            current.append(line)
    if current is not None:
        messages.append(b"\r".join(current) + b"\r")
    return messages


# --------------------------------------------------------------------------------------------
# Decoding bytes with the declared character set
# --------------------------------------------------------------------------------------------


class DecodedMessage(NamedTuple):
    """A message as text, with the codec that decoded it.

    ``fallback_used`` is true when the bytes were not in the character set the message declared
    (or implied: no MSH-18 means ASCII) and another codec had to be used; ingest reports it.
    """

    text: str
    codec: str
    declared_charset: str
    fallback_used: bool


_ASCII_DECLARATIONS = frozenset({"", "ASCII", "ISO IR6"})
_UNICODE_DECLARATIONS = frozenset({"UNICODE", "UNICODE UTF-16", "UNICODE UTF-32"})
# "UTF-8" is not in HL7 table 0211 but is what many senders write, and it is unambiguous.
_UTF8_DECLARATIONS = frozenset({"UNICODE UTF-8", "UTF-8", "UTF8"})


def decode_message(raw: bytes, fallback: str = "latin-1") -> DecodedMessage:
    """Decode one message's bytes using the character set declared in MSH-18.

    Undeclared or ASCII: ASCII, else UTF-8 (strict), else ``fallback``, flagged. ``8859/N``: the
    matching ISO 8859 codec. ``UNICODE UTF-8``: strict UTF-8. ``UNICODE``/``UNICODE UTF-16``
    cannot be what an ASCII-readable header was written in, so they are accepted only when the
    bytes are valid UTF-8 (flagged). Undecodable bytes raise ``EncodingError`` naming the charset.
    """
    declared = _declared_charset(raw)
    key = declared.upper()
    if key in _ASCII_DECLARATIONS:
        if raw.isascii():
            return DecodedMessage(raw.decode("ascii"), "ascii", declared, False)
        try:
            return DecodedMessage(raw.decode("utf-8"), "utf-8", declared, True)
        except UnicodeDecodeError:
            pass
        try:
            return DecodedMessage(raw.decode(fallback), fallback, declared, True)
        except UnicodeDecodeError:
            raise EncodingError(
                f"bytes are neither ASCII, UTF-8 nor {fallback} (declared {declared!r})",
                location="MSH-18",
            ) from None
    if key in _UTF8_DECLARATIONS:
        return DecodedMessage(_strict_decode(raw, "utf-8", declared), "utf-8", declared, False)
    if key in _UNICODE_DECLARATIONS:
        try:
            return DecodedMessage(raw.decode("utf-8"), "utf-8", declared, True)
        except UnicodeDecodeError:
            raise EncodingError(
                f"bytes are not decodable in declared character set {declared!r}",
                location="MSH-18",
            ) from None
    codec = _iso8859_codec(key)
    if codec is None:
        raise EncodingError(f"unsupported character set {declared!r}", location="MSH-18")
    return DecodedMessage(_strict_decode(raw, codec, declared), codec, declared, False)


def _declared_charset(raw: bytes) -> str:
    if not raw.startswith(b"MSH") or len(raw) < 4:
        raise MalformedMessage("message does not start with MSH", location="MSH")
    header_end = len(raw)
    for terminator in (b"\r", b"\n"):
        found = raw.find(terminator)
        if 0 <= found < header_end:
            header_end = found
    header = raw[:header_end]
    if len(header) < 4:  # a bare "MSH" line: no field separator to read the rest with
        raise MalformedMessage("the MSH segment has no field separator", location="MSH-1")
    fields = header.split(header[3:4])
    # MSH-1 is the separator itself, so MSH-18 sits at split index 17.
    if len(fields) < 18:
        return ""
    charset = fields[17]
    repetition = fields[1][1:2]
    if repetition:
        # Later repetitions name alternate sets for \C..\ escapes; the first is the default.
        charset = charset.split(repetition, 1)[0]
    try:
        return charset.decode("ascii").strip()
    except UnicodeDecodeError:
        raise EncodingError("MSH-18 is not ASCII", location="MSH-18") from None


_ISO8859_ALIAS = re.compile(r"ISO[-_ ]?8859[-_/ ]?(\d+)")
"""How senders spell an ISO 8859 part outside table 0211 (``ISO-8859-1``, ``ISO8859-1``,
``ISO_8859-1``): read as ``8859/N``, which is what they mean."""


def _iso8859_codec(key: str) -> str | None:
    if (alias := _ISO8859_ALIAS.fullmatch(key)) is not None:
        key = f"8859/{alias.group(1)}"
    if not key.startswith("8859/"):
        return None
    part = key[len("8859/") :]
    if not part.isdigit() or not 1 <= int(part) <= 15:
        return None
    name = "latin-1" if part == "1" else f"iso8859-{int(part)}"
    try:
        codecs.lookup(name)
    except LookupError:  # 8859/12 was never published
        return None
    return name


def _strict_decode(raw: bytes, codec: str, declared: str) -> str:
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as error:
        raise EncodingError(
            f"bytes are not valid in declared character set {declared!r} "
            f"(first bad byte at offset {error.start})",
            location="MSH-18",
        ) from None


# --------------------------------------------------------------------------------------------
# Parsing text into segments
# --------------------------------------------------------------------------------------------


class Separators(NamedTuple):
    """The delimiters of one message; a separator the sender did not declare is ``""``."""

    field: str
    component: str
    repetition: str
    escape: str
    subcomponent: str
    truncation: str


class MessageType(NamedTuple):
    """MSH-9: message code, trigger event and message structure (``""`` when not sent)."""

    code: str
    trigger: str
    structure: str


class HierarchicDesignator(NamedTuple):
    """An HD value such as MSH-3: namespace id, universal id and universal id type."""

    namespace_id: str
    universal_id: str
    universal_id_type: str


class Segment:
    """One segment: its name and its raw (still escaped) field strings.

    ``raw_fields[n]`` is field ``n`` in HL7 numbering; ``raw_fields[0]`` is the segment name.
    Accessors never raise for absent fields, repetitions or components: they return ``""`` or
    an empty list. Plain accessors unescape; ``raw_*`` accessors return the text as sent.

    A segment is read-only once made: ingest asks for the same field many times, so each
    repetition is split into components once, on first use, and kept.
    """

    __slots__ = (
        "_components",
        "_escape",
        "_subcomponent",
        "_verbatim",
        "codec",
        "name",
        "raw_fields",
        "separators",
    )

    def __init__(
        self, name: str, raw_fields: tuple[str, ...], separators: Separators, codec: str
    ) -> None:
        self.name = name
        self.raw_fields = raw_fields
        self.separators = separators
        self.codec = codec  # the message's character set, for \X..\ escapes
        self._escape = separators.escape
        self._subcomponent = separators.subcomponent
        # MSH-1 and MSH-2 hold the separators themselves: never split or unescape them. The
        # accessors below are on the hot path (about 90 calls a message): they test this once.
        self._verbatim = 2 if name == "MSH" else 0
        self._components: dict[tuple[int, int], tuple[str, ...]] = {}

    def __repr__(self) -> str:
        return f"<Segment {self.name} with {self.field_count} fields>"

    @property
    def field_count(self) -> int:
        """Number of the last field present (trailing empty fields included)."""
        return len(self.raw_fields) - 1

    # -- raw access --------------------------------------------------------------------------

    def raw(self, n: int) -> str:
        """Field ``n`` exactly as sent: every repetition, separators and escapes included."""
        if 0 < n < len(self.raw_fields):
            return self.raw_fields[n]
        return ""

    def raw_repetitions(self, n: int) -> list[str]:
        """The repetitions of field ``n`` as sent; ``[]`` when the field is empty."""
        value = self.raw(n)
        if not value:
            return []
        repetition = self.separators.repetition
        if n <= self._verbatim or not repetition:
            return [value]
        return value.split(repetition)

    def raw_repetition(self, n: int, rep: int = 1) -> str:
        """Repetition ``rep`` (1-based) of field ``n`` as sent."""
        fields = self.raw_fields
        value = fields[n] if 0 < n < len(fields) else ""
        repetition = self.separators.repetition
        if not repetition or repetition not in value or n <= self._verbatim:
            return value if rep == 1 else ""
        parts = value.split(repetition)
        return parts[rep - 1] if 0 < rep <= len(parts) else ""

    def raw_components(self, n: int, rep: int = 1) -> list[str]:
        """The components of one repetition of field ``n`` as sent; ``[]`` when it is empty."""
        return list(self._split_components(n, rep))

    def raw_component(self, n: int, c: int = 1, s: int = 1, rep: int = 1) -> str:
        """Subcomponent ``s`` of component ``c`` of repetition ``rep`` of field ``n``, as sent."""
        components = self._components.get((n, rep))
        if components is None:
            components = self._split_components(n, rep)
        if not 0 < c <= len(components):
            return ""
        value = components[c - 1]
        subcomponent = self._subcomponent
        if not subcomponent or subcomponent not in value or n <= self._verbatim:
            return value if s == 1 else ""
        parts = value.split(subcomponent)
        return parts[s - 1] if 0 < s <= len(parts) else ""

    def raw_subcomponents(self, n: int, c: int = 1, rep: int = 1) -> list[str]:
        """The subcomponents of component ``c`` as sent; ``[]`` when the component is empty."""
        components = self._split_components(n, rep)
        if not 0 < c <= len(components) or not components[c - 1]:
            return []
        value = components[c - 1]
        subcomponent = self.separators.subcomponent
        if n <= self._verbatim or not subcomponent:
            return [value]
        return value.split(subcomponent)

    def _split_components(self, n: int, rep: int) -> tuple[str, ...]:
        key = (n, rep)
        found = self._components.get(key)
        if found is not None:
            return found
        value = self.raw_repetition(n, rep)
        component = self.separators.component
        if not value:
            found = ()
        elif n <= self._verbatim or not component:
            found = (value,)
        else:
            found = tuple(value.split(component))
        self._components[key] = found
        return found

    # -- unescaped access --------------------------------------------------------------------

    def field(self, n: int, rep: int = 1) -> str:
        """Repetition ``rep`` of field ``n``, unescaped, components and all.

        Unescaping a composite value makes escaped separators look like real ones: use it for
        single-valued fields, and ``component``/``components`` for composite ones.
        """
        fields = self.raw_fields
        value = fields[n] if 0 < n < len(fields) else ""
        repetition = self.separators.repetition
        if repetition and repetition in value and n > self._verbatim:
            parts = value.split(repetition)
            value = parts[rep - 1] if 0 < rep <= len(parts) else ""
        elif rep != 1:
            return ""
        escape = self._escape
        if not escape or escape not in value or n <= self._verbatim:
            return value
        return unescape(value, self.separators, self.codec)

    def repetitions(self, n: int) -> list[str]:
        """Every repetition of field ``n``, each unescaped; ``[]`` when the field is empty."""
        return [self._unescape(n, value) for value in self.raw_repetitions(n)]

    def components(self, n: int, rep: int = 1) -> list[str]:
        """The components of one repetition of field ``n``, each unescaped."""
        components = self._split_components(n, rep)
        escape = self._escape
        if not escape or n <= self._verbatim:
            return list(components)
        separators, codec = self.separators, self.codec
        return [
            unescape(value, separators, codec) if escape in value else value for value in components
        ]

    def component(self, n: int, c: int = 1, s: int = 1, rep: int = 1) -> str:
        """Subcomponent ``s`` of component ``c`` of repetition ``rep`` of field ``n``, unescaped."""
        # raw_component's lines, not a call to it: this is the accessor ingest calls most
        components = self._components.get((n, rep))
        if components is None:
            components = self._split_components(n, rep)
        if not 0 < c <= len(components):
            return ""
        value = components[c - 1]
        subcomponent = self._subcomponent
        if subcomponent and subcomponent in value and n > self._verbatim:
            parts = value.split(subcomponent)
            value = parts[s - 1] if 0 < s <= len(parts) else ""
        elif s != 1:
            return ""
        escape = self._escape
        if not escape or escape not in value or n <= self._verbatim:
            return value
        return unescape(value, self.separators, self.codec)

    def subcomponents(self, n: int, c: int = 1, rep: int = 1) -> list[str]:
        """The subcomponents of component ``c`` of one repetition of field ``n``, unescaped."""
        return [self._unescape(n, value) for value in self.raw_subcomponents(n, c, rep)]

    def _unescape(self, n: int, value: str) -> str:
        escape = self._escape
        if not escape or escape not in value or n <= self._verbatim:
            return value
        return unescape(value, self.separators, self.codec)


class Message:
    """A parsed message: its segments in order, its separators and MSH conveniences."""

    __slots__ = ("codec", "segments", "separators")

    def __init__(self, segments: tuple[Segment, ...], separators: Separators, codec: str) -> None:
        self.segments = segments
        self.separators = separators
        self.codec = codec

    def __repr__(self) -> str:
        return f"<Message {self.control_id!r} with {len(self.segments)} segments>"

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def first_segment(self, name: str) -> Segment | None:
        """The first segment called ``name``, or ``None``."""
        for segment in self.segments:
            if segment.name == name:
                return segment
        return None

    def segments_named(self, name: str) -> list[Segment]:
        """Every segment called ``name``, in message order."""
        return [segment for segment in self.segments if segment.name == name]

    @property
    def control_id(self) -> str:
        """MSH-10, the sender's id for this message (echoed in MSA-2)."""
        return self.msh.field(10)

    @property
    def version(self) -> str:
        """MSH-12.1, e.g. ``2.5.1``."""
        return self.msh.component(12, 1)

    @property
    def message_type(self) -> MessageType:
        """MSH-9, e.g. ``MessageType("ORU", "R01", "ORU_R01")``; nothing is inferred."""
        msh = self.msh
        return MessageType(msh.component(9, 1), msh.component(9, 2), msh.component(9, 3))

    @property
    def sending_application(self) -> HierarchicDesignator:
        return self._designator(3)

    @property
    def sending_facility(self) -> HierarchicDesignator:
        return self._designator(4)

    @property
    def receiving_application(self) -> HierarchicDesignator:
        return self._designator(5)

    @property
    def receiving_facility(self) -> HierarchicDesignator:
        return self._designator(6)

    def _designator(self, n: int) -> HierarchicDesignator:
        msh = self.msh
        return HierarchicDesignator(msh.component(n, 1), msh.component(n, 2), msh.component(n, 3))


def parse_message(text: str, *, codec: str = "utf-8") -> Message:
    """Split one message's text into segments and fields, and check its MSH.

    ``codec`` is the message's character set (``DecodedMessage.codec``), used for ``\\X..\\``
    escapes. Raises ``MalformedMessage`` with an HL7 location for a message that cannot be read:
    no MSH, bad or repeated separators, a bad segment name, or no MSH-9, MSH-10 or MSH-12.
    """
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.startswith("MSH"):
        raise MalformedMessage("message does not start with MSH", location="segment 1")
    separators = _separators(text)
    field_separator = separators.field
    segments: list[Segment] = []
    for line in text.split("\r"):
        if not line:
            continue
        parts = line.split(field_separator)
        name = parts[0]
        if not segments:
            # MSH-1 is the field separator itself: insert it so numbering matches the standard.
            parts[0:1] = [name, field_separator]
        elif name not in _VALID_SEGMENT_NAMES and not _remember_segment_name(name):
            reason = "second MSH in one message" if name == "MSH" else "invalid segment name"
            raise MalformedMessage(reason, location=f"segment {len(segments) + 1}")
        segments.append(Segment(name, tuple(parts), separators, codec))
    message = Message(tuple(segments), separators, codec)
    _check_header(message)
    return message


# Names already seen to be valid; checking membership is cheaper than checking the name again.
# Bounded: there are only 36**3 possible names.
_VALID_SEGMENT_NAMES: set[str] = set()


def _remember_segment_name(name: str) -> bool:
    valid = (
        len(name) == 3
        and name.isascii()
        and name.isalnum()
        and (name.isupper() or name.isdigit())
        and name != "MSH"
    )
    if valid:
        _VALID_SEGMENT_NAMES.add(name)
    return valid


def _separators(text: str) -> Separators:
    field_separator = text[3:4]
    if not field_separator or field_separator.isalnum() or field_separator.isspace():
        raise MalformedMessage("invalid field separator", location="MSH-1")
    header = text.split("\r", 1)[0]
    encoding = header[4:].split(field_separator, 1)[0]
    if not encoding or len(encoding) > 5:
        raise MalformedMessage(
            f"MSH-2 must hold 1 to 5 encoding characters, not {len(encoding)}", location="MSH-2"
        )
    if any(char.isalnum() or char.isspace() for char in encoding):
        raise MalformedMessage("encoding characters must be punctuation", location="MSH-2")
    if len(set(encoding + field_separator)) != len(encoding) + 1:
        raise MalformedMessage("separators are not distinct", location="MSH-2")
    padded = encoding.ljust(5, "\0")
    chars = [char if char != "\0" else "" for char in padded]
    return Separators(field_separator, chars[0], chars[1], chars[2], chars[3], chars[4])


def _check_header(message: Message) -> None:
    msh = message.msh
    if not msh.raw_component(9, 1).strip():
        raise MalformedMessage("message type is missing", location="MSH-9")
    if not msh.raw(10).strip():
        raise MalformedMessage("message control id is missing", location="MSH-10")
    if not msh.raw_component(12, 1).strip():
        raise MalformedMessage("version id is missing", location="MSH-12")


# --------------------------------------------------------------------------------------------
# Escape sequences
# --------------------------------------------------------------------------------------------

# Formatting commands of the FT data type that carry no text for us (fill mode, indents,
# centring, skips) and the highlight on/off pair.
_DROPPED_ESCAPES = (".in", ".ti", ".sk", ".ce", ".fi", ".nf")


def unescape(value: str, separators: Separators, codec: str = "utf-8") -> str:
    """Replace HL7 escape sequences in one already-split value.

    ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` give the separators, ``\\Xhh..\\`` the bytes decoded in
    ``codec`` (latin-1 if they are not valid there), ``\\.br\\`` and ``\\.sp\\`` new lines;
    highlighting and other formatting commands are dropped. An unknown or unterminated sequence
    stays as literal text: a value is never lost to a sender's escaping mistake.
    """
    escape = separators.escape
    if not escape or escape not in value:
        return value
    out: list[str] = []
    position = 0
    while True:
        start = value.find(escape, position)
        end = value.find(escape, start + 1) if start >= 0 else -1
        if end < 0:
            out.append(value[position:])
            return "".join(out)
        out.append(value[position:start])
        replacement = _expand(value[start + 1 : end], separators, codec)
        out.append(value[start : end + 1] if replacement is None else replacement)
        position = end + 1


def _expand(code: str, separators: Separators, codec: str) -> str | None:
    """The text an escape sequence stands for, or None when it is not one we know."""
    if len(code) == 1:
        return _separator_escape(code, separators)
    if not code:
        return None
    lead = code[0]
    if lead == "X":
        return _hex_escape(code[1:], codec)
    if lead == ".":
        return _formatting_escape(code)
    return None


def _separator_escape(code: str, separators: Separators) -> str | None:
    if code in ("H", "N"):
        return ""
    replacement = {
        "F": separators.field,
        "S": separators.component,
        "T": separators.subcomponent,
        "R": separators.repetition,
        "E": separators.escape,
    }.get(code, "")
    return replacement or None


def _hex_escape(digits: str, codec: str) -> str | None:
    if not digits or len(digits) % 2:
        return None
    try:
        data = bytes.fromhex(digits)
    except ValueError:
        return None
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return data.decode("latin-1")


def _formatting_escape(code: str) -> str | None:
    if code == ".br":
        return "\n"
    if code.startswith(".sp"):
        count = code[3:].strip().lstrip("+")
        if not count:
            return "\n"
        return "\n" * max(int(count), 1) if count.isdigit() else None
    if code.startswith(_DROPPED_ESCAPES):
        return ""
    return None
