"""FHIR R4 in, AssayRecords out: one record per group of Observations (see ``fhir_group``).

Reading is split by concern: ``fhir_document`` (bytes -> validated resources), ``fhir_observation``
(one Observation -> values), ``fhir_group`` (which Observations form one record); this module
builds the records with the same ``assemble`` and ``resolve_tissue`` the HL7 v2 reader uses.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, tzinfo
from typing import Any

from adapter.config import Settings
from adapter.errors import NothingToClassify
from adapter.ingest.assemble import ReadValue, assemble, resolve_tissue
from adapter.ingest.fhir_document import Document, Incoming, read_document
from adapter.ingest.fhir_elements import (
    V2_0203,
    JsonObject,
    codings,
    concept_texts,
    labelled_coding,
    obj,
    objects,
    parse_datetime,
    reference,
    text,
)
from adapter.ingest.fhir_group import Group, References, group_observations, patient_key
from adapter.ingest.fhir_observation import ObservationRead, read_observation
from adapter.ingest.order import Order
from adapter.ingest.report_text import read_text, statement_values, text_values_kept
from adapter.ingest.values import site_zone
from adapter.mapping import LOINC_SYSTEM, Mappings, MappingSet
from adapter.model import (
    AdministrativeGender,
    AssayRecord,
    Coding,
    Identifier,
    IngestWarning,
    Origin,
    PatientRef,
    PersonName,
    Procedure,
    Provenance,
    ReportStatus,
    ResultStatus,
    SourceFormat,
    Specimen,
    Tissue,
    UnusedResult,
)

_ADOPTING_STATUSES = (ResultStatus.CORRECTED, ResultStatus.AMENDED)


def to_records(
    data: bytes, mappings: Mappings, settings: Settings, *, source: str | None = None
) -> tuple[str, list[AssayRecord]]:
    """The message id and every record the input carries; NothingToClassify when none."""
    message_id, orders = to_orders(data, mappings, settings, source=source)
    return message_id, [order.record for order in orders]


def to_orders(
    data: bytes, mappings: Mappings, settings: Settings, *, source: str | None = None
) -> tuple[str, list[Order]]:
    """The message id and every order with results or withdrawals; NothingToClassify when none."""
    document = read_document(data)
    sender = source or document.source
    mapping = _sender_mapping(mappings, sender)
    zone = site_zone(settings.site_timezone)
    refs = References(document.resources)
    reads = {
        incoming.locator: _read(incoming, mapping, zone, settings.codesystem_url)
        for incoming in document.resources
        if incoming.kind == "Observation"
    }
    groups = group_observations(document.resources, refs)
    orders: list[Order] = []
    unused: list[UnusedResult] = []
    for group in groups:
        built = _GroupReader(document, group, reads, refs, mapping, zone, sender)
        unused.extend(built.unused)
        if built.values or built.retracted:
            orders.append(
                Order(
                    record=built.record(len(orders) + 1),
                    values=tuple(built.values),
                    retracted=tuple(built.retracted),
                    mapping=mapping,
                    whole_order_retracted=built.report_retracted,
                )
            )
    if not orders:
        raise NothingToClassify(
            _nothing_reason(document, unused), location="Observation", unused=tuple(unused)
        )
    return document.message_id, orders


def _sender_mapping(mappings: Mappings, sender: str | None) -> MappingSet:
    """The sender file listing the source; ``meta.source`` may carry a ``#fragment`` to ignore."""
    found = mappings.for_fhir_source(sender)
    if found is mappings.default and sender and "#" in sender:
        return mappings.for_fhir_source(sender.split("#", 1)[0])
    return found


def _read(
    incoming: Incoming, mapping: MappingSet, zone: tzinfo, codesystem: str
) -> ObservationRead:
    if _is_own_summary(incoming.resource, codesystem):
        # The adapter's own HER2 summary, fed back: its notes are the group's notes, its value
        # is an earlier classification and must not vote in this one.
        return ObservationRead(
            own_summary=True,
            group_notes=[
                t
                for note in objects(incoming.resource.get("note"))
                if (t := text(note.get("text")))
            ],
        )
    return read_observation(incoming.resource, incoming.locator, mapping, zone)


def _is_own_summary(resource: JsonObject, codesystem: str) -> bool:
    return any(
        c.system == codesystem
        for component in objects(resource.get("component"))
        for c in codings(component.get("code"))
    )


def _nothing_reason(document: Document, unused: list[UnusedResult]) -> str:
    reasons = [
        f"{u.provenance.locator} {_code_text(u.provenance.code)}: {u.reason}" for u in unused
    ]
    reasons.extend(document.rejected)
    if not reasons:
        return "the input has no Observation with a HER2, ER or PgR result"
    shown = "; ".join(reasons[:5])
    more = f" (and {len(reasons) - 5} more)" if len(reasons) > 5 else ""
    return f"no HER2, ER or PgR tissue result: {shown}{more}"


def _code_text(coding: Coding | None) -> str:
    if coding is None or not coding.code:
        return "(no code)"
    return f"{coding.code} ({coding.system or 'no system'})"


class _GroupReader:
    """One group of Observations (and its DiagnosticReport, Patient, Specimen) -> one record."""

    def __init__(
        self,
        document: Document,
        group: Group,
        reads: dict[str, ObservationRead],
        refs: References,
        mapping: MappingSet,
        zone: tzinfo,
        sender: str | None,
    ) -> None:
        self.document, self.group, self.refs = document, group, refs
        self.mapping, self.zone, self.sender = mapping, zone, sender
        self.reads = [reads[o.locator] for o in group.observations]
        self.report = group.reports[0] if group.reports else None
        self.warnings: list[IngestWarning] = [*document.warnings]
        for read in self.reads:
            self.warnings.extend(read.warnings)
        self.values: list[ReadValue] = [v for read in self.reads for v in read.values]
        self.unused: list[UnusedResult] = [u for read in self.reads for u in read.unused]
        # Results withdrawn (Observation.status entered-in-error): a case drops what they name.
        self.retracted: list[Provenance] = [
            u.provenance
            for read in self.reads
            if read.status is ResultStatus.ENTERED_IN_ERROR
            for u in read.unused
        ]
        self.report_retracted = False
        self._read_report_text()
        if len(group.reports) > 1:
            self.warnings.append(
                IngestWarning(
                    code="SEVERAL-REPORTS",
                    message="several DiagnosticReports share these results; the first is used",
                    locator=group.reports[0].locator,
                )
            )
        if self.report is not None and self.report.resource.get("status") == "entered-in-error":
            self.report_retracted = True
            self.retracted.extend(v.provenance for v in self.values)
            self.unused.extend(
                UnusedResult(
                    provenance=v.provenance, reason="the DiagnosticReport is entered-in-error"
                )
                for v in self.values
            )
            self.values = []

    def _read_report_text(self) -> None:
        """Statements in report text (text Observations, the report's conclusion and plain-text
        presentedForm) become values where no coded result reports the same test."""
        sources = [source for read in self.reads for source in read.texts]
        status = ResultStatus.FINAL
        # The adapter's own report, fed back: its conclusion is our earlier classification.
        own = any(read.own_summary for read in self.reads)
        if self.report is not None and not own:
            resource, at = self.report.resource, self.report.locator
            if (conclusion := text(resource.get("conclusion"))) is not None:
                sources.append((f"{at}.conclusion", conclusion))
            for index, form in enumerate(objects(resource.get("presentedForm"))):
                plain = _plain_text(form)
                if plain is not None:
                    sources.append((f"{at}.presentedForm[{index}]", plain))
            status = _REPORT_AS_RESULT.get(str(resource.get("status")), ResultStatus.UNKNOWN)
        if not sources:
            return
        statements, warnings = read_text(sources, self.mapping)
        self.warnings.extend(warnings)
        found = statement_values(statements, status)
        self.values.extend(text_values_kept(self.values, found, self.warnings))

    def record(self, index: int) -> AssayRecord:
        notes = self._notes()
        assembled = assemble(self.values, self.mapping, notes)
        self.warnings.extend(assembled.warnings)
        placer, filler = self._order_numbers()
        return AssayRecord(
            origin=Origin(
                format=SourceFormat.FHIR,
                message_id=self.document.message_id,
                sending_application=self.sender,
                placer_order=placer,
                filler_order=filler,
                group_index=index,
                order_code=self._order_code(),
                report_code=self._report_code(),
            ),
            patient=self._patient(),
            specimen=self._specimen(),
            report_status=self._report_status(),
            effective=self._report_moment("effectiveDateTime") or self._first_effective(),
            issued=self._report_moment("issued")
            or next((r.issued for r in self.reads if r.issued), None),
            her2_ihc=assembled.her2_ihc,
            her2_ish=assembled.her2_ish,
            er=assembled.er,
            pgr=assembled.pgr,
            lab_interpretation=assembled.lab_interpretation,
            observations=tuple(value.observation for value in self.values),
            unused=tuple(self.unused),
            notes=notes,
            warnings=tuple(self.warnings),
        )

    # -- report-level facts ------------------------------------------------------------------

    def _notes(self) -> tuple[str, ...]:
        found = [note for read in self.reads for note in read.group_notes]
        if self.report is not None:
            found.extend(
                t
                for n in objects(self.report.resource.get("_r5_note"))
                if (t := text(n.get("text")))
            )
        return tuple(found)

    def _order_numbers(self) -> tuple[str | None, str | None]:
        """DiagnosticReport.identifier typed PLAC/FILL (else the first is the filler's), basedOn."""
        if self.report is None:
            return None, None
        placer: str | None = None
        filler: str | None = None
        untyped: str | None = None
        for identifier in objects(self.report.resource.get("identifier")):
            value = text(identifier.get("value"))
            kinds = {c.code for c in codings(identifier.get("type")) if c.system == V2_0203}
            if value and "PLAC" in kinds:
                placer = placer or value
            elif value and "FILL" in kinds:
                filler = filler or value
            elif value:
                untyped = untyped or value
        for based_on in objects(self.report.resource.get("basedOn")):
            placer = placer or text(obj(based_on.get("identifier")).get("value"))
        return placer, filler or untyped

    def _order_code(self) -> Coding | None:
        concept = self.report.resource.get("code") if self.report is not None else None
        if concept is not None:
            return labelled_coding(concept)
        return next((r.panel_code for r in self.reads if r.panel_code is not None), None)

    def _report_code(self) -> Coding | None:
        """The LOINC code the mappings give for a local report code (none when already LOINC)."""
        order = self._order_code()
        if order is None or not (order.system and order.code) or order.system == LOINC_SYSTEM:
            return None
        found = self.mapping.report_code(order.system, order.code)
        if found is None:
            return None
        return Coding(system=LOINC_SYSTEM, code=found.loinc, display=found.display)

    def _report_moment(self, element: str) -> datetime | None:
        if self.report is None:
            return None
        resource = self.report.resource
        sent = text(resource.get(element))
        if sent is None and element == "effectiveDateTime":
            sent = text(obj(resource.get("effectivePeriod")).get("start"))
        return self._moment(sent, self.report.locator, f"DiagnosticReport.{element}")

    def _first_effective(self) -> datetime | None:
        return next((v.observation.effective for v in self.values if v.observation.effective), None)

    def _report_status(self) -> ReportStatus:
        statuses = [r.status for r in self.reads if r.status is not None]
        adopted = next((s for s in _ADOPTING_STATUSES if s in statuses), None)
        if self.report is not None:
            status = ReportStatus(str(self.report.resource.get("status")))
            # A corrected result corrects the report even when the report still says final.
            if adopted is not None and status is ReportStatus.FINAL:
                return ReportStatus(adopted.value)
            return status
        if adopted is not None:
            return ReportStatus(adopted.value)
        counted = [s for s in statuses if s is not ResultStatus.ENTERED_IN_ERROR]
        if counted and all(s is ResultStatus.FINAL for s in counted):
            return ReportStatus.FINAL
        if ResultStatus.PRELIMINARY in counted:
            return ReportStatus.PRELIMINARY
        return ReportStatus.UNKNOWN

    # -- patient and specimen ----------------------------------------------------------------

    def _subject_holder(self) -> Incoming:
        holders = [*self.group.reports, *self.group.observations]
        return next((h for h in holders if "subject" in h.resource), holders[0])

    def _patient(self) -> PatientRef:
        keys = {patient_key(o, self.refs) for o in self.group.observations}
        if len(keys - {None}) > 1:
            self.warnings.append(
                IngestWarning(
                    code="CONFLICTING-PATIENT",
                    message="the grouped Observations name different patients",
                )
            )
        holder = self._subject_holder()
        subject = obj(holder.resource.get("subject"))
        sent = reference(subject)
        patient = self.refs.resolve(sent, holder)
        identifiers = [
            *objects(patient.resource.get("identifier") if patient is not None else None),
            *([subject["identifier"]] if isinstance(subject.get("identifier"), dict) else []),
        ]
        found: list[Identifier] = []
        for identifier in identifiers:
            value = text(identifier.get("value"))
            if value is None:
                continue
            kind = next((c.code for c in codings(identifier.get("type")) if c.code), None)
            item = Identifier(value=value, system=text(identifier.get("system")), type_code=kind)
            if item not in found:
                found.append(item)
        details = patient.resource if patient is not None else {}
        return PatientRef(
            identifiers=tuple(found),
            fhir_reference=sent,
            name=_person_name(details.get("name")),
            gender=_gender(details.get("gender")),
            birth_date=_birth_date(details.get("birthDate")),
        )

    def _specimen_resource(self) -> Incoming | None:
        holders: list[tuple[Incoming, str | None]] = []
        if self.report is not None:
            holders.extend(
                (self.report, reference(item))
                for item in objects(self.report.resource.get("specimen"))
            )
        holders.extend((o, reference(o.resource.get("specimen"))) for o in self.group.observations)
        for holder, sent in holders:
            found = self.refs.resolve(sent, holder)
            if found is not None and found.kind == "Specimen":
                return found
        return None

    def _specimen(self) -> Specimen:
        found = self._specimen_resource()
        resource = found.resource if found is not None else {}
        collection = obj(resource.get("collection"))
        types = codings(resource.get("type"))
        sites = codings(collection.get("bodySite"))
        for read in self.reads:
            sites.extend(s for s in read.body_sites if s not in sites)
        texts = [
            *concept_texts(resource.get("type")),
            *concept_texts(collection.get("bodySite")),
            *(s.display for read in self.reads for s in read.body_sites if s.display),
        ]
        order = self._order_code()
        if order is not None and order.display:
            texts.append(order.display)
        site_tissues = [
            self.mapping.tissue_for_code(c.system, c.code)
            for c in (*types, *sites)
            if c.system and c.code
        ]
        tissue, tissue_warnings = resolve_tissue(
            (v.tissue_scope for v in self.values), site_tissues, texts, self.mapping
        )
        self.warnings.extend(tissue_warnings)
        if tissue is Tissue.UNKNOWN and not tissue_warnings:
            self.warnings.append(
                IngestWarning(
                    code="TISSUE-UNKNOWN", message="no specimen site or tissue-scoped code"
                )
            )
        procedure_texts = [*concept_texts(collection.get("method")), *texts]
        where = found.locator if found is not None else "Specimen"
        return Specimen(
            id=_specimen_id(found),
            type=types[0] if types else None,
            body_sites=tuple(sites),
            tissue=tissue,
            procedure=self._procedure(procedure_texts),
            collected=self._moment(
                collection.get("collectedDateTime"), where, "Specimen.collection.collected"
            ),
            received=self._moment(resource.get("receivedTime"), where, "Specimen.receivedTime"),
            collection_method=labelled_coding(collection.get("method")),
        )

    def _moment(self, value: Any, where: str, what: str) -> datetime | None:
        """A dateTime in the site zone when it has none; coarse or offset-less ones warn."""
        sent = text(value)
        if sent is None:
            return None
        moment, coarse, naive = parse_datetime(sent, self.zone)
        if coarse or naive:
            self.warnings.append(
                IngestWarning(
                    code="DATETIME-COARSE" if coarse else "DATETIME-NO-OFFSET",
                    message=f"{what} has no "
                    + ("time of day" if coarse else "UTC offset")
                    + "; the site zone is used",
                    locator=where,
                )
            )
        return moment

    def _procedure(self, texts: list[str]) -> Procedure:
        found = {p for t in texts if (p := self.mapping.procedure_for_text(t)) is not None}
        return found.pop() if len(found) == 1 else Procedure.UNKNOWN


_GENDERS = frozenset(g.value for g in AdministrativeGender)
_FHIR_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


def _person_name(names: Any) -> PersonName | None:
    """The official name (else the first) of a Patient, family and given only."""
    sent = list(objects(names))
    chosen = next((n for n in sent if n.get("use") == "official"), sent[0] if sent else None)
    if chosen is None:
        return None
    family = text(chosen.get("family"))
    given = tuple(g for g in (text(v) for v in chosen.get("given") or ()) if g)
    return PersonName(family=family, given=given) if family or given else None


def _gender(value: Any) -> AdministrativeGender | None:
    sent = text(value)
    return AdministrativeGender(sent) if sent in _GENDERS else None


def _birth_date(value: Any) -> str | None:
    sent = text(value)
    return sent if sent is not None and _FHIR_DATE.fullmatch(sent) else None


_REPORT_AS_RESULT = {
    **{status.value: status for status in ResultStatus},
    "partial": ResultStatus.PRELIMINARY,
    "appended": ResultStatus.AMENDED,
}


def _plain_text(form: JsonObject) -> str | None:
    """A presentedForm's text when it is plain text (``text/plain``, base64 ``data``)."""
    kind = (text(form.get("contentType")) or "").split(";", 1)[0].strip().lower()
    data = text(form.get("data"))
    if kind != "text/plain" or data is None:
        return None
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, or text that is not ASCII at all
        return None


def _specimen_id(found: Incoming | None) -> str | None:
    """The lab's specimen identifier (accession, else the first identifier), else the id."""
    if found is None:
        return None
    resource = found.resource
    accession = text(obj(resource.get("accessionIdentifier")).get("value"))
    first = next(
        (v for i in objects(resource.get("identifier")) if (v := text(i.get("value")))), None
    )
    return accession or first or found.id
