"""Every ACK the adapter can emit, in every version 2.1 to 2.8.2, passes hl7apy's strict check."""

from __future__ import annotations

import itertools

import pytest
from hl7_strict import strict_ack

from adapter.emit.ack import (
    ACK_VERSIONS,
    MSA_TEXT_LENGTH,
    AckCode,
    AckHeader,
    BatchHeader,
    build_ack,
    build_batch_response,
    fallback_ack_header,
    header_of,
)
from adapter.errors import (
    AdapterError,
    EncodingError,
    MalformedMessage,
    MessageTooLarge,
    NothingToClassify,
    OutputInvalid,
    UnsupportedMessage,
)

TS = "20240306091512+0100"

ERRORS: list[AdapterError | None] = [
    None,
    MalformedMessage("OBX before OBR", location="OBX[4]"),
    MalformedMessage("bad value", location="OBX[4].5.2"),
    MalformedMessage("message control id is missing", location="MSH-10"),
    MalformedMessage("content outside a message", location="frame 1, line 3"),
    UnsupportedMessage("HL7 version 2.1 is not 2.3 to 2.8", location="MSH-12"),
    UnsupportedMessage("message type ADT^A01 is not ORU^R01", location="MSH-9"),
    UnsupportedMessage("event R03 is not R01", location="MSH-9.2"),
    EncodingError("unsupported character set 'X'", location="MSH-18"),
    MessageTooLarge("2000000 bytes is over the limit of 1048576"),
    NothingToClassify("no HER2, ER or PgR tissue result: " + "OBX[1] x: unknown code; " * 30),
    OutputInvalid("the Bundle failed validation"),
    AdapterError("internal error (KeyError); the message is kept"),
]
CODES: list[AckCode] = ["AA", "AE", "AR", "CA", "CR"]


def header(version: str, **overrides: str) -> AckHeader:
    fields = {
        "control_id": "CTRL-1",
        "sending_application": "LIS^1.2.3^ISO",
        "sending_facility": "PATHLAB",
        "receiving_application": "HER2",
        "receiving_facility": "ONCO",
        "version": version,
        "message_type": "ORU",
        "trigger_event": "R01",
    }
    fields.update(overrides)
    return AckHeader(**fields)


HEADERS = [
    *(header(version) for version in sorted(ACK_VERSIONS)),
    *(header(version, trigger_event="") for version in sorted(ACK_VERSIONS)),
    header("2.5.1", control_id="X" * 20),
    header("2.9"),
    header("garbled"),
    fallback_ack_header("UNREAD-0123456789abc"),
]


@pytest.mark.parametrize(
    ("ack_header", "code", "error"),
    [
        pytest.param(h, c, e, id=f"{h.version}-{h.trigger_event or 'none'}-{c}-{type(e).__name__}")
        for h, c, e in itertools.product(HEADERS, CODES, ERRORS)
        if (e is None) == (c in ("AA", "CA"))
    ],
)
def test_every_ack_passes_strict_validation(
    ack_header: AckHeader, code: AckCode, error: AdapterError | None
) -> None:
    """Each code, with each kind of error, in each version, is a valid ACK of that version."""
    ack = build_ack(ack_header, code, timestamp=TS, error=error)
    parsed = strict_ack(ack)
    assert parsed.msa.msa_1.value == code
    assert parsed.msa.msa_2.value == ack_header.control_id


@pytest.mark.parametrize("version", sorted(ACK_VERSIONS))
def test_msa_3_fits_its_length_and_is_gone_from_v27(version: str) -> None:
    """A long reason is cut to MSA-3's 80 characters (escapes whole); v2.7+ has no MSA-3."""
    error = NothingToClassify("a|b " * 100)
    ack = build_ack(header(version), "AE", timestamp=TS, error=error)
    msa = ack.split("\r")[1].split("|")
    if version.startswith(("2.7", "2.8")):
        assert len(msa) == 3
    else:
        assert 0 < len(msa[3]) <= MSA_TEXT_LENGTH
        assert msa[3].count("\\") % 2 == 0  # no escape sequence cut in half


@pytest.mark.parametrize(
    ("error", "condition"),
    [
        (UnsupportedMessage("v", location="MSH-12"), "203"),
        (UnsupportedMessage("t", location="MSH-9"), "200"),
        (UnsupportedMessage("e", location="MSH-9.2"), "201"),
        (MalformedMessage("m", location="MSH-10"), "101"),
        (MalformedMessage("m", location="OBX[2]"), "100"),
        (EncodingError("c", location="MSH-18"), "102"),
        (NothingToClassify("n"), "101"),
        (MessageTooLarge("l"), "207"),
    ],
)
def test_err_3_is_from_table_0357(error: AdapterError, condition: str) -> None:
    """An unsupported version is 203, a type 200, an event 201; a missing header field 101."""
    err = build_ack(header("2.5.1"), "AR", timestamp=TS, error=error).split("\r")[2]
    assert err.split("|")[3].split("^")[0] == condition


def test_header_location_has_a_segment_sequence() -> None:
    """ERR-2 of MSH-12 is MSH^1^12: ERL-2 is required with ERL-1."""
    error = UnsupportedMessage("v", location="MSH-12")
    err = build_ack(header("2.8"), "AR", timestamp=TS, error=error).split("\r")[2]
    assert err.split("|")[2] == "MSH^1^12"


@pytest.mark.parametrize(
    ("raw", "control_id"),
    [
        pytest.param(b"MSH|^~\\&|LAB|SITE|||2024||ORU^R01|", "", id="truncated-after-msh-9"),
        pytest.param(b"MSH|^~\\&|LAB|SITE|||2024||ORU^R01|C-7|P", "C-7", id="truncated-at-msh-11"),
        pytest.param(b"PID|1||X\rOBX|1\r", "", id="no-msh"),
        pytest.param(
            b"\xef\xbb\xbfMSH|^~\\&|LAB|SITE|||2024||ORU^R01|C-8|P|2.4\r", "C-8", id="bom"
        ),
        pytest.param(b"MSH|^~|LAB", "", id="short-encoding"),
        pytest.param(b"", "", id="empty"),
    ],
)
def test_headers_read_from_what_there_is_give_valid_acks(raw: bytes, control_id: str) -> None:
    """A truncated, absent or BOM-led MSH still gives a header, and its AR is a valid ACK."""
    found = header_of(raw)
    if control_id:
        assert found.control_id == control_id
    else:
        assert found.control_id.startswith("UNREAD-")
        assert header_of(raw).control_id == found.control_id  # the same for the same bytes
    ack = build_ack(found, "AR", timestamp=TS, error=MalformedMessage("x", location="MSH"))
    strict_ack(ack)


def test_batch_response_holds_valid_acks_and_references_the_batch() -> None:
    """A response batch: FHS/BHS swapped, FHS-12/BHS-12 = the inbound ids, BTS counts ACKs."""
    batch = BatchHeader(
        "|",
        "^~\\&",
        ("", "|", "^~\\&", "LAB", "SITE", "HER2", "ONCO", "2024", "", "", "", "F-1"),
        ("", "|", "^~\\&", "LAB", "SITE", "HER2", "ONCO", "2024", "", "", "", "B-1"),
    )
    acks = [build_ack(header("2.5.1", control_id=f"M{n}"), "AA", timestamp=TS) for n in (1, 2)]
    response = build_batch_response(batch, acks, timestamp=TS)
    lines = response.split("\r")
    assert lines[0] == f"FHS|^~\\&|HER2|ONCO|LAB|SITE|{TS}||||ACKF-1|F-1"
    assert lines[1] == f"BHS|^~\\&|HER2|ONCO|LAB|SITE|{TS}||||ACKB-1|B-1"
    assert lines[-3:] == ["BTS|2", "FTS|1", ""]
    for ack in acks:
        assert ack in response
        strict_ack(ack)
