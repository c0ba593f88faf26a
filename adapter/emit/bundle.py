"""One FHIR R4 transaction Bundle per incoming message, as plain dicts, serialised with orjson.

fhir.resources is far too slow for this path; it validates the output in tests and, on demand, in
:mod:`adapter.emit.validate`. Entries, in this order: each Patient, each Specimen, then each
order's reported Observations; then, built by :mod:`adapter.emit.case_report` with the resource
builders here, each case's HER2 summary Observation and DiagnosticReport. Every entry is
``PUT Type/<id>`` with ``fullUrl`` ``urn:uuid:<id>``; references between entries use the fullUrl,
so they resolve inside the Bundle and the server rewrites them on commit.

Shapes: DiagnosticReport as US Core Laboratory DiagnosticReport, Observations as mCODE
TumorMarkerTest (the shapes only: no ``meta.profile`` is claimed). The summary Observation
(LOINC 48676-1) carries the official ASCO/CAP result as its value and the adapter's own concepts as
components coded in the CodeSystem at ``Settings.codesystem_url``:

=================  =====================  ============================================
component code     value                  present
=================  =====================  ============================================
``her2-category``  CodeableConcept        always; code = the Category value
``ish-group``      integer 1-5            only when a breast dual-probe group was assigned
``hr-status``      CodeableConcept        when an HR status was determined
``er-result``      CodeableConcept        when ER was called (plus SNOMED where one exists)
``pgr-result``     CodeableConcept        when PgR was called (plus SNOMED)
``tissue``         CodeableConcept        always; code = the Tissue value
``flag``           CodeableConcept        one per flag; code = flag code, text = reason
``rule``           CodeableConcept        one per fired rule; code = rule id,
                                          text = "reason [citation]"
``guideline``      string                 always
=================  =====================  ============================================
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import orjson

from adapter.emit import datatypes as dt
from adapter.emit import parties
from adapter.emit.codes import (
    DATA_ABSENT_REASON,
    MAPPINGS_VERSION_DISPLAY,
    MAPPINGS_VERSION_SYSTEM,
    OBSERVATION_CATEGORY,
    OBSERVATION_INTERPRETATION,
    V2_0074,
    V2_0203,
)
from adapter.emit.ids import RecordIds, resource_id
from adapter.emit.profiles import (
    MCODE_TUMOR_MARKER_TEST,
    US_CORE_DIAGNOSTIC_REPORT_LAB,
    meta,
    tumor_marker_conformant,
)
from adapter.emit.terms import HER2_CONCEPT, RECEPTOR_STATUS_CONCEPTS, Terms
from adapter.emit.terms import terms as terms_of
from adapter.emit.wording import (
    conclusion,
    unused_note,
    warning_note,
)
from adapter.errors import OutputInvalid
from adapter.model import (
    Analyte,
    AssayRecord,
    Classification,
    Coding,
    Interval,
    Organization,
    Practitioner,
    ReceptorResult,
    ReportedObservation,
    ReportStatus,
    ResultStatus,
    SourceFormat,
)

JsonDict = dt.JsonDict

LAB_REPORT_CATEGORY: Final = {"coding": [{"system": V2_0074, "code": "LAB"}]}
LAB_OBSERVATION_CATEGORY: Final = {
    "coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}]
}

SUMMARY_STATUS: Final[dict[ReportStatus, ResultStatus]] = {
    # DiagnosticReport.status -> the summary Observation's status (Observation has no
    # partial/appended; "appended" is a kind of "amended" in FHIR's status hierarchy, and a
    # registered order that already carries results is reported as preliminary)
    ReportStatus.REGISTERED: ResultStatus.PRELIMINARY,
    ReportStatus.PARTIAL: ResultStatus.PRELIMINARY,
    ReportStatus.PRELIMINARY: ResultStatus.PRELIMINARY,
    ReportStatus.FINAL: ResultStatus.FINAL,
    ReportStatus.AMENDED: ResultStatus.AMENDED,
    ReportStatus.CORRECTED: ResultStatus.CORRECTED,
    ReportStatus.APPENDED: ResultStatus.AMENDED,
    ReportStatus.CANCELLED: ResultStatus.CANCELLED,
    ReportStatus.ENTERED_IN_ERROR: ResultStatus.ENTERED_IN_ERROR,
    ReportStatus.UNKNOWN: ResultStatus.UNKNOWN,
}


def dumps(bundle: dict[str, Any]) -> bytes:
    """JSON bytes; the same Bundle always gives the same bytes (dicts are built in fixed order)."""
    try:
        return orjson.dumps(bundle, default=_exact_decimal)
    except orjson.JSONEncodeError as exc:
        # orjson wraps what the default hook raised: surface our own error with its reason
        if isinstance(exc.__cause__, OutputInvalid):
            raise exc.__cause__ from exc
        raise OutputInvalid(str(exc), location="Bundle") from exc


def loads_exact(data: bytes) -> dict[str, Any]:
    """A Bundle ``dumps`` wrote, read back so that ``dumps`` gives its bytes again.

    Numbers with a fraction or an exponent are read as Decimals, as the emitter built them (orjson
    would read 2.30 as the float 2.3). Used to serve a stored Bundle's resources as emitted.
    """
    found: dict[str, Any] = json.loads(data, parse_float=Decimal)
    return found


def _exact_decimal(value: object) -> orjson.Fragment:
    # Decimals are written digit for digit ("2.30" stays 2.30): never through float
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise OutputInvalid(f"non-finite number {value}", location="Bundle")
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot serialise {type(value).__name__}")


# --------------------------------------------------------------------------------------------
# Assembly: shared Patients and Specimens are merged, record resources kept in order
# --------------------------------------------------------------------------------------------


@dataclass
class _SpecimenParts:
    patient_id: str
    specimen_id: str | None
    type: Coding | None
    body_sites: list[Coding] = field(default_factory=list)
    collected: str | None = None
    received: str | None = None
    method: Coding | None = None


@dataclass
class _Assembly:
    codesystem: str
    patient_details: parties.PatientDetails
    mappings_version: str | None
    patients: dict[str, parties.PatientParts] = field(default_factory=dict)
    organizations: dict[str, Organization] = field(default_factory=dict)
    practitioners: dict[str, Practitioner] = field(default_factory=dict)
    specimens: dict[str, _SpecimenParts] = field(default_factory=dict)
    record_resources: list[JsonDict] = field(default_factory=list)
    times: dt.DateTimeTexts = field(default_factory=dt.DateTimeTexts)
    hl7: bool = False  # the input was HL7 v2: errors name its fields too
    terms: Terms = field(init=False)

    def __post_init__(self) -> None:
        self.terms = terms_of(self.codesystem)

    def add_order(self, record: AssayRecord, ids: RecordIds) -> None:
        """The order's Patient, Specimen and reported Observations (its case adds the report)."""
        self.hl7 = record.origin.format is SourceFormat.HL7V2
        self.patients.setdefault(ids.patient, parties.PatientParts()).add(record.patient)
        specimen_id = self._add_specimen(record, ids)
        self.record_resources.extend(
            _observation(record, observation, observation_id, ids.patient, specimen_id, self.times)
            for observation, observation_id in zip(
                record.observations, ids.observations, strict=True
            )
        )

    def report_resources(
        self,
        record: AssayRecord,
        classification: Classification,
        ids: RecordIds,
        specimen_id: str | None,
    ) -> list[JsonDict]:
        """The HER2 summary, the ER / PgR status Observations and the DiagnosticReport of one
        classified record (a case's, ``emit/case_report.py``), in that order."""
        summary = _summary(record, classification, ids, specimen_id, self.terms, self.times)
        statuses = _receptor_statuses(
            record, classification, ids, specimen_id, self.terms, self.times
        )
        links = _ReportLinks(
            performers=self._performers(record.origin.performer),
            interpreters=[self._interpreter(person) for person in record.origin.interpreters],
            statuses=[status["id"] for status in statuses],
        )
        report = _report(
            record,
            classification,
            ids,
            specimen_id,
            self.terms,
            self.times,
            links,
            self.mappings_version,
        )
        return [summary, *statuses, report]

    def _performers(self, performer: Organization | None) -> list[JsonDict]:
        if performer is None or not parties.is_writable(performer):
            return []
        organization_id = parties.organization_id(performer)
        self.organizations.setdefault(organization_id, performer)
        return [dt.reference(organization_id)]

    def _interpreter(self, person: Practitioner) -> JsonDict:
        person_id = parties.practitioner_id(person)
        self.practitioners.setdefault(person_id, person)
        return dt.reference(person_id)

    def _add_specimen(self, record: AssayRecord, ids: RecordIds) -> str | None:
        specimen = record.specimen
        if not (specimen.id or specimen.type or specimen.body_sites):
            return None  # nothing known about it: no empty Specimen is written
        parts = self.specimens.setdefault(
            ids.specimen, _SpecimenParts(ids.patient, specimen.id, specimen.type)
        )
        parts.type = parts.type or specimen.type
        parts.body_sites.extend(s for s in specimen.body_sites if s not in parts.body_sites)
        if parts.collected is None and specimen.collected is not None:
            parts.collected = self.times(specimen.collected, "Specimen.collection.collected")
        if parts.received is None and specimen.received is not None:
            parts.received = self.times(specimen.received, "Specimen.receivedTime")
        parts.method = parts.method or specimen.collection_method
        return ids.specimen

    def entries(self) -> list[JsonDict]:
        people = [
            *(
                parties.patient(pid, parts, self.patient_details)
                for pid, parts in self.patients.items()
            ),
            *map(parties.organization, self.organizations.values()),
            *map(parties.practitioner, self.practitioners.values()),
        ]
        return [
            *(_entry(resource, parties.request(resource)) for resource in people),
            *(_entry(_specimen(sid, parts, self.hl7)) for sid, parts in self.specimens.items()),
            *map(_entry, self.record_resources),
        ]


@dataclass
class _ReportLinks:
    """What a DiagnosticReport references beyond its record's own Observations."""

    performers: list[JsonDict]
    interpreters: list[JsonDict]
    statuses: list[str]  # the ER / PgR status Observations


def _entry(resource: JsonDict, request: JsonDict | None = None) -> JsonDict:
    rid = resource["id"]
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": resource,
        "request": request or {"method": "PUT", "url": f"{resource['resourceType']}/{rid}"},
    }


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------


def _at(hl7: bool, field: str, element: str) -> str:
    """Where a value sits, for an error: the HL7 v2 field too when the input was HL7 v2."""
    return f"{field}: {element}" if hl7 else element


def _specimen(specimen_id: str, parts: _SpecimenParts, hl7: bool) -> JsonDict:
    resource: JsonDict = {"resourceType": "Specimen", "id": specimen_id}
    if parts.specimen_id:
        value = dt.identifier_value(parts.specimen_id, _at(hl7, "SPM-2", "Specimen.identifier"))
        resource["identifier"] = [{"value": value}]
    specimen_type = dt.codeable(parts.type, _at(hl7, "SPM-4", "Specimen.type"))
    if specimen_type:
        resource["type"] = specimen_type
    resource["subject"] = dt.reference(parts.patient_id)
    if parts.received:
        resource["receivedTime"] = parts.received
    collection: JsonDict = {}
    if parts.collected:
        collection["collectedDateTime"] = parts.collected
    method = dt.codeable(parts.method, _at(hl7, "SPM-7", "Specimen.collection.method"))
    if method:
        collection["method"] = method
    # R4 has one bodySite: the codings sent for the site (e.g. SNOMED and ICD-O) share it
    site_codings = [
        coded
        for site in parts.body_sites
        if (coded := dt.coding(site, _at(hl7, "SPM-8", "Specimen.collection.bodySite"))) is not None
    ]
    site_text = dt.text(next((s.display for s in parts.body_sites if s.display), None))
    site: JsonDict = {}
    if site_codings:
        site["coding"] = site_codings
    if site_text:
        site["text"] = site_text
    if site:
        collection["bodySite"] = site
    if collection:
        resource["collection"] = collection
    return resource


def _derived_head(
    record: AssayRecord,
    observation_id: str,
    code: JsonDict,
    patient_id: str,
    times: dt.DateTimeTexts,
) -> JsonDict:
    """The head of an Observation the adapter derives (the summary, ER / PgR status): the
    report's status and times, a LOINC code; ``meta`` is taken off again by one with no value."""
    resource: JsonDict = {
        "resourceType": "Observation",
        "id": observation_id,
        "meta": meta(MCODE_TUMOR_MARKER_TEST),
        "status": SUMMARY_STATUS[record.report_status].value,
        "category": [LAB_OBSERVATION_CATEGORY],
        "code": code,
        "subject": {"reference": f"urn:uuid:{patient_id}"},
    }
    if record.effective:
        resource["effectiveDateTime"] = times(record.effective, "Observation.effectiveDateTime")
    if record.issued is not None:
        resource["issued"] = times(record.issued, "Observation.issued")
    return resource


def _observation(
    record: AssayRecord,
    observation: ReportedObservation,
    observation_id: str,
    patient_id: str,
    specimen_id: str | None,
    times: dt.DateTimeTexts,
) -> JsonDict:
    provenance = observation.provenance
    at = provenance.locator  # named before the element in an error, never built otherwise
    sent = provenance.code
    # A result read from report text says so where a reader of the code looks first.
    label = (
        f"{sent.display} (read from report text)"
        if provenance.from_text and sent is not None and sent.display
        else None
    )
    code = dt.codeable(sent, "Observation.code", label, at) or {"text": observation.analyte.value}
    effective = observation.effective or record.effective
    effective_text = times(effective, "Observation.effectiveDateTime", at) if effective else None
    issued = times(record.issued, "Observation.issued") if record.issued is not None else None
    value_key, value = _value(observation, at)
    resource: JsonDict = {"resourceType": "Observation", "id": observation_id}
    if value_key != "dataAbsentReason":
        # TumorMarkerTest wants a value (1..1): a test with none (cancelled, no result) is no claim
        resource["meta"] = meta(MCODE_TUMOR_MARKER_TEST)
    resource["status"] = observation.status.value
    resource["category"] = [LAB_OBSERVATION_CATEGORY]
    resource["code"] = code
    resource["subject"] = {"reference": f"urn:uuid:{patient_id}"}
    if effective_text:
        resource["effectiveDateTime"] = effective_text
    if issued is not None:
        resource["issued"] = issued
    resource[value_key] = value
    if observation.interpretation:
        resource["interpretation"] = [
            {
                "coding": [
                    {
                        "system": OBSERVATION_INTERPRETATION,
                        "code": dt.code(sent_code, "Observation.interpretation", at),
                    }
                ]
            }
            for sent_code in observation.interpretation
        ]
    if observation.notes:
        notes = _notes(observation.notes)
        if notes:
            resource["note"] = notes
    if observation.method is not None:
        method = dt.codeable(observation.method, "Observation.method", at=at)
        if method:
            resource["method"] = method
    if specimen_id:
        resource["specimen"] = {"reference": f"urn:uuid:{specimen_id}"}
    return resource


def _notes(texts: Sequence[str]) -> list[JsonDict]:
    return [{"text": written} for note in texts if (written := dt.text(note))]


def _value(observation: ReportedObservation, at: str) -> tuple[str, JsonDict | str]:
    """value[x] in order of fidelity: coded, ratio, number, text; else why there is none."""
    if observation.coding is not None:
        concept = dt.codeable(
            observation.coding, "Observation.valueCodeableConcept", observation.text, at
        )
        if concept:
            return "valueCodeableConcept", concept
    if observation.ratio is not None:
        numerator, denominator = observation.ratio
        return "valueRatio", {
            "numerator": {"value": numerator},
            "denominator": {"value": denominator},
        }
    if observation.number is not None:
        amount = dt.quantity(
            observation.number, observation.unit, observation.ucum, "Observation.valueQuantity", at
        )
        if amount is not None:
            return "valueQuantity", amount
        # a range such as "1-10": FHIR Quantity cannot hold it, so the text is kept as sent
        text = dt.interval_text(observation.number) or dt.text(observation.text)
        if text:
            return "valueString", text
    text = dt.text(observation.text)
    if text:
        return "valueString", text
    return "dataAbsentReason", {"coding": [{"system": DATA_ABSENT_REASON, "code": "unknown"}]}


def _summary(
    record: AssayRecord,
    classification: Classification,
    ids: RecordIds,
    specimen_id: str | None,
    terms: Terms,
    times: dt.DateTimeTexts,
) -> JsonDict:
    resource = _derived_head(record, ids.summary, HER2_CONCEPT, ids.patient, times)
    resource.update(_summary_value(classification, terms))
    if not tumor_marker_conformant(resource):
        del resource["meta"]  # no official result to carry: not a TumorMarkerTest
    notes = [
        *record.notes,
        *map(unused_note, record.unused),
        *map(warning_note, record.warnings),
    ]
    if notes:
        resource["note"] = _notes(notes)
    if specimen_id:
        resource["specimen"] = {"reference": f"urn:uuid:{specimen_id}"}
    if ids.observations:
        resource["derivedFrom"] = [{"reference": f"urn:uuid:{oid}"} for oid in ids.observations]
    resource["component"] = _summary_components(classification, terms)
    return resource


def _summary_value(classification: Classification, terms: Terms) -> JsonDict:
    """The official result; without one, why there is none (not reported, not understood)."""
    if classification.official_result is not None:
        return {"valueCodeableConcept": terms.official_results[classification.official_result]}
    return {"dataAbsentReason": terms.absent_her2[classification.category]}


def _adapter_concept(codesystem: str, code: str, text: str | None = None) -> JsonDict:
    """One of the adapter's codes; ``text`` goes through the string check, since a flag's or a
    rule's reason quotes values as sent (an SN ratio ``1.5:1``, a worded score)."""
    written = dt.text(text)
    if written:
        return {"coding": [{"system": codesystem, "code": code}], "text": written}
    return {"coding": [{"system": codesystem, "code": code}]}


def _summary_components(classification: Classification, terms: Terms) -> list[JsonDict]:
    codes = terms.component_codes
    components: list[JsonDict] = [
        {
            "code": codes["her2-category"],
            "valueCodeableConcept": terms.categories[classification.category],
        }
    ]
    if classification.ish_group is not None:
        if not 1 <= classification.ish_group <= 5:
            raise OutputInvalid(
                f"ISH group {classification.ish_group} is not 1-5",
                location="Observation.component:ish-group",
            )
        components.append({"code": codes["ish-group"], "valueInteger": classification.ish_group})
    if classification.hr_status is not None:
        components.append(
            {
                "code": codes["hr-status"],
                "valueCodeableConcept": terms.hr_statuses[classification.hr_status],
            }
        )
    if classification.er_result is not None:
        components.append(
            {
                "code": codes["er-result"],
                "valueCodeableConcept": terms.receptor_calls[classification.er_result],
            }
        )
    if classification.pgr_result is not None:
        components.append(
            {
                "code": codes["pgr-result"],
                "valueCodeableConcept": terms.receptor_calls[classification.pgr_result],
            }
        )
    components.append(
        {"code": codes["tissue"], "valueCodeableConcept": terms.tissues[classification.tissue]}
    )
    cs = terms.codesystem
    components.extend(
        {
            "code": codes["flag"],
            "valueCodeableConcept": _adapter_concept(cs, flag.code.value, flag.reason),
        }
        for flag in classification.flags
    )
    components.extend(
        {
            "code": codes["rule"],
            "valueCodeableConcept": _adapter_concept(
                cs, rule.rule_id, f"{rule.reason} [{rule.citation}]"
            ),
        }
        for rule in classification.rules
    )
    components.append({"code": codes["guideline"], "valueString": classification.guideline})
    return components


def _receptor_statuses(
    record: AssayRecord,
    classification: Classification,
    ids: RecordIds,
    specimen_id: str | None,
    terms: Terms,
    times: dt.DateTimeTexts,
) -> list[JsonDict]:
    """ER and PgR status Observations (LOINC 16112-5 / 16113-3), one per receptor called.

    Trial matchers look for these, not for components of the HER2 summary: each carries the
    adapter's ASCO/CAP 2020 call and derives from the lab's own ER or PgR Observations. A
    receptor with no call (not reported, or undecidable) gets none.
    """
    found: list[JsonDict] = []
    calls = (("er", classification.er_result), ("pgr", classification.pgr_result))
    for receptor, call in calls:
        if call is None:
            continue
        resource = _derived_head(
            record,
            resource_id(ids.summary, f"{receptor}-status"),
            RECEPTOR_STATUS_CONCEPTS[receptor],
            ids.patient,
            times,
        )
        resource["valueCodeableConcept"] = terms.receptor_calls[call]
        details = _receptor_details(getattr(record, receptor), terms)
        if details:
            resource["component"] = details
        if specimen_id:
            resource["specimen"] = {"reference": f"urn:uuid:{specimen_id}"}
        sources = [
            oid
            for observation, oid in zip(record.observations, ids.observations, strict=True)
            if observation.analyte in _RECEPTOR_ANALYTES[receptor]
        ]
        if sources:
            resource["derivedFrom"] = [{"reference": f"urn:uuid:{oid}"} for oid in sources]
        found.append(resource)
    return found


def _receptor_details(result: ReceptorResult | None, terms: Terms) -> list[JsonDict]:
    """Allred score, H-score and intensity as the lab gave them (section 6: kept and shown)."""
    if result is None:
        return []
    found: list[JsonDict] = []
    for code, number in (("allred-score", result.allred), ("h-score", result.h_score)):
        value = _score_value(number) if number is not None else None
        if value is not None:
            found.append({"code": terms.component_codes[code], **value})
    if result.intensity:
        found.append(
            {
                "code": terms.component_codes["staining-intensity"],
                "valueString": result.intensity,
            }
        )
    return found


def _score_value(number: Interval) -> JsonDict | None:
    """A score as a Quantity when it is one number, else (a range, a bound) as written."""
    amount = dt.quantity(number, None, None, "Observation.component.valueQuantity")
    if amount is not None:
        return {"valueQuantity": amount}
    text = dt.interval_text(number)
    return {"valueString": text} if text else None


_RECEPTOR_ANALYTES: Final = {
    "er": frozenset({Analyte.ER_RESULT, Analyte.ER_PERCENT}),
    "pgr": frozenset({Analyte.PGR_RESULT, Analyte.PGR_PERCENT}),
}


def _report(
    record: AssayRecord,
    classification: Classification,
    ids: RecordIds,
    specimen_id: str | None,
    terms: Terms,
    times: dt.DateTimeTexts,
    links: _ReportLinks,
    mappings_version: str | None,
) -> JsonDict:
    origin = record.origin
    hl7 = origin.format is SourceFormat.HL7V2
    resource: JsonDict = {
        "resourceType": "DiagnosticReport",
        "id": ids.report,
        "meta": meta(US_CORE_DIAGNOSTIC_REPORT_LAB),
    }
    if mappings_version is not None:
        # Process metadata, not content: which mapping files read the message.
        resource["meta"]["tag"] = [
            {
                "system": MAPPINGS_VERSION_SYSTEM,
                "code": mappings_version,
                "display": MAPPINGS_VERSION_DISPLAY,
            }
        ]
    order_numbers = [
        {
            "type": {"coding": [{"system": V2_0203, "code": kind}]},
            "value": dt.identifier_value(
                number, "DiagnosticReport.identifier", field if hl7 else None
            ),
        }
        for kind, number, field in (
            ("PLAC", origin.placer_order, "ORC-2/OBR-2"),
            ("FILL", origin.filler_order, "ORC-3/OBR-3"),
        )
        if number
    ]
    if order_numbers:
        resource["identifier"] = order_numbers
    resource["status"] = record.report_status.value
    resource["category"] = [LAB_REPORT_CATEGORY]
    resource["code"] = _report_code(origin.report_code, origin.order_code, hl7) or HER2_CONCEPT
    resource["subject"] = {"reference": f"urn:uuid:{ids.patient}"}
    if record.effective is not None:
        resource["effectiveDateTime"] = times(
            record.effective, "DiagnosticReport.effectiveDateTime"
        )
    if record.issued is not None:
        resource["issued"] = times(record.issued, "DiagnosticReport.issued")
    if links.performers:
        resource["performer"] = links.performers
    if links.interpreters:
        resource["resultsInterpreter"] = links.interpreters
    if specimen_id:
        resource["specimen"] = [{"reference": f"urn:uuid:{specimen_id}"}]
    resource["result"] = [
        {"reference": f"urn:uuid:{oid}"}
        for oid in (*ids.observations, ids.summary, *links.statuses)
    ]
    resource["conclusion"] = dt.text(conclusion(record, classification))
    resource["conclusionCode"] = _conclusion_codes(classification, terms)
    return resource


def _report_code(loinc: Coding | None, local: Coding | None, hl7: bool) -> JsonDict | None:
    """The order code as sent, with the LOINC code the mappings give it first (US Core)."""
    at = "OBR-4" if hl7 else None
    concept = dt.codeable(local, "DiagnosticReport.code", at=at)
    if loinc is None:
        return concept
    coded = dt.coding(loinc, "DiagnosticReport.code.coding", at)
    codings = [c for c in (coded, *(concept or {}).get("coding", ())) if c]
    return {"coding": codings, "text": (concept or {}).get("text") or loinc.display}


def _conclusion_codes(classification: Classification, terms: Terms) -> list[JsonDict]:
    codes = [terms.categories[classification.category]]
    if classification.hr_status is not None:
        codes.append(terms.hr_statuses[classification.hr_status])
    if classification.official_result is not None:
        codes.append(terms.official_results[classification.official_result])
    return codes
