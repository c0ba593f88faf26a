"""Lab knowledge as data: loads and validates ``mappings/*.toml`` and answers look-ups.

A mapping directory holds default tables (``*.toml`` at the top) and per-sender overrides
(``senders/*.toml``). Every file has the same shape (see ``docs/mapping-files.md``); a sender file
adds a ``[sender]`` table saying whom it applies to, and its entries win over the defaults.

Files are tables only: codes, wordings, units and status maps. The one piece of structure the
adapter understands in a wording is "WORD (SCORE)" (``Negative (1+)``), whose two parts are each
looked up in the same tables, so that a contradiction like ``Negative (3+)`` reaches the classifier
instead of being hidden behind a table entry.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from adapter.errors import MappingFileError
from adapter.model import (
    AdministrativeGender,
    Analyte,
    Ihc0Subtype,
    IhcScore,
    Interpretation,
    IshProbe,
    Procedure,
    ReportStatus,
    ResultStatus,
    Tissue,
)

LOCAL_SYSTEM_PREFIX = "urn:her2-adapter:local:"
DEFAULT_SET_NAME = "default"  # the merged defaults, used when no sender file applies
"""FHIR system given to an HL7 v2 coding system name that no mapping file knows."""

ASSIGNER_FALLBACK_PREFIX = "urn:her2-adapter:assigner:"
"""Identifier system for an assigning authority named in no ``[assigners]`` entry."""

LOINC_SYSTEM = "http://loinc.org"

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


# --------------------------------------------------------------------------------------------
# File schema (what a mapping file may contain)
# --------------------------------------------------------------------------------------------


class _Table(BaseModel):
    # defer_build: a start that finds its mappings cached (adapter/mapping_cache.py) never
    # validates a file, so pydantic builds a table's schema only when one is validated.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class CodeEntry(_Table):
    """A result code and the analyte it carries."""

    system: NonEmpty
    code: NonEmpty
    analyte: Analyte
    display: str | None = None
    tissue: Tissue | None = None  # the code's own scope ("in Breast cancer specimen")
    probe: IshProbe | None = None  # a code that only single-probe assays use, say


class ExcludedCode(_Table):
    """A code that looks like HER2 but must never be classified (serum HER2)."""

    system: NonEmpty
    code: NonEmpty
    reason: NonEmpty


class Answer(_Table):
    """What a wording or an answer code means. Unset fields say nothing."""

    text: NonEmpty | None = None  # matched case- and space-insensitively
    system: str | None = None  # with ``code``: a coded answer (LOINC LA..., SNOMED, CAP eCC)
    code: str | None = None
    score: IhcScore | None = None
    ihc0_subtype: Ihc0Subtype | None = None
    stated: Interpretation | None = None
    indeterminate: bool = False
    recount: bool = False
    probe: IshProbe | None = None

    def merged(self, other: Answer) -> Answer | None:
        """Both parts of "WORD (SCORE)" together; ``None`` when they set one field differently."""
        values: dict[str, Any] = {}
        for name in ("score", "ihc0_subtype", "stated", "probe"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine != theirs:
                return None
            values[name] = mine if mine is not None else theirs
        return Answer(
            indeterminate=self.indeterminate or other.indeterminate,
            recount=self.recount or other.recount,
            **values,
        )


class Method(StrEnum):
    """The test a value or a report line names (IHC, or any in situ hybridisation)."""

    IHC = "ihc"
    ISH = "ish"


class Quantity(StrEnum):
    """What a number next to one of these words counts ("ratio 2.3", "Allred 7")."""

    RATIO = "her2-cep17-ratio"
    HER2_COPIES = "her2-copies"
    CEP17_COPIES = "cep17-copies"
    CELLS_COUNTED = "ish-cells-counted"
    AMPLIFIED_PERCENT = "ish-amplified-percent"
    ALLRED = "allred"
    H_SCORE = "h-score"
    PERCENT = "percent"


class LabelTarget(StrEnum):
    """What a label before (or after) a value names; ``other`` is a marker never classified."""

    HER2 = "her2"
    ER = "er"
    PGR = "pgr"
    OTHER = "other"


class Intensity(StrEnum):
    FAINT = "faint"
    WEAK = "weak"
    MODERATE = "moderate"
    STRONG = "strong"


class GrammarWords(_Table):
    """The words the value grammar reads besides the ``[[answers]]`` (``[grammar]``).

    Each list holds phrases, matched case-insensitively on whole words. A value, note or report
    line is read only when every word in it is known here or in the answers.
    """

    filler: tuple[NonEmpty, ...] = ()  # words that say nothing ("of", "tumour cells")
    score_words: tuple[NonEmpty, ...] = ()  # "score": an IHC score follows
    range_words: tuple[NonEmpty, ...] = ()  # "to" in "1 to 10%"
    negations: tuple[NonEmpty, ...] = ()  # "not", "no": a statement holding one says nothing
    deferrals: tuple[NonEmpty, ...] = ()  # "to follow", "pending": no result yet
    heterogeneity: tuple[NonEmpty, ...] = ()  # the lab notes heterogeneous staining/amplification
    recounts: tuple[NonEmpty, ...] = ()  # "recount", "additional observer": a recount was done
    methods: dict[Method, tuple[NonEmpty, ...]] = Field(default_factory=dict)  # incl. clones
    quantities: dict[Quantity, tuple[NonEmpty, ...]] = Field(default_factory=dict)
    intensities: dict[Intensity, tuple[NonEmpty, ...]] = Field(default_factory=dict)
    labels: dict[LabelTarget, tuple[NonEmpty, ...]] = Field(default_factory=dict)
    decimal_comma: bool | None = None  # "2,3" is 2.3 (a language or a lab says so)


class SiteCode(_Table):
    """A body-site or specimen-type code and the tissue it means."""

    system: NonEmpty
    code: NonEmpty
    tissue: Tissue
    display: str | None = None


class ReportCode(_Table):
    """An order code (OBR-4, DiagnosticReport.code) and the LOINC code receivers expect for it."""

    system: NonEmpty
    code: NonEmpty
    loinc: NonEmpty
    display: NonEmpty


class SenderMatch(_Table):
    """Whom a sender file applies to: HL7 v2 MSH-3/MSH-4 namespace ids, or FHIR sources."""

    name: NonEmpty
    applications: tuple[NonEmpty, ...] = ()
    facilities: tuple[NonEmpty, ...] = ()
    fhir_sources: tuple[NonEmpty, ...] = ()
    default_tissue: Tissue | None = None  # a breast-only lab may say so once, here
    languages: tuple[NonEmpty, ...] = ()  # files of mappings/languages/ this lab writes in


class DisplayCheck(_Table):
    """What the display text of a result code for one analyte may name (codes.md: the display
    is a check on the code). Marker and method keys are those of ``display_markers`` and
    ``display_methods``."""

    analyte: Analyte
    markers: tuple[NonEmpty, ...]  # the display may name these markers (and no other only)
    method: NonEmpty | None = None  # the method the display may name, when it names one
    # a local code without a sender file whose display names exactly ``markers[0]`` and
    # ``method`` is recognised as this analyte (flag code-inferred)
    infer: bool = False


class MappingFile(_Table):
    description: str | None = None
    sender: SenderMatch | None = None
    systems: dict[NonEmpty, NonEmpty] = Field(default_factory=dict)
    codes: tuple[CodeEntry, ...] = ()
    excluded: tuple[ExcludedCode, ...] = ()
    answers: tuple[Answer, ...] = ()
    grammar: GrammarWords = Field(default_factory=GrammarWords)  # not built at import
    # Before [grammar] recounts: still read, as recounts and as negations of the grammar
    recount_phrases: tuple[NonEmpty, ...] = ()
    recount_negations: tuple[NonEmpty, ...] = ()
    sites: tuple[SiteCode, ...] = ()
    tissue_words: dict[Tissue, tuple[NonEmpty, ...]] = Field(default_factory=dict)
    procedure_words: dict[Procedure, tuple[NonEmpty, ...]] = Field(default_factory=dict)
    observation_status: dict[NonEmpty, ResultStatus] = Field(default_factory=dict)
    report_status: dict[NonEmpty, ReportStatus] = Field(default_factory=dict)
    abnormal_flags: dict[NonEmpty, NonEmpty] = Field(default_factory=dict)
    units: dict[NonEmpty, NonEmpty] = Field(default_factory=dict)
    display_markers: dict[NonEmpty, tuple[NonEmpty, ...]] = Field(default_factory=dict)
    display_methods: dict[NonEmpty, tuple[NonEmpty, ...]] = Field(default_factory=dict)
    display_checks: tuple[DisplayCheck, ...] = ()
    # words that make a display a quantity or a part (a ratio, copies, a percentage) that a
    # marker and a method alone cannot place: such a local code is never inferred
    display_infer_blockers: tuple[NonEmpty, ...] = ()
    # CX-4 / HD namespace id (an assigning authority, a sending facility) -> identifier system URI
    assigners: dict[NonEmpty, NonEmpty] = Field(default_factory=dict)
    report_codes: tuple[ReportCode, ...] = ()
    administrative_sex: dict[NonEmpty, AdministrativeGender] = Field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def load_file(path: Path) -> MappingFile:
    """Parse and validate one file; a bad file fails naming the file, the key and the problem."""
    import tomllib  # only when files are read: not when they come from the cache

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingFileError(f"cannot read: {exc}", file=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise MappingFileError(f"not valid TOML: {exc}", file=str(path)) from exc
    try:
        parsed = MappingFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise MappingFileError(first["msg"], file=str(path), key=key) from exc
    _check_consistency(parsed, path)
    return parsed


def _check_consistency(parsed: MappingFile, path: Path) -> None:
    seen: dict[tuple[str, str], Analyte] = {}
    for index, entry in enumerate(parsed.codes):
        key = (entry.system, entry.code)
        if key in seen and seen[key] != entry.analyte:
            raise MappingFileError(
                f"code {entry.code} is mapped to both {seen[key]} and {entry.analyte}",
                file=str(path),
                key=f"codes.{index}",
            )
        seen[key] = entry.analyte
    wordings: dict[str, Answer] = {}
    for index, answer in enumerate(parsed.answers):
        if answer.text is not None:
            wording = _normalise(answer.text)
            earlier = wordings.get(wording)
            if earlier is not None and _meaning(earlier) != _meaning(answer):
                raise MappingFileError(
                    f"wording {answer.text!r} is given two different meanings",
                    file=str(path),
                    key=f"answers.{index}",
                )
            wordings[wording] = answer
        coded = answer.system is not None and answer.code is not None
        if (answer.text is None) == (not coded):
            raise MappingFileError(
                "an answer needs either text, or both system and code (not both forms)",
                file=str(path),
                key=f"answers.{index}",
            )
    grammar: dict[str, GrammarPart] = {}
    for phrase, meaning in _grammar_phrases(parsed.grammar):
        if grammar.setdefault(phrase, meaning) != meaning or phrase in wordings:
            raise MappingFileError(
                f"grammar word {phrase!r} is given two different meanings",
                file=str(path),
                key=f"grammar.{meaning[0]}",
            )
    for flag in parsed.abnormal_flags.values():
        if flag not in V3_INTERPRETATION_CODES:
            raise MappingFileError(
                f"{flag!r} is not a v3-ObservationInterpretation code",
                file=str(path),
                key=f"abnormal_flags.{flag}",
            )


def _meaning(answer: Answer) -> Answer:
    return answer.model_copy(update={"text": None, "system": None, "code": None})


V3_INTERPRETATION_CODES = frozenset(
    (
        *("CAR", "B", "D", "U", "W", "<", ">", "AC", "IE", "QCF", "TOX"),
        *("A", "AA", "HH", "LL", "H", "H>", "HU", "L", "L<", "LU", "N"),
        *("I", "MS", "NCL", "NS", "R", "SDD", "S", "VS", "EX", "HX", "LX"),
        *("IND", "E", "NEG", "ND", "POS", "DET", "EXP", "UNE", "OBX", "RR", "WR"),
    )
)
"""Codes of http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation (R4)."""


# --------------------------------------------------------------------------------------------
# The merged view for one sender
# --------------------------------------------------------------------------------------------

_V = TypeVar("_V")


class _Memo(Generic[_V]):
    """What a text look-up answered before: the same wordings arrive in message after message.

    Bounded, since free text from senders (notes, values) is unbounded: past ``LIMIT`` texts it
    forgets everything and starts again.
    """

    LIMIT = 4096
    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[str, _V] = {}

    def get(self, text: str, look_up: Callable[[str], _V]) -> _V:
        known = self._known
        if text in known:
            return known[text]
        found = look_up(text)
        if len(known) >= self.LIMIT:
            known.clear()
        known[text] = found
        return found


GrammarPart = tuple[str, StrEnum | None]
"""One grammar phrase's meaning: its kind (a ``GrammarWords`` key) and value (a method, ...)."""


@dataclass(frozen=True)
class GrammarTable:
    """The ``[grammar]`` words of every file merged: normalised phrase -> its meaning."""

    phrases: Mapping[str, GrammarPart]
    decimal_comma: bool


_GRAMMAR_LISTS = (
    "filler",
    "score_words",
    "range_words",
    "negations",
    "deferrals",
    "heterogeneity",
    "recounts",
)
_GRAMMAR_TABLES = ("methods", "quantities", "intensities", "labels")


def _grammar_phrases(words: GrammarWords) -> Iterable[tuple[str, GrammarPart]]:
    for kind in _GRAMMAR_LISTS:
        for phrase in getattr(words, kind):
            yield _normalise(phrase), (kind, None)
    for kind in _GRAMMAR_TABLES:
        table: dict[StrEnum, tuple[str, ...]] = getattr(words, kind)
        for value, phrases in table.items():
            for phrase in phrases:
                yield _normalise(phrase), (kind, value)


@dataclass(frozen=True)
class MappingSet:
    """Defaults plus (at most) one sender's overrides, indexed for look-up."""

    name: str
    default_tissue: Tissue | None
    systems: Mapping[str, str]
    codes: Mapping[tuple[str, str], CodeEntry]
    excluded: Mapping[tuple[str, str], str]
    text_answers: Mapping[str, Answer]
    code_answers: Mapping[tuple[str, str], Answer]
    sites: Mapping[tuple[str, str], Tissue]
    tissue_words: tuple[tuple[str, Tissue], ...]
    procedure_words: tuple[tuple[str, Procedure], ...]
    observation_status: Mapping[str, ResultStatus]
    report_status: Mapping[str, ReportStatus]
    abnormal_flags: Mapping[str, str]
    units: Mapping[str, str]
    display_markers: tuple[tuple[str, str], ...] = ()  # (word, marker key)
    display_methods: tuple[tuple[str, str], ...] = ()  # (word, method key)
    display_checks: Mapping[Analyte, DisplayCheck] = field(default_factory=dict)
    display_infer_blockers: tuple[str, ...] = ()
    assigners: Mapping[str, str] = field(default_factory=dict)
    report_codes: Mapping[tuple[str, str], ReportCode] = field(default_factory=dict)
    administrative_sex: Mapping[str, AdministrativeGender] = field(default_factory=dict)
    files: tuple[str, ...] = field(default=())
    grammar: GrammarTable = field(default_factory=lambda: GrammarTable({}, False))
    # what ``ingest.grammar`` built from the tables above and read before (per sender)
    reader_cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _tissue_by_text: _Memo[Tissue | None] = field(
        default_factory=_Memo, init=False, repr=False, compare=False
    )
    _procedure_by_text: _Memo[Procedure | None] = field(
        default_factory=_Memo, init=False, repr=False, compare=False
    )
    _unit_by_text: _Memo[str | None] = field(
        default_factory=_Memo, init=False, repr=False, compare=False
    )
    _display_by_text: _Memo[tuple[frozenset[str], frozenset[str]]] = field(
        default_factory=_Memo, init=False, repr=False, compare=False
    )

    def system_uri(self, name: str) -> str:
        """FHIR system URI for an HL7 v2 coding system name (or a URI already)."""
        if ":" in name:
            return name
        return self.systems.get(name.upper(), LOCAL_SYSTEM_PREFIX + name)

    def is_local(self, system: str) -> bool:
        """A coding system no mapping file names (HL7 ``L``, ``99zzz``, a lab's own)."""
        return system.startswith(LOCAL_SYSTEM_PREFIX)

    def assigner_uri(self, namespace: str) -> str | None:
        """The identifier system a deployment configured for an assigning authority's name."""
        return self.assigners.get(namespace.upper())

    def report_code(self, system: str, code: str) -> ReportCode | None:
        return self.report_codes.get((system, code))

    def gender_for(self, hl7_code: str) -> AdministrativeGender | None:
        return self.administrative_sex.get(hl7_code.upper())

    def code(self, system: str, code: str) -> CodeEntry | None:
        return self.codes.get((system, code))

    def exclusion(self, system: str, code: str) -> str | None:
        return self.excluded.get((system, code))

    def answer(self, *, system: str, code: str) -> Answer | None:
        """Meaning of a coded answer; ``None`` when unknown (wordings: ``ingest.grammar``)."""
        return self.code_answers.get((system, code))

    def tissue_for_code(self, system: str, code: str) -> Tissue | None:
        return self.sites.get((system, code))

    def tissue_for_text(self, text: str) -> Tissue | None:
        """The tissue a free text names; ``None`` when it names none or several."""
        return self._tissue_by_text.get(text, self._tissue_for_text)

    def _tissue_for_text(self, text: str) -> Tissue | None:
        key = _normalise(text)
        found = {tissue for word, tissue in self.tissue_words if _names(word, key)}
        return found.pop() if len(found) == 1 else None

    def procedure_for_text(self, text: str) -> Procedure | None:
        return self._procedure_by_text.get(text, self._procedure_for_text)

    def _procedure_for_text(self, text: str) -> Procedure | None:
        key = _normalise(text)
        found = {procedure for word, procedure in self.procedure_words if _names(word, key)}
        return found.pop() if len(found) == 1 else None

    def observation_status_for(self, hl7_code: str) -> ResultStatus | None:
        return self.observation_status.get(hl7_code.upper())

    def report_status_for(self, hl7_code: str) -> ReportStatus | None:
        return self.report_status.get(hl7_code.upper())

    def interpretation_for(self, flag: str) -> str | None:
        return self.abnormal_flags.get(flag.upper()) or self.abnormal_flags.get(flag)

    @property
    def has_sender_file(self) -> bool:
        return self.name != DEFAULT_SET_NAME

    def is_standard(self, system: str | None) -> bool:
        """A coding system the mappings name (LOINC, SNOMED CT, CAP eCC), not a lab's own."""
        return system is not None and system in self._standard_systems

    @property
    def _standard_systems(self) -> frozenset[str]:
        return frozenset(self.systems.values())

    def named_in_display(self, text: str) -> tuple[frozenset[str], frozenset[str]]:
        """The markers and methods a code's display text names (whole words only)."""
        return self._display_by_text.get(text, self._named_in_display)

    def _named_in_display(self, text: str) -> tuple[frozenset[str], frozenset[str]]:
        key = _normalise(text)
        markers = frozenset(m for word, m in self.display_markers if _names_word(word, key))
        methods = frozenset(m for word, m in self.display_methods if _names_word(word, key))
        return markers, methods

    def display_conflict(self, analyte: Analyte, display: str | None) -> str | None:
        """Why a code's display contradicts the analyte it is mapped to, or ``None``.

        The display may name nothing the tables know; it may not name only other markers, or
        another method than the analyte's.
        """
        check = self.display_checks.get(analyte)
        if check is None or not display:
            return None
        markers, methods = self.named_in_display(display)
        if markers and not markers & set(check.markers):
            return f"the display names {', '.join(sorted(markers))}, not {analyte}"
        if check.method is not None and methods and check.method not in methods:
            return f"the display names the method {', '.join(sorted(methods))}, not {check.method}"
        return None

    def infer_from_display(self, display: str | None) -> tuple[Analyte | None, str]:
        """A local code's analyte from a display naming exactly one marker and one method.

        Returns the analyte (or ``None``) and what the display was found to name.
        """
        markers, methods = self.named_in_display(display) if display else (frozenset(), frozenset())
        found = (
            f"markers: {', '.join(sorted(markers)) or 'none'}; "
            f"methods: {', '.join(sorted(methods)) or 'none'}"
        )
        key = _normalise(display or "")
        blockers = [word for word in self.display_infer_blockers if _names_word(word, key)]
        if blockers:
            return None, f"{found}; names a quantity ({', '.join(blockers)})"
        if len(markers) != 1 or len(methods) != 1:
            return None, found
        candidates = [
            check.analyte
            for check in self.display_checks.values()
            if check.infer and check.markers[:1] == tuple(markers) and check.method in methods
        ]
        return (candidates[0] if len(candidates) == 1 else None), found

    def unit_for(self, text: str) -> str | None:
        return self._unit_by_text.get(text, self._unit_for)

    def _unit_for(self, text: str) -> str | None:
        return self.units.get(_normalise(text))


@cache
def _word_start(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])" + re.escape(phrase))


@cache
def _whole_word(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])" + re.escape(phrase) + r"(?![a-z0-9])")


def _names_word(phrase: str, text: str) -> bool:
    """``phrase`` is a whole word (or words) of ``text``: "er" is in "er ag", not in "her2"."""
    return _whole_word(phrase).search(text) is not None


def _names(phrase: str, text: str) -> bool:
    """``phrase`` starts a word of ``text``: "cardia" is not in "pericardial", "esophag" is in
    "esophageal"."""
    return _word_start(phrase).search(text) is not None


def _merge(files: Iterable[tuple[str, MappingFile]], name: str) -> MappingSet:
    systems: dict[str, str] = {}
    codes: dict[tuple[str, str], CodeEntry] = {}
    excluded: dict[tuple[str, str], str] = {}
    text_answers: dict[str, Answer] = {}
    code_answers: dict[tuple[str, str], Answer] = {}
    sites: dict[tuple[str, str], Tissue] = {}
    tissue_words: dict[str, Tissue] = {}
    procedure_words: dict[str, Procedure] = {}
    observation_status: dict[str, ResultStatus] = {}
    report_status: dict[str, ReportStatus] = {}
    abnormal_flags: dict[str, str] = {}
    units: dict[str, str] = {}
    display_markers: dict[str, str] = {}
    display_methods: dict[str, str] = {}
    display_checks: dict[Analyte, DisplayCheck] = {}
    blockers: list[str] = []
    assigners: dict[str, str] = {}
    report_codes: dict[tuple[str, str], ReportCode] = {}
    administrative_sex: dict[str, AdministrativeGender] = {}
    default_tissue: Tissue | None = None
    grammar: dict[str, GrammarPart] = {}
    decimal_comma = False
    names: list[str] = []
    for file_name, mapping in files:
        names.append(file_name)
        grammar.update(_grammar_phrases(mapping.grammar))
        # The keys older files use for recount words: the grammar's words, unless it has them.
        for phrase in mapping.recount_phrases:
            grammar.setdefault(_normalise(phrase), ("recounts", None))
        for phrase in mapping.recount_negations:
            grammar.setdefault(_normalise(phrase), ("negations", None))
        if mapping.grammar.decimal_comma is not None:
            decimal_comma = mapping.grammar.decimal_comma
        systems.update({key.upper(): value for key, value in mapping.systems.items()})
        codes.update({(entry.system, entry.code): entry for entry in mapping.codes})
        excluded.update({(entry.system, entry.code): entry.reason for entry in mapping.excluded})
        for answer in mapping.answers:
            if answer.text is not None:
                text_answers[_normalise(answer.text)] = answer
            elif answer.system is not None and answer.code is not None:
                code_answers[(answer.system, answer.code)] = answer
        sites.update({(entry.system, entry.code): entry.tissue for entry in mapping.sites})
        for tissue, words in mapping.tissue_words.items():
            tissue_words.update({_normalise(word): tissue for word in words})
        for procedure, words in mapping.procedure_words.items():
            procedure_words.update({_normalise(word): procedure for word in words})
        observation_status.update({k.upper(): v for k, v in mapping.observation_status.items()})
        report_status.update({k.upper(): v for k, v in mapping.report_status.items()})
        abnormal_flags.update(mapping.abnormal_flags)
        units.update({_normalise(k): v for k, v in mapping.units.items()})
        for marker, words in mapping.display_markers.items():
            display_markers.update({_normalise(word): marker for word in words})
        for method, words in mapping.display_methods.items():
            display_methods.update({_normalise(word): method for word in words})
        display_checks.update({check.analyte: check for check in mapping.display_checks})
        blockers.extend(_normalise(word) for word in mapping.display_infer_blockers)
        assigners.update({k.upper(): v for k, v in mapping.assigners.items()})
        report_codes.update({(entry.system, entry.code): entry for entry in mapping.report_codes})
        administrative_sex.update({k.upper(): v for k, v in mapping.administrative_sex.items()})
        if mapping.sender is not None and mapping.sender.default_tissue is not None:
            default_tissue = mapping.sender.default_tissue
    return MappingSet(
        name=name,
        default_tissue=default_tissue,
        systems=systems,
        codes=codes,
        excluded=excluded,
        text_answers=text_answers,
        code_answers=code_answers,
        sites=sites,
        tissue_words=tuple(tissue_words.items()),
        procedure_words=tuple(procedure_words.items()),
        observation_status=observation_status,
        report_status=report_status,
        abnormal_flags=abnormal_flags,
        units=units,
        display_markers=tuple(display_markers.items()),
        display_methods=tuple(display_methods.items()),
        display_checks=display_checks,
        display_infer_blockers=tuple(dict.fromkeys(blockers)),
        assigners=assigners,
        report_codes=report_codes,
        administrative_sex=administrative_sex,
        grammar=GrammarTable(grammar, decimal_comma),
        files=tuple(names),
    )


@dataclass(frozen=True)
class _SenderFile:
    name: str
    mapping: MappingFile
    match: SenderMatch


class Mappings:
    """Every mapping file of one directory; hands out the merged view for a sender."""

    def __init__(
        self,
        defaults: list[tuple[str, MappingFile]],
        senders: list[_SenderFile],
        languages: dict[str, MappingFile] | None = None,
        version: str = "unversioned",
    ) -> None:
        self._defaults = defaults
        self.version = version  # a content hash of every file (content_version)
        self._senders = senders
        self._languages = languages or {}
        self._default_set = _merge(defaults, DEFAULT_SET_NAME)
        self._sender_sets: dict[str, MappingSet] = {}

    @classmethod
    def load(cls, directory: Path) -> Mappings:
        """Load and validate every file; the first bad file raises MappingFileError.

        What a directory loaded to is kept between runs, keyed by its files' bytes
        (``adapter.mapping_cache``): the same files give the same object, read back.
        """
        if not directory.is_dir():
            raise MappingFileError("mappings directory does not exist", file=str(directory))
        from adapter import mapping_cache

        try:
            content = _content_digest(directory)
        except OSError:  # a file that cannot be read: loading it says which, and why
            return cls._validated(directory)
        cached = mapping_cache.read(content)
        if cached is not None:
            return cached
        loaded = cls._validated(directory)
        try:
            unchanged = _content_digest(directory) == content
        except OSError:
            unchanged = False
        if unchanged:  # not a file changed while it was loaded: what was read is what is kept
            mapping_cache.write(content, loaded)
        return loaded

    @classmethod
    def _validated(cls, directory: Path) -> Mappings:
        defaults = [(p.name, load_file(p)) for p in sorted(directory.glob("*.toml"))]
        if not defaults:
            raise MappingFileError("no default mapping files (*.toml) found", file=str(directory))
        for name, mapping in defaults:
            if mapping.sender is not None:
                raise MappingFileError(
                    "a [sender] table belongs in senders/, not among the defaults",
                    file=str(directory / name),
                    key="sender",
                )
        _check_defaults_agree(directory, defaults)
        languages: dict[str, MappingFile] = {}
        for path in sorted((directory / "languages").glob("*.toml")):
            language = load_file(path)
            if language.sender is not None:
                raise MappingFileError(
                    "a [sender] table belongs in senders/, not in a language file",
                    file=str(path),
                    key="sender",
                )
            languages[path.stem] = language
        senders: list[_SenderFile] = []
        claimed: dict[tuple[str, str], str] = {}
        for path in sorted((directory / "senders").glob("*.toml")):
            mapping = load_file(path)
            if mapping.sender is None:
                raise MappingFileError(
                    "a sender file needs a [sender] table", file=str(path), key="sender"
                )
            _claim(claimed, mapping.sender, path)
            for index, spoken in enumerate(mapping.sender.languages):
                if spoken not in languages:
                    raise MappingFileError(
                        f"language {spoken!r} has no file languages/{spoken}.toml",
                        file=str(path),
                        key=f"sender.languages.{index}",
                    )
            senders.append(_SenderFile(f"senders/{path.name}", mapping, mapping.sender))
        return cls(defaults, senders, languages, content_version(directory))

    @property
    def files(self) -> list[str]:
        return [
            *(name for name, _ in self._defaults),
            *(f"languages/{name}.toml" for name in self._languages),
            *(sender.name for sender in self._senders),
        ]

    @property
    def default(self) -> MappingSet:
        return self._default_set

    def for_hl7_sender(self, application: str | None, facility: str | None) -> MappingSet:
        """Defaults plus the sender file whose MSH-4 facility (or, failing that, MSH-3) matches."""
        for sender in self._senders:
            if facility and facility in sender.match.facilities:
                return self._sender_set(sender)
        for sender in self._senders:
            if application and application in sender.match.applications:
                return self._sender_set(sender)
        return self._default_set

    def for_fhir_source(self, source: str | None) -> MappingSet:
        """Defaults plus the sender file listing this FHIR source (meta.source, MessageHeader)."""
        for sender in self._senders:
            if source and source in sender.match.fhir_sources:
                return self._sender_set(sender)
        return self._default_set

    def warnings(self) -> list[str]:
        """What a reviewer should look at before a lab goes live; none of it stops loading.

        A code entry whose display names another marker or method than its analyte, and a
        sender file that re-maps a code the defaults already map (a standard LOINC code
        meaning something else for one lab is almost always a mistake in that file).
        """
        found: list[str] = []
        files = [
            *((name, mapping, self._default_set) for name, mapping in self._defaults),
            *((s.name, s.mapping, self._sender_set(s)) for s in self._senders),
        ]
        for name, mapping, merged in files:
            for index, entry in enumerate(mapping.codes):
                conflict = merged.display_conflict(entry.analyte, entry.display)
                if conflict is not None:
                    found.append(f"{name}: codes.{index}: code {entry.code}: {conflict}")
        for sender in self._senders:
            for index, entry in enumerate(sender.mapping.codes):
                default = self._default_set.code(entry.system, entry.code)
                if default is not None and default != entry.model_copy(
                    update={"display": default.display}
                ):
                    found.append(
                        f"{sender.name}: codes.{index}: re-maps the default code {entry.code} "
                        f"({default.analyte}, tissue {default.tissue}) as {entry.analyte}, "
                        f"tissue {entry.tissue}"
                    )
                if self._default_set.exclusion(entry.system, entry.code) is not None:
                    found.append(
                        f"{sender.name}: codes.{index}: maps {entry.code}, which the defaults "
                        "exclude from classification"
                    )
        return found

    def _sender_set(self, sender: _SenderFile) -> MappingSet:
        if sender.name not in self._sender_sets:
            # The lab's languages come after the defaults and before its own file: a word a
            # language gives another meaning ("null" is zero in German) means that, for this lab.
            spoken = [(f"languages/{n}.toml", self._languages[n]) for n in sender.match.languages]
            merged = _merge(
                [*self._defaults, *spoken, (sender.name, sender.mapping)], sender.match.name
            )
            self._sender_sets[sender.name] = merged
        return self._sender_sets[sender.name]


def _check_defaults_agree(directory: Path, defaults: list[tuple[str, MappingFile]]) -> None:
    """Default files may add to each other but never give one code two meanings."""
    seen: dict[tuple[str, str], tuple[str, Analyte]] = {}
    for name, mapping in defaults:
        for index, entry in enumerate(mapping.codes):
            key = (entry.system, entry.code)
            if key in seen and seen[key][1] != entry.analyte:
                raise MappingFileError(
                    f"code {entry.code} is {seen[key][1]} in {seen[key][0]} but "
                    f"{entry.analyte} here",
                    file=str(directory / name),
                    key=f"codes.{index}",
                )
            seen[key] = (name, entry.analyte)


def _claim(claimed: dict[tuple[str, str], str], sender: SenderMatch, path: Path) -> None:
    """Which lab's tables apply must never depend on file names: one claimant per identity."""
    for kind, values in (
        ("facilities", sender.facilities),
        ("applications", sender.applications),
        ("fhir_sources", sender.fhir_sources),
    ):
        for value in values:
            owner = claimed.setdefault((kind, value), str(path))
            if owner != str(path):
                raise MappingFileError(
                    f"{value!r} is already claimed by {owner}", file=str(path), key=f"sender.{kind}"
                )


def content_version(directory: Path) -> str:
    """Which mappings produced a report: a hash of every file's path and bytes.

    Two directories with the same files give the same version wherever they are; any change to
    any file (a wording added) gives another.
    """
    return f"sha256:{_content_digest(directory).hex()[:16]}"


def _content_digest(directory: Path) -> bytes:
    """The SHA-256 of every mapping file's path (in the directory) and bytes, in load order."""
    digest = hashlib.sha256()
    files = [
        *sorted(directory.glob("*.toml")),
        *sorted((directory / "languages").glob("*.toml")),
        *sorted((directory / "senders").glob("*.toml")),
    ]
    for path in files:
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.digest()


@cache
def load_mappings(directory: Path) -> Mappings:
    """Load once per directory per process (mapping files do not change under a running service)."""
    return Mappings.load(directory)
