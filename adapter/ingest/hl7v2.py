"""HL7 v2 ORU^R01 in, AssayRecords out: one record per ORDER_OBSERVATION group with HER2/ER/PgR.

The walk is deliberately flat (PID, ORC, OBR, OBX, NTE, SPM in message order) rather than a full
grammar: that is what keeps ingest in microseconds. ``--strict`` adds hl7apy's structure check
(``adapter.ingest.hl7_strict``) for senders that must be held to the standard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from adapter.config import Settings
from adapter.errors import (
    AdapterError,
    EncodingError,
    MalformedMessage,
    NothingToClassify,
    UnsupportedMessage,
)
from adapter.ingest import er7
from adapter.ingest.assemble import ReadValue, assemble, resolve_tissue
from adapter.ingest.obx import ObxOutcome, cwe_coding, read_obx
from adapter.ingest.order import Order
from adapter.ingest.report_text import Source, read_text, statement_values, text_values_kept
from adapter.ingest.values import hl7_date, parse_hl7_datetime, site_zone
from adapter.mapping import ASSIGNER_FALLBACK_PREFIX, LOINC_SYSTEM, Mappings, MappingSet
from adapter.model import (
    AssayRecord,
    Coding,
    Identifier,
    IngestWarning,
    Organization,
    Origin,
    PatientRef,
    PersonName,
    Practitioner,
    Procedure,
    Provenance,
    ReportStatus,
    ResultStatus,
    SourceFormat,
    Specimen,
    Tissue,
    UnusedResult,
)

SUPPORTED_VERSIONS = frozenset(
    {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"}
)


@dataclass(frozen=True)
class ReadMessage:
    """A decoded and tokenized message, before anything clinical is read from it."""

    message: er7.Message
    text: str
    warnings: tuple[IngestWarning, ...] = ()

    @property
    def control_id(self) -> str:
        return self.message.control_id


def read_message(raw: bytes, settings: Settings) -> ReadMessage:
    """Decode and tokenize one message; raises MalformedMessage / EncodingError."""
    decoded = er7.decode_message(raw, settings.fallback_charset)
    message = er7.parse_message(decoded.text, codec=decoded.codec)
    warnings: tuple[IngestWarning, ...] = ()
    if decoded.fallback_used:
        declared = decoded.declared_charset or "none (ASCII)"
        warnings = (
            IngestWarning(
                code="CHARSET-FALLBACK",
                message=f"MSH-18 declares {declared}; the bytes were read as {decoded.codec}",
                locator="MSH-18",
            ),
        )
    return ReadMessage(message, decoded.text, warnings)


def check_supported(message: er7.Message) -> None:
    """Only ORU^R01 in versions 2.3 to 2.8 carries results we classify."""
    kind = message.message_type
    if (kind.code, kind.trigger) != ("ORU", "R01"):
        shown = "^".join(part for part in kind if part) or "(empty)"
        # MSH-9.2 when only the event is wrong: the ACK says so (table 0357: 201, not 200).
        where = "MSH-9.2" if kind.code == "ORU" else "MSH-9"
        raise UnsupportedMessage(f"message type {shown} is not ORU^R01", location=where)
    if message.version not in SUPPORTED_VERSIONS:
        raise UnsupportedMessage(
            f"HL7 version {message.version or '(empty)'} is not 2.3 to 2.8", location="MSH-12"
        )


@dataclass(frozen=True)
class Header:
    """A message's MSH alone, read before the message is stored, and why it is refused, if it is.

    A refusal is what the header alone decides: no readable MSH, a type or version not taken,
    a character set not known. It is the commit-level answer (CR) of enhanced mode.
    """

    msh: er7.Message | None
    refusal: AdapterError | None


_LEADING = b"\xef\xbb\xbf\x0b\r\n \t"  # a UTF-8 BOM, an MLLP start block, blank lines


def read_header(raw: bytes) -> Header:
    """The MSH of a message tokenized on its own (the body is read later, once); never raises."""
    start = raw.lstrip(_LEADING)
    end = min((at for at in (start.find(b"\r"), start.find(b"\n")) if at != -1), default=-1)
    line = start if end == -1 else start[:end]
    refusal: AdapterError | None = None
    try:
        # The whole message is decoded (a C-speed pass): bytes not in the declared character
        # set are refused before the message is taken, as a bad header is.
        text = er7.decode_message(start).text[: len(line)]
    except EncodingError as undecodable:
        refusal, text = undecodable, line.decode("latin-1")  # the ASCII header is still readable
    except MalformedMessage as malformed:
        return Header(None, malformed)
    try:
        msh = er7.parse_message(text)
    except AdapterError as unreadable:
        return Header(None, unreadable)
    if refusal is None:
        try:
            check_supported(msh)
        except UnsupportedMessage as unsupported:
            refusal = unsupported
    return Header(msh, refusal)


# --------------------------------------------------------------------------------------------
# Walking the segments into order groups
# --------------------------------------------------------------------------------------------


@dataclass
class _Group:
    index: int
    patient: er7.Segment | None
    orc: er7.Segment | None
    obr: er7.Segment
    values: list[ReadValue] = field(default_factory=list)
    unused: list[UnusedResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    specimens: list[er7.Segment] = field(default_factory=list)
    warnings: list[IngestWarning] = field(default_factory=list)
    statuses: list[ResultStatus] = field(default_factory=list)
    retracted: list[Provenance] = field(default_factory=list)  # OBX-11 D/W: withdrawn results
    # OBX-23 performing organisation (name, assigning authority HD parts) of each used OBX
    performing: list[tuple[str, str, str, str]] = field(default_factory=list)
    texts: list[ObxOutcome] = field(default_factory=list)  # report text, in message order


def to_records(read: ReadMessage, mappings: Mappings, settings: Settings) -> list[AssayRecord]:
    """Every record the message carries; NothingToClassify when it carries none."""
    return [order.record for order in to_orders(read, mappings, settings)]


def to_orders(read: ReadMessage, mappings: Mappings, settings: Settings) -> list[Order]:
    """Every order with results (or withdrawals of results); NothingToClassify when none."""
    message = read.message
    check_supported(message)
    mapping = mappings.for_hl7_sender(
        message.sending_application.namespace_id, message.sending_facility.namespace_id
    )
    zone = site_zone(settings.site_timezone)
    groups = _walk(message, mapping, zone)
    for group in groups:
        _read_report_text(group, mapping)
    orders = [
        Order(
            record=_record(message, group, mapping, zone, read.warnings),
            values=tuple(group.values),
            retracted=tuple(group.retracted),
            mapping=mapping,
        )
        for group in groups
        if group.values or group.retracted
    ]
    if not orders:
        unused = tuple(u for group in groups for u in group.unused)
        raise NothingToClassify(_nothing_reason(groups), location="OBX", unused=unused)
    return orders


def _walk(message: er7.Message, mapping: MappingSet, zone: tzinfo) -> list[_Group]:
    groups: list[_Group] = []
    patient: er7.Segment | None = None
    orc: er7.Segment | None = None
    current: _Group | None = None
    obx_count = 0
    # An OBX is read once its notes are known: the NTEs up to the next OBX, OBR or PID.
    pending: er7.Segment | None = None
    notes: list[str] = []
    for segment in message.segments:
        name = segment.name
        if pending is not None and (name == "OBX" or name == "OBR" or name == "PID"):
            assert current is not None  # an OBX is pending only in a group
            _add_obx(current, pending, obx_count, mapping, zone, tuple(notes))
            pending, notes = None, []
        if name == "PID":
            patient, orc, current = segment, None, None
        elif name == "ORC":
            orc = segment
        elif name == "OBR":
            current = _Group(len(groups) + 1, patient, orc, segment)
            groups.append(current)
            orc = None
        elif name == "OBX":
            obx_count += 1  # locators count OBX segments, as ERR-2 does (OBX[3] = third OBX)
            if current is None:
                raise MalformedMessage("OBX before any OBR", location=f"OBX[{obx_count}]")
            pending = segment
        elif name == "NTE" and current is not None:
            text = "\n".join(part for part in segment.repetitions(3) if part)
            if text and pending is not None:
                notes.append(text)  # a note on the OBX before it
            elif text:
                current.notes.append(text)  # a note on the order, before its first OBX
        elif name == "SPM" and current is not None:
            current.specimens.append(segment)
    if pending is not None:
        assert current is not None
        _add_obx(current, pending, obx_count, mapping, zone, tuple(notes))
    return groups


def _add_obx(
    group: _Group,
    segment: er7.Segment,
    position: int,
    mapping: MappingSet,
    zone: tzinfo,
    notes: tuple[str, ...],
) -> None:
    # A note on a result that is not used (unused, report text) says nothing about this order.
    outcome = read_obx(segment, position, mapping, zone, notes)
    group.warnings.extend(outcome.warnings)
    if outcome.status is not None:
        group.statuses.append(outcome.status)
    if outcome.status is ResultStatus.ENTERED_IN_ERROR and outcome.unused is not None:
        group.retracted.append(outcome.unused.provenance)
    if outcome.report_text is not None:
        group.texts.append(outcome)
        return
    if outcome.value is not None:
        group.performing.append(outcome.performing)
        group.values.append(outcome.value)
    elif outcome.unused is not None:
        group.unused.append(outcome.unused)


def _read_report_text(group: _Group, mapping: MappingSet) -> None:
    """Statements in the group's report text become its values where no coded result says the
    same test; a text OBX with no statement stays an unused result, with its reason."""
    if not group.texts:
        return
    # OBX segments of one code in a row are one text: NAACCR feeds send a report line per OBX.
    sources: list[Source] = [
        (o.unused.provenance.locator, o.report_text or "", _run(o.unused.provenance.code))
        for o in group.texts
        if o.unused
    ]
    statements, warnings = read_text(sources, mapping)
    group.warnings.extend(warnings)
    status = next((o.status for o in group.texts if o.status is not None), ResultStatus.FINAL)
    read = text_values_kept(group.values, statement_values(statements, status), group.warnings)
    group.values.extend(read)
    said = {source for s in statements for source in s.sources}
    group.unused.extend(
        o.unused for o in group.texts if o.unused and o.unused.provenance.locator not in said
    )


def _run(code: Coding | None) -> str | None:
    return f"{code.system}|{code.code}" if code is not None and code.code else None


def _nothing_reason(groups: list[_Group]) -> str:
    unused = [u for group in groups for u in group.unused]
    if not groups:
        return "the message has no OBR/OBX results"
    if not unused:
        return "the message has no OBX results"
    shown = "; ".join(
        f"{u.provenance.locator} {_code_text(u.provenance.code)}: {u.reason}" for u in unused[:5]
    )
    more = f" (and {len(unused) - 5} more)" if len(unused) > 5 else ""
    return f"no HER2, ER or PgR tissue result: {shown}{more}"


def _code_text(coding: Coding | None) -> str:
    if coding is None:
        return "(no code)"
    return f"{coding.code or ''} ({coding.system or 'no system'})"


# --------------------------------------------------------------------------------------------
# One group -> one record
# --------------------------------------------------------------------------------------------


def _record(
    message: er7.Message,
    group: _Group,
    mapping: MappingSet,
    zone: tzinfo,
    message_warnings: tuple[IngestWarning, ...],
) -> AssayRecord:
    warnings = [*message_warnings, *group.warnings]
    assembled = assemble(group.values, mapping, group.notes)
    warnings.extend(assembled.warnings)
    specimen = _specimen(group, mapping, zone, warnings)
    obr = group.obr
    effective = _datetime(obr.field(7), zone, "OBR-7", warnings)
    if effective is None:
        effective = next(
            (v.observation.effective for v in group.values if v.observation.effective), None
        )
    issued = _datetime(obr.field(22), zone, "OBR-22", warnings) or _datetime(
        message.msh.field(7), zone, "MSH-7", warnings
    )
    order_code = cwe_coding(obr.components(4), mapping)
    return AssayRecord(
        origin=Origin(
            format=SourceFormat.HL7V2,
            message_id=message.control_id,
            sending_application=message.sending_application.namespace_id or None,
            sending_facility=message.sending_facility.namespace_id or None,
            placer_order=_first(group.orc, 2, obr, 2),
            filler_order=_first(group.orc, 3, obr, 3),
            group_index=group.index,
            set_id=obr.field(1) or None,
            parent_placer=obr.component(29, 1) or None,
            parent_filler=obr.component(29, 2) or None,
            hl7_version=message.version,
            order_code=order_code,
            report_code=_report_code(order_code, mapping),
            performer=_performer(message, group, mapping),
            interpreters=_interpreters(obr, mapping),
        ),
        patient=_patient(group.patient, mapping),
        specimen=specimen,
        report_status=_report_status(obr.field(25), group.statuses, mapping, warnings),
        effective=effective,
        issued=issued,
        her2_ihc=assembled.her2_ihc,
        her2_ish=assembled.her2_ish,
        er=assembled.er,
        pgr=assembled.pgr,
        lab_interpretation=assembled.lab_interpretation,
        observations=tuple(value.observation for value in group.values),
        unused=tuple(group.unused),
        notes=tuple(group.notes),
        warnings=tuple(warnings),
    )


def _first(orc: er7.Segment | None, orc_field: int, obr: er7.Segment, obr_field: int) -> str | None:
    """An order number from ORC, else OBR (entity identifier only)."""
    if orc is not None and orc.component(orc_field, 1):
        return orc.component(orc_field, 1)
    return obr.component(obr_field, 1) or None


def _subcomponentcwe_coding(
    segment: er7.Segment, n: int, c: int, mapping: MappingSet
) -> Coding | None:
    """A CWE held in sub-components (OBR-15 specimen source in v2.3-2.6)."""
    parts = segment.subcomponents(n, c)
    return cwe_coding(parts, mapping)


def _patient(pid: er7.Segment | None, mapping: MappingSet) -> PatientRef:
    if pid is None:
        return PatientRef()
    identifiers: list[Identifier] = []
    for rep in range(1, len(pid.raw_repetitions(3)) + 1):
        value = pid.component(3, 1, rep=rep)
        if not value:
            continue
        identifiers.append(
            Identifier(
                value=value,
                system=_assigner_uri(
                    pid.component(3, 4, 1, rep=rep),
                    pid.component(3, 4, 2, rep=rep),
                    pid.component(3, 4, 3, rep=rep),
                    mapping,
                ),
                type_code=pid.component(3, 5, rep=rep) or None,
            )
        )
    return PatientRef(
        identifiers=tuple(identifiers),
        name=_person_name(pid.component(5, 1, 1), (pid.component(5, 2), pid.component(5, 3))),
        gender=mapping.gender_for(pid.field(8)) if pid.field(8) else None,
        birth_date=hl7_date(pid.component(7)),
    )


def _person_name(family: str, given: tuple[str, ...]) -> PersonName | None:
    names = tuple(g for g in given if g)
    if not (family or names):
        return None
    return PersonName(family=family or None, given=names)


def _assigner_uri(
    namespace: str, universal_id: str, universal_type: str, mapping: MappingSet
) -> str | None:
    """CX-4 / HD assigning authority as a FHIR identifier system URI.

    The sender's own OID or URI wins; else the deployment's table (``[assigners]`` in the
    mappings); else a URN that only says which namespace the sender named (docs/output.md).
    """
    known = _organization_uri(namespace, universal_id, universal_type, mapping)
    if known is None and namespace:
        return f"{ASSIGNER_FALLBACK_PREFIX}{namespace}"
    return known


def _report_code(order_code: Coding | None, mapping: MappingSet) -> Coding | None:
    if order_code is None or not (order_code.system and order_code.code):
        return None
    if order_code.system == LOINC_SYSTEM:
        return None  # already LOINC
    found = mapping.report_code(order_code.system, order_code.code)
    if found is None:
        return None
    return Coding(system=LOINC_SYSTEM, code=found.loinc, display=found.display)


def _performer(message: er7.Message, group: _Group, mapping: MappingSet) -> Organization | None:
    """The lab that issued the result: OBX-23 performing organisation when sent, else MSH-4."""
    for name, namespace, universal, kind in group.performing:
        if name or namespace:
            return Organization(
                name=name or namespace, uri=_organization_uri(namespace, universal, kind, mapping)
            )
    facility = message.sending_facility
    if not facility.namespace_id:
        return None
    return Organization(
        name=facility.namespace_id,
        uri=_organization_uri(
            facility.namespace_id, facility.universal_id, facility.universal_id_type, mapping
        ),
    )


def _organization_uri(
    namespace: str, universal_id: str, universal_type: str, mapping: MappingSet
) -> str | None:
    """An HD's OID or URI, else the one the ``[assigners]`` table gives its namespace."""
    if universal_id and universal_type.upper() == "ISO":
        return f"urn:oid:{universal_id}"
    if universal_id and ":" in universal_id:
        return universal_id
    return mapping.assigner_uri(namespace) if namespace else None


def _interpreters(obr: er7.Segment, mapping: MappingSet) -> tuple[Practitioner, ...]:
    """OBR-32 principal result interpreter(s): NDL whose first component is a CNN."""
    found: list[Practitioner] = []
    for rep in range(1, len(obr.raw_repetitions(32)) + 1):
        parts = obr.subcomponents(32, 1, rep=rep)

        def part(n: int, parts: list[str] = parts) -> str:
            return parts[n] if len(parts) > n else ""

        name = _person_name(part(1), (part(2), part(3)))
        identifier = (
            Identifier(value=part(0), system=_assigner_uri(part(8), part(9), part(10), mapping))
            if part(0)
            else None
        )
        if name is not None or identifier is not None:
            found.append(Practitioner(identifier=identifier, name=name))
    return tuple(found)


def _specimen(
    group: _Group, mapping: MappingSet, zone: tzinfo, warnings: list[IngestWarning]
) -> Specimen:
    obr = group.obr
    types: list[Coding] = []
    sites: list[Coding] = []
    texts: list[str] = []
    procedure_texts: list[str] = []
    specimen_id: str | None = None
    collected: datetime | None = None
    received: datetime | None = None
    method: Coding | None = None
    for spm in group.specimens:
        specimen_id = specimen_id or spm.component(2, 2) or spm.component(2, 1) or None
        collected = collected or _datetime(spm.component(17, 1), zone, "SPM-17", warnings)
        received = received or _datetime(spm.field(18), zone, "SPM-18", warnings)
        method = method or cwe_coding(spm.components(7), mapping)
        if (found := cwe_coding(spm.components(4), mapping)) is not None:
            types.append(found)
        if (found := cwe_coding(spm.components(8), mapping)) is not None:
            sites.append(found)
        procedure_texts.extend(filter(None, (spm.component(7, 2), spm.component(7, 1))))
    # OBR-15 (specimen source, to v2.6): source name/code, collection method, body site.
    if (found := _subcomponentcwe_coding(obr, 15, 1, mapping)) is not None:
        types.append(found)
    if (found := _subcomponentcwe_coding(obr, 15, 4, mapping)) is not None:
        sites.append(found)
    procedure_texts.append(obr.component(15, 3))
    order_text = obr.component(4, 2)
    texts.extend(c.display or "" for c in (*types, *sites))
    texts.append(order_text)
    site_tissues = [
        mapping.tissue_for_code(c.system, c.code) for c in (*types, *sites) if c.system and c.code
    ]
    tissue, tissue_warnings = resolve_tissue(
        (v.tissue_scope for v in group.values), site_tissues, texts, mapping
    )
    warnings.extend(tissue_warnings)
    if tissue is Tissue.UNKNOWN and not tissue_warnings:
        warnings.append(
            IngestWarning(code="TISSUE-UNKNOWN", message="no specimen site or tissue-scoped code")
        )
    return Specimen(
        id=specimen_id,
        type=types[0] if types else None,
        body_sites=tuple(sites),
        tissue=tissue,
        procedure=_procedure([*procedure_texts, *texts], mapping),
        collected=collected,
        received=received,
        collection_method=method,
    )


def _procedure(texts: list[str], mapping: MappingSet) -> Procedure:
    found = {p for text in texts if text and (p := mapping.procedure_for_text(text)) is not None}
    return found.pop() if len(found) == 1 else Procedure.UNKNOWN


def _report_status(
    obr25: str,
    statuses: list[ResultStatus],
    mapping: MappingSet,
    warnings: list[IngestWarning],
) -> ReportStatus:
    corrected = ResultStatus.CORRECTED in statuses
    if obr25:
        status = mapping.report_status_for(obr25)
        if status is None:
            warnings.append(
                IngestWarning(
                    code="STATUS-UNKNOWN",
                    message=f"OBR-25 {obr25!r} is not a known result status",
                    locator="OBR-25",
                )
            )
            return ReportStatus.UNKNOWN
        if status is ReportStatus.FINAL and ResultStatus.PRELIMINARY in statuses:
            # A classification resting on a preliminary result is not final, whatever OBR-25 says.
            warnings.append(
                IngestWarning(
                    code="STATUS-PRELIMINARY",
                    message="OBR-25 says final but a result is preliminary: report preliminary",
                    locator="OBR-25",
                )
            )
            return ReportStatus.PRELIMINARY
        # A corrected result (OBX-11 C) corrects the report even when OBR-25 still says final.
        return ReportStatus.CORRECTED if corrected and status is ReportStatus.FINAL else status
    if corrected:
        return ReportStatus.CORRECTED
    if statuses and all(s is ResultStatus.FINAL for s in statuses):
        return ReportStatus.FINAL
    if ResultStatus.PRELIMINARY in statuses:
        return ReportStatus.PRELIMINARY
    return ReportStatus.UNKNOWN


def _datetime(
    text: str, zone: tzinfo, where: str, warnings: list[IngestWarning]
) -> datetime | None:
    if not text:
        return None
    moment, coarse = parse_hl7_datetime(text, zone)
    if moment is None:
        warnings.append(
            IngestWarning(
                code="DATETIME-INVALID", message=f"{where} is not an HL7 timestamp", locator=where
            )
        )
    elif coarse:
        warnings.append(
            IngestWarning(
                code="DATETIME-COARSE",
                message=f"{where} has no time of day; midnight in the site zone is used",
                locator=where,
            )
        )
    return moment
