"""The normalised records every layer speaks.

``AssayRecord`` is what ingest produces from one ORDER_OBSERVATION group (HL7 v2) or one group of
FHIR Observations; ``Classification`` is what the classifier returns for it. Both are frozen
dataclasses with slots: plain data, no behaviour beyond small helpers on reported numbers. They
are built only by our own code from input that was already checked where it crossed in (the
ER7 tokenizer, the FHIR R4 models of ``adapter.ingest.fhir_validate``, the mapping files'
schema), so they are not validated again: pydantic, which did that, cost about a tenth of the
pipeline's time for about 47 records per message (docs/performance.md). mypy strict holds every
construction to the field types; times are timezone-aware (the readers attach the sender's or the
site's zone, never leave it to a guess).

Numbers are kept exactly as reported (``Decimal``, never float) and as intervals, because labs send
``<1``, ``>6`` and ``1-10`` as often as plain numbers, and the guidelines forbid rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

# --------------------------------------------------------------------------------------------
# Vocabularies
# --------------------------------------------------------------------------------------------


class SourceFormat(StrEnum):
    HL7V2 = "hl7v2"
    FHIR = "fhir"


class Tissue(StrEnum):
    BREAST = "breast"
    GASTROESOPHAGEAL = "gastroesophageal"
    UNKNOWN = "unknown"


class Procedure(StrEnum):
    """How the specimen was obtained; matters for gastroesophageal IHC scoring (Bartley 2016)."""

    SURGICAL = "surgical"
    BIOPSY = "biopsy"
    UNKNOWN = "unknown"


class ResultStatus(StrEnum):
    """FHIR Observation.status values (HL7 v2 OBX-11 is mapped onto these)."""

    REGISTERED = "registered"
    PRELIMINARY = "preliminary"
    FINAL = "final"
    AMENDED = "amended"
    CORRECTED = "corrected"
    CANCELLED = "cancelled"
    ENTERED_IN_ERROR = "entered-in-error"
    UNKNOWN = "unknown"


class ReportStatus(StrEnum):
    """FHIR DiagnosticReport.status values (HL7 v2 OBR-25 is mapped onto these)."""

    REGISTERED = "registered"
    PARTIAL = "partial"
    PRELIMINARY = "preliminary"
    FINAL = "final"
    AMENDED = "amended"
    CORRECTED = "corrected"
    APPENDED = "appended"
    CANCELLED = "cancelled"
    ENTERED_IN_ERROR = "entered-in-error"
    UNKNOWN = "unknown"


class IhcScore(StrEnum):
    ZERO = "0"
    ONE = "1+"
    TWO = "2+"
    THREE = "3+"


class Ihc0Subtype(StrEnum):
    """DESTINY-Breast06 wording for IHC 0: no staining (null) or faint staining in >0% and ≤10%."""

    NULL = "null"
    ULTRALOW = "ultralow"
    UNKNOWN = "unknown"


class IshProbe(StrEnum):
    DUAL = "dual"
    SINGLE = "single"


class Interpretation(StrEnum):
    """A result as the lab worded it (kept for audit; never trusted over the rules)."""

    POSITIVE = "positive"
    NEGATIVE = "negative"
    EQUIVOCAL = "equivocal"
    INDETERMINATE = "indeterminate"
    LOW_POSITIVE = "low-positive"
    HER2_LOW = "her2-low"
    HER2_ULTRALOW = "her2-ultralow"
    HER2_NULL = "her2-null"


class Analyte(StrEnum):
    """What one reported value measures; mapping files map lab codes onto these."""

    HER2_IHC = "her2-ihc"
    HER2_IHC0_SUBTYPE = "her2-ihc0-subtype"
    HER2_IHC_STAINED_PERCENT = "her2-ihc-stained-percent"
    HER2_ISH = "her2-ish"
    HER2_INTERPRETATION = "her2-interpretation"
    HER2_CEP17_RATIO = "her2-cep17-ratio"
    HER2_COPIES = "her2-copies"
    CEP17_COPIES = "cep17-copies"
    ISH_CELLS_COUNTED = "ish-cells-counted"
    ISH_AMPLIFIED_PERCENT = "ish-amplified-percent"
    ISH_RECOUNT = "ish-recount"
    ER_RESULT = "er-result"
    ER_PERCENT = "er-percent"
    PGR_RESULT = "pgr-result"
    PGR_PERCENT = "pgr-percent"
    # a pathology report's text (final diagnosis, synoptic, addendum): read for statements
    REPORT_TEXT = "report-text"


IHC_ANALYTES = frozenset(
    {Analyte.HER2_IHC, Analyte.HER2_IHC0_SUBTYPE, Analyte.HER2_IHC_STAINED_PERCENT}
)
"""The values that make up a HER2 IHC result."""
ISH_ANALYTES = frozenset(
    {
        Analyte.HER2_ISH,
        Analyte.HER2_CEP17_RATIO,
        Analyte.HER2_COPIES,
        Analyte.CEP17_COPIES,
        Analyte.ISH_CELLS_COUNTED,
        Analyte.ISH_AMPLIFIED_PERCENT,
        Analyte.ISH_RECOUNT,
    }
)
"""The values that make up a HER2 ISH result (counts, ratio, words, recount)."""


# --------------------------------------------------------------------------------------------
# Reported values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Interval:
    """A reported number: a point (``95``), a bound (``<1``, ``>=6``) or a range (``1-10``).

    ``None`` for a bound means unbounded on that side. ``text`` is the value as the lab sent it.
    """

    low: Decimal | None = None
    low_inclusive: bool = True
    high: Decimal | None = None
    high_inclusive: bool = True
    text: str = ""

    @classmethod
    def point(cls, value: Decimal, text: str | None = None) -> Interval:
        return cls(low=value, high=value, text=str(value) if text is None else text)

    @property
    def value(self) -> Decimal | None:
        """The exact value when the interval is a single point, else ``None``."""
        if self.low is not None and self.low == self.high:
            return self.low
        return None

    def within(self, band: Interval) -> bool:
        """True when every value this interval admits lies inside ``band``."""
        return _lower_within(self, band) and _upper_within(self, band)


def _lower_within(inner: Interval, outer: Interval) -> bool:
    if outer.low is None:
        return True
    if inner.low is None or inner.low < outer.low:
        return False
    return inner.low > outer.low or outer.low_inclusive or not inner.low_inclusive


def _upper_within(inner: Interval, outer: Interval) -> bool:
    if outer.high is None:
        return True
    if inner.high is None or inner.high > outer.high:
        return False
    return inner.high < outer.high or outer.high_inclusive or not inner.high_inclusive


@dataclass(frozen=True, slots=True, kw_only=True)
class Coding:
    system: str | None = None
    code: str | None = None
    display: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Identifier:
    value: str
    system: str | None = None
    type_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """Where one value came from: enough to find it again in the original message."""

    locator: str  # "OBX[3]" (the third OBX of the message) or "Observation/abc"
    code: Coding | None = None  # the incoming result code (OBX-3 / Observation.code)
    sub_id: str | None = None  # OBX-4
    value_type: str | None = None  # OBX-2, or the FHIR value[x] type
    value_text: str | None = None  # the value as sent
    # read from report text (OBX TX/FT, DiagnosticReport.conclusion / presentedForm): the
    # locator names the line, value_text holds it
    from_text: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestWarning:
    """Something odd in the input that did not stop processing. No patient data in ``message``."""

    code: str
    message: str
    locator: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportedObservation:
    """One value as the lab reported it; emitted as one FHIR Observation with its code kept."""

    analyte: Analyte
    provenance: Provenance
    status: ResultStatus
    number: Interval | None = None
    ratio: tuple[Decimal, Decimal] | None = None  # numerator, denominator (SN ``^2.3^:^1``)
    text: str | None = None
    coding: Coding | None = None
    unit: str | None = None  # as sent (OBX-6, Quantity.unit)
    ucum: str | None = None  # the UCUM code, when the mappings know the unit
    interpretation: tuple[str, ...] = ()  # v3-ObservationInterpretation codes (OBX-8)
    notes: tuple[str, ...] = ()
    effective: datetime | None = None
    method: Coding | None = None  # OBX-17 / Observation.method (the assay, antibody clone, probe)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnusedResult:
    """A result that was read but not used for classification, and why.

    ``analyte`` is set when the result code was recognised; ``not_understood`` when such a
    result carried a value the mappings could not read (the classifier then reports the
    analyte as not understood, with this result's position, rather than as absent).
    """

    provenance: Provenance
    reason: str
    analyte: Analyte | None = None
    not_understood: bool = False


# --------------------------------------------------------------------------------------------
# The assay record
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    format: SourceFormat
    message_id: str  # MSH-10, or the FHIR Bundle identifier / resource id
    sending_application: str | None = None
    sending_facility: str | None = None
    placer_order: str | None = None
    filler_order: str | None = None
    group_index: int = 1  # 1-based ORDER_OBSERVATION group (or FHIR record) within the message
    set_id: str | None = None  # OBR-1
    # the order this one was placed for (OBR-29 parent: a reflex or reference-lab order)
    parent_placer: str | None = None
    parent_filler: str | None = None
    hl7_version: str | None = None
    order_code: Coding | None = None  # OBR-4 / DiagnosticReport.code
    report_code: Coding | None = None  # the LOINC code the mappings give for ``order_code``
    performer: Organization | None = None
    interpreters: tuple[Practitioner, ...] = ()  # OBR-32


class AdministrativeGender(StrEnum):
    """FHIR Patient.gender (HL7 v2 PID-8 is mapped onto these)."""

    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonName:
    family: str | None = None
    given: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientRef:
    """The patient as the sender named them: identifiers, and demographics a receiver matches on.

    Name, sex and birth date are read so that an EHR feed can carry them (``patient_details =
    "full"``); whether they leave the adapter is decided in one place, the Patient builder
    (``adapter.emit.parties``). Addresses, phone numbers and the like are never read.
    """

    identifiers: tuple[Identifier, ...] = ()
    fhir_reference: str | None = None  # as sent by a FHIR sender ("Patient/123")
    name: PersonName | None = None
    gender: AdministrativeGender | None = None
    birth_date: str | None = None  # FHIR date: YYYY, YYYY-MM or YYYY-MM-DD


@dataclass(frozen=True, slots=True, kw_only=True)
class Practitioner:
    """A person named in the order (OBR-32 principal result interpreter)."""

    identifier: Identifier | None = None
    name: PersonName | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Organization:
    """The lab that issued the result (MSH-4 sending facility, or OBX-23 performing organisation).

    ``uri`` is its OID or URI when the sender gives one or the ``[assigners]`` table knows it.
    """

    name: str
    uri: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Specimen:
    id: str | None = None
    type: Coding | None = None
    body_sites: tuple[Coding, ...] = ()
    tissue: Tissue = Tissue.UNKNOWN
    procedure: Procedure = Procedure.UNKNOWN
    collected: datetime | None = None  # SPM-17
    received: datetime | None = None  # SPM-18
    collection_method: Coding | None = None  # SPM-7 / Specimen.collection.method


@dataclass(frozen=True, slots=True, kw_only=True)
class IhcResult:
    score: IhcScore | None = None
    ihc0_subtype: Ihc0Subtype | None = None
    stained_percent: Interval | None = None  # % of cells with (faint) membrane staining
    # the word beside the score, e.g. "Negative" in "Negative (3+)"
    stated: Interpretation | None = None
    indeterminate_reason: str | None = None  # the lab said it could not be scored
    # the order's IHC results disagree (1+ and 3+): none is used, and this is not a failed test
    conflict: str | None = None
    heterogeneity_noted: bool = False  # the lab's words call the staining heterogeneous
    provenance: tuple[Provenance, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class IshCount:
    """One ISH count (a first count, or a recount) as reported."""

    ratio: Interval | None = None
    her2_copies: Interval | None = None
    cep17_copies: Interval | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IshResult:
    # probe None: not stated (dual assumed only when CEP17 or a ratio is given)
    probe: IshProbe | None = None
    ratio: Interval | None = None
    her2_copies: Interval | None = None
    cep17_copies: Interval | None = None
    cells_counted: int | None = None
    recount_done: bool = False  # the message says a recount was done (words, a second count)
    recount_cells: int | None = None  # cells counted in the recount, when the lab gives it
    # % amplified cells, or a separately counted sub-population
    amplified_percent: Interval | None = None
    # counts before the last one (ratio/copies above), when they differ from it
    earlier_counts: tuple[IshCount, ...] = ()
    stated: Interpretation | None = None
    indeterminate_reason: str | None = None
    # the order's ISH results disagree ("amplified" and "not amplified"): adjudication, not a pick
    conflict: str | None = None
    heterogeneity_noted: bool = False  # the lab's words (a note, the method) say heterogeneous
    provenance: tuple[Provenance, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceptorResult:
    """ER or PgR."""

    percent: Interval | None = None
    stated: Interpretation | None = None
    indeterminate_reason: str | None = None
    conflict: str | None = None  # the order's results or percentages for it disagree
    # as the lab gave them in words ("strong intensity, Allred 8"); never decide the call
    allred: Interval | None = None
    h_score: Interval | None = None
    intensity: str | None = None
    provenance: tuple[Provenance, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LabInterpretation:
    """The lab's own overall HER2 call (48676-1 and the like)."""

    stated: Interpretation | None = None
    coding: Coding | None = None
    text: str | None = None
    provenance: tuple[Provenance, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AssayRecord:
    origin: Origin
    patient: PatientRef = PatientRef()
    specimen: Specimen = Specimen()
    report_status: ReportStatus = ReportStatus.UNKNOWN
    effective: datetime | None = None
    issued: datetime | None = None
    her2_ihc: IhcResult | None = None
    her2_ish: IshResult | None = None
    er: ReceptorResult | None = None
    pgr: ReceptorResult | None = None
    lab_interpretation: LabInterpretation | None = None
    observations: tuple[ReportedObservation, ...] = ()
    unused: tuple[UnusedResult, ...] = ()
    notes: tuple[str, ...] = ()
    warnings: tuple[IngestWarning, ...] = ()


# --------------------------------------------------------------------------------------------
# The classification
# --------------------------------------------------------------------------------------------


class OfficialResult(StrEnum):
    """The ASCO/CAP result (2018, affirmed 2023)."""

    POSITIVE = "positive"
    EQUIVOCAL = "equivocal"
    NEGATIVE = "negative"
    INDETERMINATE = "indeterminate"


class Category(StrEnum):
    """The therapy-relevant label; HER2-low/ultralow/null are not official ASCO/CAP results."""

    HER2_POSITIVE = "HER2-positive"
    HER2_LOW = "HER2-low"
    HER2_ULTRALOW = "HER2-ultralow"
    HER2_NULL = "HER2-null"
    HER2_NEGATIVE = "HER2-negative"
    HER2_EQUIVOCAL = "HER2-equivocal"
    INDETERMINATE = "indeterminate"  # the test failed or could not be assessed (ASCO/CAP)
    HER2_NOT_REPORTED = "HER2-not-reported"  # no HER2 result at all (an ER/PgR-only order)
    HER2_NOT_UNDERSTOOD = "HER2-not-understood"  # a HER2 value was sent but could not be read


class ReceptorCall(StrEnum):
    NEGATIVE = "negative"
    LOW_POSITIVE = "low-positive"
    POSITIVE = "positive"


class HrStatus(StrEnum):
    POSITIVE = "HR-positive"
    LOW_POSITIVE = "HR-low-positive"
    NEGATIVE = "HR-negative"


class FlagCode(StrEnum):
    DISCORDANCE = "discordance"
    HETEROGENEITY = "heterogeneity"
    PENDING_WORKUP = "pending-workup"
    SCORE_MISSING = "score-missing"
    INCOMPLETE_ISH = "incomplete-ish"
    UNDECIDABLE_VALUE = "undecidable-value"  # a range or bound that straddles a threshold
    TISSUE_UNKNOWN = "tissue-unknown"
    LAB_INTERPRETATION_DIFFERS = "lab-interpretation-differs"
    RECEPTOR_UNDETERMINED = "receptor-undetermined"
    ER_LOW_POSITIVE = "er-low-positive"
    LAB_STATED_ONLY = "lab-stated-only"  # HER2 rests on the lab's word, no score or count
    ER_PERCENT_MISSING = "er-percent-missing"  # ER stated positive: low positive not excluded
    CODE_DISPLAY_MISMATCH = "code-display-mismatch"  # a code's display names another test
    CODE_INFERRED = "code-inferred"  # a local code recognised from its display text
    PROBE_INFERRED = "probe-inferred"  # single probe: HER2 copies, no CEP17 and no ratio at all
    PROBE_CONFLICTING = "probe-conflicting"  # single and dual probe both stated: the counts decide
    READ_FROM_TEXT = "read-from-text"  # a result was read from report text: a reviewer checks


@dataclass(frozen=True, slots=True, kw_only=True)
class Flag:
    code: FlagCode
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FiredRule:
    rule_id: str
    citation: str
    reason: str  # one line, with the values used


@dataclass(frozen=True, slots=True, kw_only=True)
class Classification:
    guideline: str  # the guideline versions the result was produced under
    tissue: Tissue
    # None when there is no HER2 result to classify (HER2-not-reported / HER2-not-understood)
    official_result: OfficialResult | None
    category: Category
    ish_group: int | None = None  # breast dual-probe group 1-5
    er_result: ReceptorCall | None = None
    pgr_result: ReceptorCall | None = None
    hr_status: HrStatus | None = None
    flags: tuple[Flag, ...] = ()
    rules: tuple[FiredRule, ...] = ()
    # comments the guideline asks to report with this result (ASCO/CAP 2018 groups 2-4)
    comments: tuple[str, ...] = ()
