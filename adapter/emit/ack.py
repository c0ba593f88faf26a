"""HL7 v2 acknowledgements: every rule about what the adapter answers lives here.

The ACK answers with the inbound separators and copies the inbound header fields raw (they are
already escaped in that encoding); only the texts the adapter writes are escaped here. The time
(MSH-7) is an argument, and the ACK's own control id (MSH-10) is derived from the inbound one, so
the same inputs give the same ACK.

Layout, by the version of the ACK (the inbound MSH-12 when it is one of ``ACK_VERSIONS``, else
``DEFAULT_VERSION``; also the default when a v2.6+ header lacks the trigger event its MSH-9 needs)::

    MSH|^~\\&|<in MSH-5>|<in MSH-6>|<in MSH-3>|<in MSH-4>|<time>||<MSH-9>|<id>|<in MSH-11>|<ver>
        MSH-9: ACK (2.1, 2.2), ACK^<trigger> (2.3), ACK^<trigger>^ACK (2.3.1 and later)
    MSA|<code>|<in MSH-10>|<text>       MSA-3 at most 80 characters; none from v2.7 (withdrawn)
    ERR (2.1):          ERR|<0357 code>
    ERR (2.2 to 2.4):   ERR|<segment>^<sequence>^<field>^<0357 code>&<description>&HL70357
    ERR (2.5 and later): ERR||<segment>^<sequence>^<field>^^<component>^<subcomponent>|
                         <0357 code>^<description>^HL70357|E|<adapter error code>|||<reason>

Every segment ends with CR, the last one included. ``tests/emit/test_ack_validity.py`` parses
every ACK this module can build, in every version, under hl7apy's strict validation.

ERR-3 is HL7 table 0357: 100 segment sequence error, 101 required field missing, 102 data type
error, 200 unsupported message type, 201 unsupported event code, 203 unsupported version id,
207 application internal error (:func:`hl7_condition`).

Which ACKs to send (:func:`plan`). Original mode is when MSH-15 and MSH-16 are both empty, or the
sender is one the settings force to it (``original_mode_senders``): one application ACK, whatever
happened (CR becomes AR). Enhanced mode is when either is valued; the accept ACK follows MSH-15
and the application ACK follows MSH-16:

=========  =========================  ================================================
value      accept ACK (MSH-15)        application ACK (MSH-16)
=========  =========================  ================================================
AL         always (CA or CR)          always (AA, AE or AR)
NE         never                      never
ER         only CR                    only AE or AR
SU         only CA                    only AA
empty      as AL                      as AL
other      as AL                      as AL
=========  =========================  ================================================

The accept ACK is the commit: CA once the message is stored, CR when it is refused for what its
header says (unreadable, a type, version or character set the adapter does not take, over the
size limit; chapter 2 names MSH-9 and MSH-12). It is decided before processing and sent as soon
as the message is stored. There is no application ACK after CR: the message was never processed;
but when no accept ACK goes out (MSH-15 NE or SU) the refusal is said as AR where MSH-16 asks for
errors, so that the sender is not left waiting. CE is never sent: a message the adapter cannot
store gets no answer at all, and the sender resends it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final, Literal

from adapter.emit.codes import HL7_CONDITIONS
from adapter.errors import AdapterError, MalformedMessage, UnsupportedMessage
from adapter.ingest import er7
from adapter.ingest.hl7v2 import read_header

AckCode = Literal["AA", "AE", "AR", "CA", "CE", "CR"]
AcceptCode = Literal["CA", "CE", "CR"]
ApplicationCode = Literal["AA", "AE", "AR"]

DEFAULT_VERSION: Final = "2.5.1"
"""Version of an ACK to input whose MSH-12 is unreadable or not a version we can answer in."""
ACK_VERSIONS: Final = frozenset(
    ("2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8"),
) | {"2.8.1", "2.8.2"}
"""Versions an ACK is written in: every HL7 v2 version up to 2.8.2."""

MSA_TEXT_LENGTH: Final = 80
"""MSA-3 (ST) is at most 80 characters in every version that has it."""
USER_MESSAGE_LENGTH: Final = 250
"""ERR-8 (TX): the reason, cut to a length every receiver takes."""

_TIMESTAMP: Final = re.compile(
    r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?"
)
_LOCATION: Final = re.compile(
    # OBX[4].5.2 (ingest's locators) or MSH-12 (a header field)
    r"([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:[.-](\d+)(?:\.(\d+)(?:\.(\d+))?)?)?"
)
_VERSION: Final = re.compile(r"2\.(\d+)(?:\.(\d+))?")
_LINE_BREAKS: Final = re.compile(r"[\x00-\x1f]+")


@dataclass(frozen=True, slots=True)
class AckHeader:
    """What an ACK needs from the inbound MSH; the application and facility fields are raw."""

    control_id: str  # inbound MSH-10, echoed in MSA-2
    field_separator: str = "|"
    encoding_characters: str = "^~\\&"
    sending_application: str = ""  # MSH-3
    sending_facility: str = ""  # MSH-4
    receiving_application: str = ""  # MSH-5
    receiving_facility: str = ""  # MSH-6
    version: str = DEFAULT_VERSION  # MSH-12
    message_type: str = ""  # MSH-9.1
    trigger_event: str = ""  # MSH-9.2
    processing_id: str = "P"  # MSH-11
    accept_ack_type: str = ""  # MSH-15
    application_ack_type: str = ""  # MSH-16

    def __post_init__(self) -> None:
        separators = self.field_separator + self.encoding_characters
        if len(self.field_separator) != 1 or len(self.encoding_characters) not in (4, 5):
            raise ValueError("MSH-1 must be one character and MSH-2 four or five")
        if len(set(separators)) != len(separators) or any(c in "\r\n" for c in separators):
            raise ValueError("MSH-1/MSH-2 separators must be distinct and not line breaks")

    @property
    def component_separator(self) -> str:
        return self.encoding_characters[0]

    @property
    def subcomponent_separator(self) -> str:
        return self.encoding_characters[3]

    @property
    def enhanced(self) -> bool:
        """Whether the sender asks for enhanced mode (MSH-15 or MSH-16 valued)."""
        return bool(self.accept_ack_type.strip() or self.application_ack_type.strip())

    @property
    def is_ack(self) -> bool:
        """An inbound ACK: stored, never answered (two systems could bounce ACKs forever)."""
        return self.message_type.strip().upper() == "ACK"


def fallback_ack_header(control_id: str = "") -> AckHeader:
    """A header for input whose MSH could not be read: default separators, v2.5.1, no names."""
    return AckHeader(control_id=control_id)


def escape(text: str, header: AckHeader) -> str:
    """HL7 escape sequences for the separators; line breaks and control characters become spaces."""
    specials, table = _escape_table(header.field_separator + header.encoding_characters)
    # Most texts hold no separator and no control character: returned as they are.
    if text.isprintable() and not any(char in text for char in specials):
        return text
    return _LINE_BREAKS.sub(" ", text).translate(table)


def _escaped_within(text: str, header: AckHeader, length: int) -> str:
    """``text`` escaped, cut so that the escaped form fits ``length`` (never inside a sequence)."""
    escaped = escape(text, header)
    if len(escaped) <= length:
        return escaped
    pieces: list[str] = []
    size = 0
    for char in _LINE_BREAKS.sub(" ", text):
        piece = escape(char, header)
        size += len(piece)
        if size > length:
            break
        pieces.append(piece)
    return "".join(pieces)


@lru_cache(maxsize=64)
def _escape_table(separators: str) -> tuple[str, dict[int, str]]:
    """The separators (MSH-1 then MSH-2) and their escape sequences, once per encoding."""
    escape_char = separators[3]
    names = "FSRETP"[: len(separators)]
    return separators, {
        ord(char): f"{escape_char}{name}{escape_char}"
        for char, name in zip(separators, names, strict=True)
    }


def hl7_timestamp(moment: datetime) -> str:
    """``moment`` as the HL7 DTM ``YYYYMMDDHHMMSS+ZZZZ``: ``strftime`` for a few times less."""
    offset = moment.utcoffset()
    if offset is None or offset.microseconds or offset.seconds % 60:
        return moment.strftime("%Y%m%d%H%M%S%z")  # naive, or an offset finer than minutes
    minutes = offset.days * 1440 + offset.seconds // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}{moment.hour:02d}"
        f"{moment.minute:02d}{moment.second:02d}{sign}{hours:02d}{minutes:02d}"
    )


# --------------------------------------------------------------------------------------------
# Codes
# --------------------------------------------------------------------------------------------


def application_code(error: AdapterError | None) -> ApplicationCode:
    """MSA-1 of the application ACK: AA, AR for what the message's structure refuses, else AE."""
    if error is None:
        return "AA"
    return "AR" if error.ack_code == "AR" else "AE"


def commit_code(refusal: AdapterError | None) -> AcceptCode:
    """MSA-1 of the accept ACK of a stored message: CR when its header is refused, else CA."""
    return "CA" if refusal is None else "CR"


def hl7_condition(error: AdapterError) -> str:
    """The HL7 table 0357 code for ERR-3 (ERR-1 before v2.5)."""
    location = error.location or ""
    if isinstance(error, UnsupportedMessage):
        if location.startswith("MSH-12"):
            return "203"  # unsupported version id
        if location.startswith("MSH-9.2"):
            return "201"  # unsupported event code
        return "200"  # unsupported message type
    if isinstance(error, MalformedMessage) and location in ("MSH-9", "MSH-10", "MSH-12"):
        return "101"  # a required header field is missing
    return error.hl7_condition


# --------------------------------------------------------------------------------------------
# Building one ACK
# --------------------------------------------------------------------------------------------


def ack_version(header: AckHeader) -> str:
    """The version an ACK to this header is written in."""
    version = header.version.strip()
    if version not in ACK_VERSIONS:
        return DEFAULT_VERSION
    if _version_at_least(version, 6) and not header.trigger_event:
        return DEFAULT_VERSION  # from v2.6 MSH-9 needs a trigger event that was not sent
    return version


def ack_control_id(inbound: str, version: str = DEFAULT_VERSION, *, prefix: str = "ACK") -> str:
    """An ACK's own MSH-10, from the inbound id: a resent message gets the same one.

    ``prefix`` + the inbound id when that fits the version's MSH-10 (20 characters to v2.6, 199
    from v2.7), else ``prefix`` + a digest of it (a longer inbound id, one the sender should not
    have sent in that version). The accept ACK uses ``ACC``.
    """
    limit = 199 if _version_at_least(version, 7) else 20
    candidate = prefix + inbound
    if len(candidate) <= limit:
        return candidate
    return prefix + hashlib.sha256(inbound.encode()).hexdigest()[: limit - len(prefix)]


def accept_control_id(inbound: str, version: str = DEFAULT_VERSION) -> str:
    """The accept ACK's own MSH-10, distinct from the application ACK's."""
    return ack_control_id(inbound, version, prefix="ACC")


def build_ack(
    header: AckHeader,
    code: AckCode,
    *,
    timestamp: str,
    error: AdapterError | None = None,
    text: str | None = None,
    control_id: str | None = None,
) -> str:
    """The ACK message, segments ended with CR.

    ``timestamp`` is the HL7 DTM to put in MSH-7 (the transport passes the time); MSA-3 is
    ``text`` or else ``"<error code>: <reason>"``; ``control_id`` is the ACK's own MSH-10 (by
    default :func:`ack_control_id`, or :func:`accept_control_id` for CA/CE/CR).
    """
    if not _TIMESTAMP.fullmatch(timestamp):
        raise ValueError("timestamp must be an HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")
    version = ack_version(header)
    if control_id is None:
        derive = accept_control_id if code.startswith("C") else ack_control_id
        control_id = derive(header.control_id, version)
    names = [
        header.receiving_application,
        header.receiving_facility,
        header.sending_application,
        header.sending_facility,
    ]
    if not _version_at_least(version, 3):
        # MSH-3 to MSH-6 are plain strings before v2.3 (HD came later): the namespace only.
        names = [name.split(header.component_separator, 1)[0] for name in names]
    msh = [
        "MSH",
        header.encoding_characters,
        *names,
        _timestamp(timestamp, header, version),
        "",
        _message_type(header, version),
        escape(control_id, header),
        header.processing_id,
        version,
    ]
    if text is None and error is not None:
        text = f"{error.code}: {error.reason}"
    msa = ["MSA", code, escape(header.control_id, header)]
    if text and not _version_at_least(version, 7):  # MSA-3 was withdrawn in v2.7
        msa.append(_escaped_within(text, header, MSA_TEXT_LENGTH))
    segments = [msh, msa]
    if error is not None:
        segments.append(_err_segment(header, version, error))
    return "".join(_segment(fields, header) for fields in segments)


def application_ack(header: AckHeader, error: AdapterError | None, moment: datetime) -> bytes:
    """The application ACK (AA, AE or AR) to a processed message, sent at ``moment``."""
    ack = build_ack(header, application_code(error), timestamp=hl7_timestamp(moment), error=error)
    return ack.encode("utf-8")


def _timestamp(timestamp: str, header: AckHeader, version: str) -> str:
    """MSH-7; v2.1's TS also names its degree of precision (required there)."""
    if _version_at_least(version, 2):
        return timestamp
    digits = len(timestamp.split("+", 1)[0].split("-", 1)[0].split(".", 1)[0])
    precision = {4: "Y", 6: "L", 8: "D", 10: "H", 12: "M"}.get(digits, "S")
    return f"{timestamp}{header.component_separator}{precision}"


def _message_type(header: AckHeader, version: str) -> str:
    comp, event = header.component_separator, header.trigger_event
    if not event or not _version_at_least(version, 3):
        return "ACK"
    if version == "2.3":
        return f"ACK{comp}{event}"  # MSH-9 has no message structure before v2.3.1
    return f"ACK{comp}{event}{comp}ACK"


def _segment(fields: list[str], header: AckHeader) -> str:
    while fields and not fields[-1]:
        fields.pop()
    return header.field_separator.join(fields) + "\r"


def _err_segment(header: AckHeader, version: str, error: AdapterError) -> list[str]:
    comp, sub = header.component_separator, header.subcomponent_separator
    condition = hl7_condition(error)
    description = escape(HL7_CONDITIONS.get(condition, ""), header)
    segment_id, sequence, field_no, component, subcomponent = _location(error.location)
    if not _version_at_least(version, 2):
        return ["ERR", condition]  # v2.1: ERR-1 is a plain code
    if not _version_at_least(version, 5):
        code = sub.join([condition, description, "HL70357"])
        return ["ERR", comp.join([segment_id, sequence, field_no, code])]
    location = ""
    if segment_id:
        parts = [segment_id, sequence, field_no, "", component, subcomponent]
        location = comp.join(parts).rstrip(comp)
    return [
        "ERR",
        "",
        location,
        comp.join([condition, description, "HL70357"]),
        "E",
        escape(error.code, header),
        "",
        "",
        _escaped_within(error.reason, header, USER_MESSAGE_LENGTH),
    ]


def _location(location: str | None) -> tuple[str, str, str, str, str]:
    """Segment, sequence, field, component and subcomponent of a locator; all "" for none.

    The sequence is 1 when the locator names none (``MSH-12``): ERL-2 is required with ERL-1.
    """
    where = _LOCATION.fullmatch(location or "")
    if where is None:
        return "", "", "", "", ""
    segment_id, sequence, field_no, component, subcomponent = where.groups()
    return segment_id, sequence or "1", field_no or "", component or "", subcomponent or ""


def _version_at_least(version: str, minor: int) -> bool:
    match = _VERSION.match(version)
    return match is not None and int(match.group(1)) >= minor


# --------------------------------------------------------------------------------------------
# Which ACKs to send
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AckPlan:
    """The ACKs to send for one message; ``None`` means that ACK is not sent."""

    accept: AcceptCode | None
    application: ApplicationCode | None


_ORIGINAL_MODE_ANSWER: Final[dict[AcceptCode, ApplicationCode]] = {"CE": "AE", "CR": "AR"}


def accept_answer(
    header: AckHeader, commit: AcceptCode, *, original_mode: bool = False
) -> AcceptCode | None:
    """The accept ACK (CA/CR) to send as soon as the message is stored, or None."""
    if header.is_ack or original_mode or not header.enhanced:
        return None
    return (
        commit
        if _wanted(header.accept_ack_type.strip().upper(), succeeded=commit == "CA")
        else None
    )


def _application_answer(
    header: AckHeader,
    commit: AcceptCode,
    application: ApplicationCode | None,
    *,
    original_mode: bool = False,
) -> ApplicationCode | None:
    """The application ACK (AA/AE/AR) to send once the message is processed, or None.

    ``original_mode`` forces one application ACK whatever MSH-15/16 ask (a sender that cannot
    take two frames per message); an inbound ACK is never answered.
    """
    if header.is_ack:
        return None
    if commit != "CA":
        if not (original_mode or not header.enhanced) and accept_answer(header, commit):
            return None  # the CR said it: the message was never processed
        if original_mode or not header.enhanced:
            return _ORIGINAL_MODE_ANSWER[commit]
        # No accept ACK says the refusal: the application ACK the sender waits for does (AR).
        wanted = _wanted(header.application_ack_type.strip().upper(), succeeded=False)
        return _ORIGINAL_MODE_ANSWER[commit] if wanted else None
    if application is None:
        raise ValueError("an accepted message needs its application outcome")
    if original_mode or not header.enhanced:
        return application
    wanted = _wanted(header.application_ack_type.strip().upper(), succeeded=application == "AA")
    return application if wanted else None


def forced_original_mode(header: AckHeader, senders: Collection[str]) -> bool:
    """Whether the settings answer this sender in original mode (``original_mode_senders``).

    A listed name matches MSH-3's namespace alone, or MSH-3^MSH-4 (both namespaces).
    """
    if not senders:
        return False
    comp = header.component_separator
    application = header.sending_application.split(comp, 1)[0]
    facility = header.sending_facility.split(comp, 1)[0]
    return application in senders or f"{application}^{facility}" in senders


def plan(
    header: AckHeader,
    *,
    commit: AcceptCode,
    application: ApplicationCode | None,
    original_mode: bool = False,
) -> AckPlan:
    """Both ACKs one message gets (the module docstring's rules, all of them).

    ``commit`` is the commit outcome (CA: stored and taken); ``application`` the processing
    outcome, required when the message was taken and ignored otherwise. The accept ACK alone is
    :func:`accept_answer`, for sending it before the message is processed.
    """
    return AckPlan(
        accept_answer(header, commit, original_mode=original_mode),
        _application_answer(header, commit, application, original_mode=original_mode),
    )


def application_ack_follows(header: AckHeader) -> bool | None:
    """Whether an application ACK follows the accept ACK (for a client reading the answers).

    None when it depends on the outcome (MSH-16 ER or SU).
    """
    if not header.enhanced:
        return False  # original mode: the one ACK is the application ACK
    application_type = header.application_ack_type.strip().upper()
    if application_type == "NE":
        return False
    return None if application_type in ("ER", "SU") else True


def _wanted(condition: str, *, succeeded: bool) -> bool:
    if condition == "NE":
        return False
    if condition == "ER":
        return not succeeded
    if condition == "SU":
        return succeeded
    return True  # AL, and empty or unknown values (see the module docstring)


_APPLICATION_CODES: Final[dict[bytes, ApplicationCode]] = {b"AA": "AA", b"AE": "AE", b"AR": "AR"}


def msa_code(ack: bytes) -> ApplicationCode:
    """MSA-1 of a stored application ACK (AA, AE or AR)."""
    separator = ack[3:4]
    for segment in ack.split(b"\r"):
        if segment.startswith(b"MSA" + separator):
            code = _APPLICATION_CODES.get(segment[4:6])
            if code is not None:
                return code
    raise ValueError("the stored ACK has no MSA-1 of AA, AE or AR")


# --------------------------------------------------------------------------------------------
# Reading what an ACK needs from the inbound bytes
# --------------------------------------------------------------------------------------------

_LEADING: Final = b"\xef\xbb\xbf\x0b\r\n \t"
"""What may stand before MSH: a UTF-8 BOM, an MLLP start block, blank lines."""


def header_of(data: bytes) -> AckHeader:
    """:func:`header_from` the message's MSH, read here."""
    return header_from(data, read_header(data).msh)


def header_from(data: bytes, message: er7.Message | None) -> AckHeader:
    """The ACK header of a message, from as much of its MSH as can be read (never raises).

    ``message`` is the tokenized MSH (``hl7v2.read_header``), None when the tokenizer refused
    it: a truncated MSH, a missing MSH-9 is then read field by field from its first line;
    without even an MSH, the defaults of :func:`fallback_ack_header` are used. MSA-2 must echo
    something: a message whose MSH-10 cannot be read is answered with ``UNREAD-`` and a digest
    of its bytes, the same for the same bytes.
    """
    if message is not None:
        msh, separators = message.msh, message.separators
        fields = {n: msh.raw(n) for n in (3, 4, 5, 6, 11, 12, 15, 16)}
        control_id = message.control_id
        message_type, trigger, _ = message.message_type
        field_separator = separators.field
        encoding = "".join(separators[1:])
    else:
        salvaged = _salvage(data)
        if salvaged is None:
            return fallback_ack_header(unread_control_id(data))
        field_separator, encoding, raw = salvaged
        fields = {n: raw[n] if n < len(raw) else "" for n in (3, 4, 5, 6, 11, 12, 15, 16)}
        control_id = raw[10].strip() if len(raw) > 10 else ""
        kind = (raw[9] if len(raw) > 9 else "").split(encoding[:1] or "^")
        message_type, trigger = kind[0], kind[1] if len(kind) > 1 else ""
    component = encoding[:1]
    try:
        return AckHeader(
            control_id=control_id or unread_control_id(data),
            field_separator=field_separator,
            encoding_characters=encoding,
            sending_application=fields[3],
            sending_facility=fields[4],
            receiving_application=fields[5],
            receiving_facility=fields[6],
            version=fields[12].split(component, 1)[0].strip() or DEFAULT_VERSION,
            message_type=message_type,
            trigger_event=trigger,
            processing_id=fields[11].split(component, 1)[0] or "P",
            accept_ack_type=fields[15],
            application_ack_type=fields[16],
        )
    except ValueError:  # separators an ACK cannot be written with
        return fallback_ack_header(control_id or unread_control_id(data))


def first_line(data: bytes) -> bytes:
    """The first segment of a message, after a BOM, MLLP start block or blank lines."""
    start = data.lstrip(_LEADING)
    end = min((at for at in (start.find(b"\r"), start.find(b"\n")) if at != -1), default=-1)
    return start if end == -1 else start[:end]


def unread_control_id(data: bytes) -> str:
    """MSA-2 for a message whose MSH-10 cannot be read: the same for the same bytes."""
    return "UNREAD-" + hashlib.sha256(data).hexdigest()[:13]


def _salvage(data: bytes) -> tuple[str, str, list[str]] | None:
    """Separators and raw fields of an MSH the tokenizer refused, numbered as HL7 counts them."""
    line = first_line(data).decode("latin-1")
    if not line.startswith("MSH") or len(line) < 8:
        return None
    field_separator = line[3]
    raw = line.split(field_separator)
    encoding = raw[1] if len(raw) > 1 else ""
    if len(encoding) not in (4, 5):
        encoding = "^~\\&"  # unusable: the ACK is written in the default encoding
    return field_separator, encoding, ["MSH", field_separator, *raw[1:]]


# --------------------------------------------------------------------------------------------
# Batches (FHS/BHS): one response batch holding each message's ACKs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The envelope of an inbound batch: its FHS and BHS fields (raw, HL7-numbered), if sent."""

    field_separator: str
    encoding_characters: str
    file_header: tuple[str, ...] | None
    batch_header: tuple[str, ...] | None


def batch_header_of(data: bytes) -> BatchHeader | None:
    """The FHS/BHS envelope the input starts with, or None when it is no batch."""
    start = data.lstrip(_LEADING)
    if start[:3] not in (b"FHS", b"BHS"):
        return None
    lines = start.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r")
    headers: dict[str, tuple[str, ...]] = {}
    for line in lines[:2]:
        text = line.decode("latin-1")
        name = text[:3]
        if name not in ("FHS", "BHS") or len(text) < 8 or name in headers:
            break
        raw = text.split(text[3])
        headers[name] = ("", text[3], *raw[1:])  # field 1 is the separator itself, as in MSH
    if not headers:
        return None
    first = next(iter(headers.values()))
    encoding = first[2] if len(first[2]) in (4, 5) else "^~\\&"
    try:
        AckHeader(control_id="", field_separator=first[1], encoding_characters=encoding)
    except ValueError:
        return BatchHeader("|", "^~\\&", headers.get("FHS"), headers.get("BHS"))
    return BatchHeader(first[1], encoding, headers.get("FHS"), headers.get("BHS"))


def build_batch_response(batch: BatchHeader, acks: list[str], *, timestamp: str) -> str:
    """A response batch: the inbound FHS/BHS swapped, each ACK in order, BTS (and FTS).

    Chapter 2's batch acknowledgement: BHS-12 (FHS-12) carries the inbound BHS-11 (FHS-11), so
    the sender can match the response to its batch; BTS-1 counts the ACKs inside.
    """
    if not _TIMESTAMP.fullmatch(timestamp):
        raise ValueError("timestamp must be an HL7 DTM")
    fs = batch.field_separator
    parts: list[str] = []
    if batch.file_header is not None:
        parts.append(_envelope("FHS", batch, batch.file_header, timestamp))
    parts.append(_envelope("BHS", batch, batch.batch_header or (), timestamp))
    parts.extend(acks)
    parts.append(f"BTS{fs}{len(acks)}\r")
    if batch.file_header is not None:
        parts.append(f"FTS{fs}1\r")
    return "".join(parts)


def _envelope(name: str, batch: BatchHeader, inbound: tuple[str, ...], timestamp: str) -> str:
    def field(n: int) -> str:
        return inbound[n] if n < len(inbound) else ""

    reference = field(11)
    own = ack_control_id(reference, "2.5.1") if reference else ""
    fields = [
        name,
        batch.encoding_characters,
        field(5),
        field(6),
        field(3),
        field(4),
        timestamp,
        "",
        "",
        "",
        own,
        reference,
    ]
    while fields and not fields[-1]:
        fields.pop()
    return batch.field_separator.join(fields) + "\r"
