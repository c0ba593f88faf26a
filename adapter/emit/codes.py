"""Code tables the emitters use: plain data, no logic beyond a lookup.

Kept apart from the builders so that a reviewer can check the vocabulary against its source
(HL7 table 0396, UCUM, SNOMED CT, HL7 table 0357) without reading any code.
"""

from __future__ import annotations

from typing import Final

LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
UCUM: Final = "http://unitsofmeasure.org"
V2_0074: Final = "http://terminology.hl7.org/CodeSystem/v2-0074"
V2_0203: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
OBSERVATION_INTERPRETATION: Final = (
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
)
DATA_ABSENT_REASON: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

MESSAGE_ID_SYSTEM: Final = "urn:her2-adapter:message-id"
MAPPINGS_VERSION_SYSTEM: Final = "urn:her2-adapter:mappings-version"
"""``DiagnosticReport.meta.tag`` system: the code is ``Mappings.version`` (a content hash)."""
MAPPINGS_VERSION_DISPLAY: Final = "version of the mapping files that read the message"
"""``Bundle.identifier.system``: the value is the incoming message id (MSH-10 or FHIR id)."""

HER2_INTERPRETATION: Final = (LOINC, "48676-1", "HER2 [Interpretation] in Tissue")
"""Code of the summary Observation, and of the DiagnosticReport when the order has no code."""

RECEPTOR_STATUS_CODES: Final = {
    # the ER / PgR status Observations of their own (mCODE TumorMarkerTest): LOINC interpretation
    "er": (LOINC, "16112-5", "Estrogen receptor [Interpretation] in Tissue"),
    "pgr": (LOINC, "16113-3", "Progesterone receptor [Interpretation] in Tissue"),
}

SNOMED_QUALIFIERS: Final[dict[str, tuple[str, str]]] = {
    # an official result or receptor call value -> SNOMED CT qualifier value (code, display);
    # "low-positive" (ER 1-10 %) has no SNOMED CT concept and is coded in the adapter's only
    "positive": ("10828004", "Positive"),
    "negative": ("260385009", "Negative"),
    "equivocal": ("42425007", "Equivocal"),
    "indeterminate": ("82334004", "Indeterminate"),
}

HER2_ABSENT_REASON: Final[dict[str, tuple[str, str]]] = {
    # a category without an official HER2 result -> data-absent-reason (code, display) for the
    # summary Observation: no HER2 test in this order, or a value the mappings could not read
    "HER2-not-reported": ("not-performed", "Not Performed"),
    "HER2-not-understood": ("error", "Error"),
}

HL7_CONDITIONS: Final[dict[str, str]] = {
    # HL7 table 0357 (message error condition codes), for ERR-3 / ERR-1
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}

SUMMARY_COMPONENTS: Final[dict[str, str]] = {
    # component codes of the summary Observation in the adapter CodeSystem -> display
    "her2-category": "HER2 category (therapy-relevant label, not an official ASCO/CAP result)",
    "ish-group": "HER2 dual-probe ISH group (ASCO/CAP 2018)",
    "hr-status": "Hormone receptor status",
    "er-result": "ER result (ASCO/CAP 2020)",
    "pgr-result": "PgR result (ASCO/CAP 2020)",
    "tissue": "Tissue the HER2 rules were applied for",
    "flag": "Flag for review",
    "rule": "Classification rule that fired",
    "guideline": "Guideline versions applied",
    # on the ER / PgR status Observations: what the lab gave beside the percentage, kept and
    # shown, never deciding the call (her2-rules.md section 6); LOINC has no code for these
    "allred-score": "Allred score as reported (0-8; never decides the call)",
    "h-score": "H-score as reported (0-300; never decides the call)",
    "staining-intensity": "Average staining intensity as reported (never decides the call)",
}
