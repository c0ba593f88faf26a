"""HL7 v2 ACKs: header swap, MSA, ERR layout by version, escaping, and which ACKs to send."""

from __future__ import annotations

import pytest

from adapter.emit.ack import (
    AcceptCode,
    AckHeader,
    AckPlan,
    ApplicationCode,
    build_ack,
    escape,
    fallback_ack_header,
    forced_original_mode,
    plan,
)
from adapter.errors import MalformedMessage, NothingToClassify

TS = "20240306091512+0100"


def header(**overrides: str) -> AckHeader:
    fields = {
        "control_id": "CTRL-1",
        "sending_application": "LIS^1.2.3^ISO",
        "sending_facility": "PATHLAB",
        "receiving_application": "HER2",
        "receiving_facility": "ONCO",
        "version": "2.5.1",
        "message_type": "ORU",
        "trigger_event": "R01",
        "processing_id": "T",
    }
    fields.update(overrides)
    return AckHeader(**fields)


def segments(ack: str) -> list[list[str]]:
    assert ack.endswith("\r")
    return [segment.split("|") for segment in ack[:-1].split("\r")]


def test_accept_ack_fields() -> None:
    """MSH swaps sender and receiver, answers ACK^R01^ACK, copies MSH-11/12; MSA echoes MSH-10."""
    msh, msa = segments(build_ack(header(), "AA", control_id="ACK-1", timestamp=TS))
    assert msh == [
        "MSH",
        "^~\\&",
        "HER2",
        "ONCO",
        "LIS^1.2.3^ISO",
        "PATHLAB",
        TS,
        "",
        "ACK^R01^ACK",
        "ACK-1",
        "T",
        "2.5.1",
    ]
    assert msa == ["MSA", "AA", "CTRL-1"]


def test_segments_end_with_cr_and_nothing_else() -> None:
    """Segments are separated and terminated by CR, with no LF."""
    ack = build_ack(header(), "AE", control_id="A", timestamp=TS, error=NothingToClassify("x"))
    assert ack.count("\r") == 3
    assert ack.endswith("\r")
    assert "\n" not in ack


def test_same_inputs_give_the_same_ack() -> None:
    """No clock and no randomness inside build_ack."""
    first = build_ack(header(), "AA", control_id="A", timestamp=TS)
    assert first == build_ack(header(), "AA", control_id="A", timestamp=TS)


def test_text_goes_to_msa_3_escaped() -> None:
    """Separators in a text are escaped; line breaks become spaces."""
    ack = build_ack(header(), "AA", control_id="A", timestamp=TS, text="a|b^c&d~e\\f\r\ng")
    (_, msa) = ack[:-1].split("\r")
    assert msa == "MSA|AA|CTRL-1|a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f g"


def test_inbound_separators_are_used() -> None:
    """An inbound message with other separators is answered in them."""
    custom = header(field_separator="#", encoding_characters="$%!*", sending_application="LIS$X")
    ack = build_ack(custom, "AR", control_id="A", timestamp=TS, text="x#y$z")
    msh, msa = ack[:-1].split("\r")
    assert msh.startswith("MSH#$%!*#HER2#ONCO#LIS$X#PATHLAB#")
    assert "#ACK$R01$ACK#" in msh
    assert msa == "MSA#AR#CTRL-1#x!F!y!S!z"


def test_truncation_character_is_escaped_in_v27() -> None:
    """A fifth encoding character (v2.7 truncation) is escaped as \\P\\."""
    assert escape("50#", header(encoding_characters="^~\\&#")) == "50\\P\\"


def test_err_v25_layout() -> None:
    """v2.5+: ERR-2 location, ERR-3 table 0357 code, ERR-4 E, ERR-5 adapter code, ERR-8 reason."""
    error = MalformedMessage("OBX before OBR", location="OBX[4].5")
    ack = build_ack(header(), "AR", control_id="A", timestamp=TS, error=error)
    _, msa, err = segments(ack)
    assert msa == ["MSA", "AR", "CTRL-1", "HL7-MALFORMED: OBX before OBR"]
    assert err == [
        "ERR",
        "",
        "OBX^4^5",
        "100^Segment sequence error^HL70357",
        "E",
        "HL7-MALFORMED",
        "",
        "",
        "OBX before OBR",
    ]


def test_err_location_with_component() -> None:
    """A component location fills ERL-5, leaving the field repetition empty."""
    error = MalformedMessage("bad", location="OBX[4].5.2")
    err = segments(build_ack(header(), "AR", control_id="A", timestamp=TS, error=error))[2]
    assert err[2] == "OBX^4^5^^2"


def test_err_location_that_is_not_hl7_is_left_out() -> None:
    """A FHIR path cannot be an ERL: ERR-2 stays empty."""
    error = NothingToClassify("no HER2", location="Observation.valueQuantity")
    err = segments(build_ack(header(), "AE", control_id="A", timestamp=TS, error=error))[2]
    assert err[2] == ""
    assert err[3] == "101^Required field missing^HL70357"


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4"])
def test_err_old_layout_before_v25(version: str) -> None:
    """v2.4 and earlier: one ERR-1 (ELD) with the 0357 code in subcomponents."""
    error = MalformedMessage("OBX before OBR", location="OBX[4].5")
    ack = build_ack(header(version=version), "AR", control_id="A", timestamp=TS, error=error)
    msh, msa, err = segments(ack)
    assert msh[11] == version
    assert msa[3] == "HL7-MALFORMED: OBX before OBR"
    assert err == ["ERR", "OBX^4^5^100&Segment sequence error&HL70357"]


@pytest.mark.parametrize("version", ["2.5", "2.6", "2.8.2", "garbled", ""])
def test_err_new_layout_from_v25_and_when_unknown(version: str) -> None:
    """v2.5 and later, and unreadable versions, use ERR-2..ERR-8."""
    error = MalformedMessage("x")
    err = segments(
        build_ack(header(version=version), "AR", control_id="A", timestamp=TS, error=error)
    )[2]
    assert err[1] == ""
    assert err[3].endswith("^HL70357")


def test_explicit_text_wins_over_error_reason() -> None:
    """MSA-3 takes the given text; the error still fills ERR."""
    error = NothingToClassify("no HER2 result")
    ack = build_ack(header(), "AE", control_id="A", timestamp=TS, error=error, text="see ERR")
    _, msa, err = segments(ack)
    assert msa[3] == "see ERR"
    assert err[5] == "NO-HER2-RESULT"


def test_no_trigger_event_gives_plain_ack_type() -> None:
    """Without an inbound trigger event MSH-9 is just ACK."""
    msh = segments(build_ack(header(trigger_event=""), "AA", control_id="A", timestamp=TS))[0]
    assert msh[8] == "ACK"


@pytest.mark.parametrize("timestamp", ["2024-03-06", "now", "20240306|1", ""])
def test_timestamp_must_be_hl7_dtm(timestamp: str) -> None:
    """A timestamp that is not an HL7 DTM is refused (it would corrupt MSH)."""
    with pytest.raises(ValueError, match="DTM"):
        build_ack(header(), "AA", control_id="A", timestamp=timestamp)


def test_control_id_is_escaped() -> None:
    """Our own MSH-10 cannot break the segment."""
    msh = segments(build_ack(header(), "AA", control_id="A|B", timestamp=TS))[0]
    assert msh[9:11] == ["A\\F\\B", "T"]


def test_fallback_header_for_unreadable_input() -> None:
    """Default separators, v2.5.1, empty names; MSA-2 echoes what could be salvaged."""
    ack = build_ack(fallback_ack_header("X9"), "AR", control_id="A", timestamp=TS)
    msh, msa = segments(ack)
    assert msh[:2] == ["MSH", "^~\\&"]
    assert msh[2:6] == ["", "", "", ""]
    assert msh[8] == "ACK"
    assert msh[11] == "2.5.1"
    assert msa == ["MSA", "AR", "X9"]


@pytest.mark.parametrize(
    ("field_separator", "encoding_characters"),
    [
        pytest.param("||", "^~\\&", id="long-field-separator"),
        pytest.param("|", "^~\\", id="three-encoding-characters"),
        pytest.param("|", "^~|&", id="repeated-character"),
        pytest.param("\r", "^~\\&", id="line-break"),
    ],
)
def test_bad_separators_are_refused(field_separator: str, encoding_characters: str) -> None:
    """An AckHeader cannot hold separators that would produce a broken message."""
    with pytest.raises(ValueError, match="MSH"):
        AckHeader(
            control_id="X", field_separator=field_separator, encoding_characters=encoding_characters
        )


# --------------------------------------------------------------------------------------------
# Which ACKs to send
# --------------------------------------------------------------------------------------------

ORIGINAL_MODE = [
    pytest.param("CA", "AA", AckPlan(None, "AA"), id="original-processed-ok"),
    pytest.param("CA", "AE", AckPlan(None, "AE"), id="original-processing-error"),
    pytest.param("CA", "AR", AckPlan(None, "AR"), id="original-processing-rejected"),
    pytest.param("CE", None, AckPlan(None, "AE"), id="original-not-stored-error"),
    pytest.param("CR", None, AckPlan(None, "AR"), id="original-not-stored-rejected"),
    pytest.param("CR", "AA", AckPlan(None, "AR"), id="original-not-accepted-ignores-outcome"),
]


@pytest.mark.parametrize(("accept", "application", "expected"), ORIGINAL_MODE)
def test_original_mode_sends_one_application_ack(
    accept: AcceptCode, application: ApplicationCode | None, expected: AckPlan
) -> None:
    """MSH-15 and MSH-16 empty: exactly one application ACK, whatever happened."""
    inbound = header(accept_ack_type="", application_ack_type=" ")
    assert plan(inbound, commit=accept, application=application) == expected


ENHANCED_MODE = [
    # MSH-15, MSH-16, accept outcome, application outcome -> plan
    pytest.param("AL", "AL", "CA", "AA", AckPlan("CA", "AA"), id="AL-AL-success"),
    pytest.param("AL", "AL", "CA", "AE", AckPlan("CA", "AE"), id="AL-AL-app-error"),
    pytest.param("AL", "AL", "CR", None, AckPlan("CR", None), id="AL-AL-rejected"),
    pytest.param("NE", "NE", "CA", "AE", AckPlan(None, None), id="NE-NE-never"),
    pytest.param("NE", "AL", "CA", "AA", AckPlan(None, "AA"), id="NE-AL-is-original"),
    pytest.param("ER", "ER", "CA", "AA", AckPlan(None, None), id="ER-ER-success-silent"),
    pytest.param("ER", "ER", "CE", None, AckPlan("CE", None), id="ER-ER-accept-error"),
    pytest.param("ER", "ER", "CA", "AR", AckPlan(None, "AR"), id="ER-ER-app-reject"),
    pytest.param("SU", "SU", "CA", "AA", AckPlan("CA", "AA"), id="SU-SU-success"),
    pytest.param("SU", "SU", "CR", None, AckPlan(None, None), id="SU-SU-rejected-silent"),
    pytest.param("SU", "SU", "CA", "AE", AckPlan("CA", None), id="SU-SU-app-error"),
    pytest.param("AL", "NE", "CA", "AA", AckPlan("CA", None), id="AL-NE-accept-only"),
    pytest.param("AL", "", "CA", "AE", AckPlan("CA", "AE"), id="empty-MSH-16-as-AL"),
    pytest.param("", "ER", "CA", "AE", AckPlan("CA", "AE"), id="empty-MSH-15-as-AL"),
    pytest.param("XX", "ne", "CA", "AA", AckPlan("CA", None), id="unknown-as-AL-case-folded"),
]


@pytest.mark.parametrize(("msh15", "msh16", "accept", "application", "expected"), ENHANCED_MODE)
def test_enhanced_mode_table(
    msh15: str,
    msh16: str,
    accept: AcceptCode,
    application: ApplicationCode | None,
    expected: AckPlan,
) -> None:
    """Enhanced mode: MSH-15 governs the accept ACK, MSH-16 the application ACK."""
    inbound = header(accept_ack_type=msh15, application_ack_type=msh16)
    assert plan(inbound, commit=accept, application=application) == expected


def test_accepted_message_needs_an_application_outcome() -> None:
    """CA without a processing outcome is a caller bug."""
    with pytest.raises(ValueError, match="application outcome"):
        plan(header(accept_ack_type="AL", application_ack_type="AL"), commit="CA", application=None)


@pytest.mark.parametrize(
    ("msh15", "msh16", "expected"),
    [
        pytest.param("NE", "AL", AckPlan(None, "AR"), id="NE-AL-refusal-said-as-AR"),
        pytest.param("SU", "ER", AckPlan(None, "AR"), id="SU-ER-refusal-said-as-AR"),
        pytest.param("NE", "NE", AckPlan(None, None), id="NE-NE-nothing-even-refused"),
        pytest.param("NE", "SU", AckPlan(None, None), id="NE-SU-no-errors-asked"),
    ],
)
def test_a_refusal_without_an_accept_ack_is_said_by_the_application_ack(
    msh15: str, msh16: str, expected: AckPlan
) -> None:
    """CR suppressed by MSH-15: the sender waiting for an application ACK gets the AR."""
    inbound = header(accept_ack_type=msh15, application_ack_type=msh16)
    assert plan(inbound, commit="CR", application=None) == expected


@pytest.mark.parametrize(
    ("commit", "application", "expected"),
    [
        pytest.param("CA", "AA", AckPlan(None, "AA"), id="processed"),
        pytest.param("CA", "AE", AckPlan(None, "AE"), id="content-error"),
        pytest.param("CR", None, AckPlan(None, "AR"), id="refused"),
    ],
)
def test_original_mode_forced_whatever_msh_15_and_16_ask(
    commit: AcceptCode, application: ApplicationCode | None, expected: AckPlan
) -> None:
    """A sender in original_mode_senders gets one AA/AE/AR, even asking AL/NE."""
    inbound = header(accept_ack_type="AL", application_ack_type="NE")
    assert plan(inbound, commit=commit, application=application, original_mode=True) == expected


@pytest.mark.parametrize(
    ("senders", "forced"),
    [
        pytest.param((), False, id="none-listed"),
        pytest.param(("LIS",), True, id="msh-3-namespace"),
        pytest.param(("LIS^PATHLAB",), True, id="msh-3-and-msh-4"),
        pytest.param(("LIS^OTHER",), False, id="other-facility"),
        pytest.param(("LIS^1.2.3^ISO",), False, id="not-the-whole-hd"),
    ],
)
def test_forced_original_mode_matches_namespaces(senders: tuple[str, ...], forced: bool) -> None:
    """original_mode_senders names MSH-3's namespace, or MSH-3^MSH-4's."""
    assert forced_original_mode(header(), senders) is forced


def test_an_inbound_ack_is_never_answered() -> None:
    """No ACK to an ACK, whatever the mode."""
    inbound = header(message_type="ACK", accept_ack_type="AL", application_ack_type="AL")
    assert plan(inbound, commit="CA", application="AA") == AckPlan(None, None)
    assert plan(inbound, commit="CA", application="AA", original_mode=True) == AckPlan(None, None)
