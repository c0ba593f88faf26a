"""HL7 v2 acknowledgements (ACK) for inbound messages.

The ACK answers with the inbound separators and copies the inbound header fields raw (they are
already escaped in that encoding); only the texts the adapter writes are escaped here. The time
(MSH-7) and the ACK's own control id (MSH-10) are arguments, so the same inputs give the same ACK.

Layout::

    MSH|^~\\&|<inbound MSH-5>|<inbound MSH-6>|<inbound MSH-3>|<inbound MSH-4>|<timestamp>||
        ACK^<inbound trigger>^ACK|<control_id>|<inbound MSH-11>|<inbound MSH-12>
    MSA|<code>|<inbound MSH-10>|<text>
    ERR (v2.5 and later):   ERR||<ERR-2 location>|<0357 code>^<description>^HL70357|E|
                            <adapter error code>|||<reason>
    ERR (v2.4 and earlier): ERR|<segment>^<sequence>^<field>^<0357 code>&<description>&HL70357

Every segment ends with CR, the last one included. An unparsable or missing version (MSH-12) is
answered in the v2.5 layout.

Which ACKs to send (:func:`enhanced_mode_decision`). Original mode is when MSH-15 and MSH-16 are
both empty: one application ACK, whatever happened (CE becomes AE, CR becomes AR). Enhanced mode
is when either is valued; the accept ACK follows MSH-15 and the application ACK follows MSH-16:

=========  =========================  ================================================
value      accept ACK (MSH-15)        application ACK (MSH-16)
=========  =========================  ================================================
AL         always (CA, CE or CR)      always (AA, AE or AR)
NE         never                      never
ER         only CE or CR              only AE or AR
SU         only CA                    only AA
empty      as AL                      as AL
other      as AL                      as AL
=========  =========================  ================================================

There is no application ACK when the message was not accepted (CE/CR): it was never processed.
Empty or unknown values in enhanced mode count as AL, so a sender is never left without an answer
because of a header it got wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final, Literal

from adapter.emit.codes import HL7_CONDITIONS
from adapter.errors import AdapterError

AckCode = Literal["AA", "AE", "AR", "CA", "CE", "CR"]
AcceptCode = Literal["CA", "CE", "CR"]
ApplicationCode = Literal["AA", "AE", "AR"]

DEFAULT_VERSION: Final = "2.5.1"
"""Version of an ACK to input whose MSH could not be read."""

_TIMESTAMP: Final = re.compile(
    r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?"
)
_LOCATION: Final = re.compile(
    r"([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:\.(\d+)(?:\.(\d+)(?:\.(\d+))?)?)?"
)
_VERSION: Final = re.compile(r"2\.(\d+)")
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


def build_ack(
    header: AckHeader,
    code: AckCode,
    *,
    control_id: str,
    timestamp: str,
    error: AdapterError | None = None,
    text: str | None = None,
) -> str:
    """The ACK message, segments ended with CR.

    ``timestamp`` is the HL7 DTM to put in MSH-7 (the transport passes the time); MSA-3 is
    ``text`` or else ``"<error code>: <reason>"``.
    """
    if not _TIMESTAMP.fullmatch(timestamp):
        raise ValueError("timestamp must be an HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")
    comp = header.component_separator
    event = header.trigger_event
    msh = [
        "MSH",
        header.encoding_characters,
        header.receiving_application,
        header.receiving_facility,
        header.sending_application,
        header.sending_facility,
        timestamp,
        "",
        f"ACK{comp}{event}{comp}ACK" if event else "ACK",
        escape(control_id, header),
        header.processing_id,
        header.version,
    ]
    if text is None and error is not None:
        text = f"{error.code}: {error.reason}"
    msa = ["MSA", code, escape(header.control_id, header), escape(text, header) if text else ""]
    segments = [msh, msa]
    if error is not None:
        segments.append(_err_segment(header, error))
    return "".join(_segment(fields, header) for fields in segments)


def _segment(fields: list[str], header: AckHeader) -> str:
    while fields and not fields[-1]:
        fields.pop()
    return header.field_separator.join(fields) + "\r"


def _err_segment(header: AckHeader, error: AdapterError) -> list[str]:
    comp = header.component_separator
    condition = error.hl7_condition
    description = HL7_CONDITIONS.get(condition, "")
    where = _LOCATION.fullmatch(error.location or "")
    if _uses_err1_layout(header.version):
        sub = header.subcomponent_separator
        segment_id, sequence, field_no = (
            (where.group(i) or "" for i in (1, 2, 3)) if where else ("", "", "")
        )
        code = sub.join([condition, escape(description, header), "HL70357"])
        return ["ERR", comp.join([segment_id, sequence, field_no, code])]
    location = ""
    if where:
        segment_id, sequence, field_no, component, subcomponent = where.groups()
        parts = [
            segment_id,
            sequence or "",
            field_no or "",
            "",
            component or "",
            subcomponent or "",
        ]
        location = comp.join(parts).rstrip(comp)
    return [
        "ERR",
        "",
        location,
        comp.join([condition, escape(description, header), "HL70357"]),
        "E",
        escape(error.code, header),
        "",
        "",
        escape(error.reason, header),
    ]


def _uses_err1_layout(version: str) -> bool:
    """v2.4 and earlier carry the error in ERR-1 (ELD); ERR-2..ERR-12 arrived in v2.5."""
    match = _VERSION.match(version)
    return match is not None and int(match.group(1)) < 5


@dataclass(frozen=True, slots=True)
class AckPlan:
    """The ACKs to send for one message; ``None`` means that ACK is not sent."""

    accept: AcceptCode | None
    application: ApplicationCode | None


_ORIGINAL_MODE_ANSWER: Final[dict[AcceptCode, ApplicationCode]] = {"CE": "AE", "CR": "AR"}


def enhanced_mode_decision(
    accept_ack_type: str,
    application_ack_type: str,
    *,
    accept: AcceptCode,
    application: ApplicationCode | None,
) -> AckPlan:
    """Which ACKs to send, from MSH-15/MSH-16 and the outcome (table in the module docstring).

    ``accept`` is the commit outcome (CA: stored safely); ``application`` the processing outcome,
    required when the message was accepted and ignored otherwise.
    """
    if accept == "CA" and application is None:
        raise ValueError("an accepted message needs its application outcome")
    accept_type = accept_ack_type.strip().upper()
    application_type = application_ack_type.strip().upper()
    if not accept_type and not application_type:
        answer = application if accept == "CA" else _ORIGINAL_MODE_ANSWER[accept]
        return AckPlan(accept=None, application=answer)
    send_accept = _wanted(accept_type, succeeded=accept == "CA")
    send_application = accept == "CA" and _wanted(application_type, succeeded=application == "AA")
    return AckPlan(
        accept=accept if send_accept else None,
        application=application if send_application else None,
    )


def _wanted(condition: str, *, succeeded: bool) -> bool:
    if condition == "NE":
        return False
    if condition == "ER":
        return not succeeded
    if condition == "SU":
        return succeeded
    return True  # AL, and empty or unknown values (see the module docstring)
