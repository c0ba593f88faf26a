"""Format-neutral assembly: the reported values of one order -> HER2, ISH, ER and PgR results.

Both readers (HL7 v2 and FHIR) turn each result into a ``ReadValue``; everything from there on,
including how conflicts and recounts are recognised, is decided once, here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TypeVar

from adapter.ingest import grammar
from adapter.ingest.grammar import Reading
from adapter.mapping import Answer, Intensity, MappingSet, Quantity
from adapter.model import (
    ISH_ANALYTES,
    Analyte,
    Coding,
    Ihc0Subtype,
    IhcResult,
    IhcScore,
    IngestWarning,
    Interpretation,
    Interval,
    IshCount,
    IshProbe,
    IshResult,
    LabInterpretation,
    Provenance,
    ReceptorResult,
    ReportedObservation,
    ResultStatus,
    Tissue,
)

_T = TypeVar("_T")


@dataclass(frozen=True)
class ReadValue:
    """One reported result, read and looked up, before assembly."""

    observation: ReportedObservation
    answer: Answer | None = None  # the meaning of a coded or worded value
    probe: IshProbe | None = None  # from the result code's mapping entry
    tissue_scope: Tissue | None = None  # from the result code's mapping entry
    indeterminate_reason: str | None = None  # status X, dataAbsentReason, "specimen inadequate"
    reading: Reading | None = None  # the value grammar's reading of a worded value
    method_text: str | None = None  # OBX-17 / Observation.method, as sent
    derived: bool = False  # a number another value's words named ("Amplified, ratio 2.5")

    @property
    def analyte(self) -> Analyte:
        return self.observation.analyte

    @property
    def provenance(self) -> Provenance:
        return self.observation.provenance


@dataclass(frozen=True)
class AssembledResults:
    her2_ihc: IhcResult | None
    her2_ish: IshResult | None
    er: ReceptorResult | None
    pgr: ReceptorResult | None
    lab_interpretation: LabInterpretation | None
    warnings: tuple[IngestWarning, ...]


NUMERIC_ANALYTES = frozenset(
    {
        Analyte.HER2_CEP17_RATIO,
        Analyte.HER2_COPIES,
        Analyte.CEP17_COPIES,
        Analyte.ISH_CELLS_COUNTED,
        Analyte.ISH_AMPLIFIED_PERCENT,
        Analyte.HER2_IHC_STAINED_PERCENT,
        Analyte.ER_PERCENT,
        Analyte.PGR_PERCENT,
    }
)
"""Analytes whose value is a number; the others are read as answers (scores, wordings)."""

NUMBER_OR_ANSWER = frozenset({Analyte.ER_RESULT, Analyte.PGR_RESULT, Analyte.ISH_RECOUNT})
"""Result analytes that may carry a percentage or count instead of a word ("ER: 95%")."""

READ_AS_NUMBER = NUMERIC_ANALYTES | NUMBER_OR_ANSWER


PERCENT_ANALYTES = frozenset(
    {
        Analyte.ER_PERCENT,
        Analyte.PGR_PERCENT,
        Analyte.ER_RESULT,
        Analyte.PGR_RESULT,
        Analyte.HER2_IHC_STAINED_PERCENT,
        Analyte.ISH_AMPLIFIED_PERCENT,
    }
)


def _possible_percent(number: Interval) -> bool:
    """Every bound the lab gave lies in 0-100 (``<1`` and ``>95`` are fine, ``95-150`` is not)."""
    return all(
        bound is None or Decimal(0) <= bound <= Decimal(100) for bound in (number.low, number.high)
    )


def usable(analyte: Analyte, number: Interval | None, answer: Answer | None) -> bool:
    """Whether a read value says something for its analyte (else it is reported as not used).

    A percentage outside 0-100 (``150``, ``-5``) is a typo or another quantity: not used.
    """
    if number is not None and analyte in PERCENT_ANALYTES and not _possible_percent(number):
        return False
    if analyte in NUMERIC_ANALYTES:
        return number is not None or (answer is not None and answer.indeterminate)
    if analyte in NUMBER_OR_ANSWER and number is not None:
        return True
    return answer is not None


def assemble(
    values: Sequence[ReadValue], mapping: MappingSet, group_notes: Iterable[str]
) -> AssembledResults:
    warnings: list[IngestWarning] = []
    values = [_with_notes(value, mapping, warnings) for value in _current(values, warnings)]
    values = [*values, *_derived(values, warnings)]
    by_analyte: dict[Analyte, list[ReadValue]] = {}
    for value in values:
        by_analyte.setdefault(value.analyte, []).append(value)
    notes = tuple(group_notes)
    return AssembledResults(
        her2_ihc=_ihc(by_analyte, mapping, warnings),
        her2_ish=_ish(values, by_analyte, mapping, notes, warnings),
        er=_receptor(by_analyte, Analyte.ER_RESULT, Analyte.ER_PERCENT, "ER", warnings),
        pgr=_receptor(by_analyte, Analyte.PGR_RESULT, Analyte.PGR_PERCENT, "PgR", warnings),
        lab_interpretation=_lab_interpretation(
            by_analyte.get(Analyte.HER2_INTERPRETATION, []), warnings
        ),
        warnings=tuple(warnings),
    )


_CORRECTIONS = frozenset({ResultStatus.CORRECTED, ResultStatus.AMENDED})


def _current(values: Sequence[ReadValue], warnings: list[IngestWarning]) -> list[ReadValue]:
    """Drop values a later one of the same result (code and sub-id) replaces.

    A corrected or amended value replaces the earlier ones; a final one replaces preliminary ones.
    Values of different codes or sub-ids are separate results and all kept.
    """
    by_result: dict[tuple[object, ...], list[ReadValue]] = {}
    for value in values:
        code = value.provenance.code
        key = (value.analyte, code.system if code else None, code.code if code else None)
        by_result.setdefault((*key, value.provenance.sub_id), []).append(value)
    replaced: set[int] = set()
    for same in by_result.values():
        if len(same) < 2:
            continue
        corrected = [v for v in same if v.observation.status in _CORRECTIONS]
        final = [v for v in same if v.observation.status is ResultStatus.FINAL]
        keep = corrected[-1:] or final or same
        replaced.update(id(v) for v in same if all(v is not k for k in keep))
    if replaced:
        warnings.append(
            IngestWarning(
                code="RESULT-REPLACED",
                message=f"{len(replaced)} result(s) replaced by a later corrected or final one",
            )
        )
    return [v for v in values if id(v) not in replaced]


def _failed(value: ReadValue) -> bool:
    """The lab said this test could not be done (OBX-11 X, dataAbsentReason, "inadequate")."""
    return bool(value.indeterminate_reason) or (
        value.answer is not None and value.answer.indeterminate
    )


def _provenance(values: Iterable[ReadValue]) -> tuple[Provenance, ...]:
    # a number named in another value's words shares that value's provenance: listed once
    return tuple(dict.fromkeys(value.provenance for value in values))


def _indeterminate(values: Iterable[ReadValue]) -> str | None:
    for value in values:
        if value.indeterminate_reason:
            return value.indeterminate_reason
        if value.answer is not None and value.answer.indeterminate:
            return f"the lab reported {value.provenance.value_text!r} ({value.provenance.locator})"
    return None


def _ihc(
    by_analyte: dict[Analyte, list[ReadValue]],
    mapping: MappingSet,
    warnings: list[IngestWarning],
) -> IhcResult | None:
    results = by_analyte.get(Analyte.HER2_IHC, [])
    subtypes = by_analyte.get(Analyte.HER2_IHC0_SUBTYPE, [])
    stained = by_analyte.get(Analyte.HER2_IHC_STAINED_PERCENT, [])
    if not (results or subtypes or stained):
        return None
    # A failed attempt beside a scored one (a repeat stain) does not fail the IHC.
    done = [v for v in (*results, *subtypes) if not _failed(v)]
    answers = [v.answer for v in done if v.analyte is Analyte.HER2_IHC and v.answer]
    # A sub-type result ("ultralow", "null") also says the score is 0: 1+ with "ultralow"
    # is a conflict, not two compatible facts.
    scores = {a.score for v in done if (a := v.answer) and a.score is not None}
    stated = {a.stated for a in answers if a.stated is not None}
    subtype_values = {a.ihc0_subtype for v in done if (a := v.answer) and a.ihc0_subtype}
    reason = None if scores or stated else _indeterminate((*results, *subtypes))
    conflict = None
    if len(scores) > 1 or len(stated) > 1 or len(subtype_values) > 1:
        # Positions only: the values themselves may be free text, and warnings reach ACKs.
        conflict = "conflicting HER2 IHC results in one order: " + ", ".join(
            _locators((*results, *subtypes))
        )
        warnings.append(IngestWarning(code="CONFLICTING-RESULTS", message=conflict))
    percent = _single_number(stained, "HER2 IHC stained %", warnings)
    return IhcResult(
        score=_only(scores) if conflict is None else None,
        ihc0_subtype=_only(subtype_values) if conflict is None else None,
        stained_percent=percent,
        stated=_only(stated) if conflict is None else None,
        indeterminate_reason=reason,
        conflict=conflict,
        heterogeneity_noted=_heterogeneous((*results, *subtypes)),
        provenance=_provenance((*results, *subtypes, *stained)),
    )


def _with_notes(value: ReadValue, mapping: MappingSet, warnings: list[IngestWarning]) -> ReadValue:
    """A value with what its notes and its method say: the IHC-0 sub-type ("ultralow", "faint
    staining in 5% of cells"), the probe ("single-probe SISH"), heterogeneity, a percentage.

    Labs often put these in a note on the result (an NTE after the OBX, an Observation.note) or
    in the method (OBX-17, Observation.method) rather than in a result of their own. Notes are
    read with the same grammar, in the value's own context; a note not understood says nothing.
    """
    texts = (*value.observation.notes, *((value.method_text,) if value.method_text else ()))
    if not texts:
        return value
    answer, reading = value.answer, value.reading or _NOTHING_READ
    quantities, heterogeneous, intensity = (
        reading.quantities,
        reading.heterogeneous,
        reading.intensity,
    )
    for text in texts:
        note = grammar.read(mapping, text, value.analyte)
        if note.problem is not None or note.deferred:
            continue
        said = _note_meaning(note, answer)
        if said is not None:
            merged = answer.merged(said) if answer is not None else said
            if merged is None:
                warnings.append(
                    IngestWarning(
                        code="NOTE-CONFLICT",
                        message="a note names an IHC-0 sub-type or a probe the value "
                        "contradicts; note not used",
                        locator=value.provenance.locator,
                    )
                )
                continue
            answer = merged
        quantities = (*quantities, *note.quantities)
        heterogeneous = heterogeneous or note.heterogeneous
        intensity = intensity or note.intensity
    if (quantities, heterogeneous, intensity) != (
        reading.quantities,
        reading.heterogeneous,
        reading.intensity,
    ):
        # One copy for all the notes (dataclasses.replace is dear on the hot path).
        reading = replace(
            reading, quantities=quantities, heterogeneous=heterogeneous, intensity=intensity
        )
    return ReadValue(
        observation=value.observation,
        answer=answer,
        probe=value.probe,
        tissue_scope=value.tissue_scope,
        indeterminate_reason=value.indeterminate_reason,
        reading=reading,
        method_text=value.method_text,
        derived=value.derived,
    )


_NOTHING_READ = Reading()
"""The reading of a value whose own words said nothing (a number, a code), for its notes."""


def _note_meaning(note: Reading, answer: Answer | None) -> Answer | None:
    """What a note may add to a value: an IHC-0 sub-type (with the 0 it implies) and a probe.

    A note's own score or result word is not taken: the value states those.
    """
    said = note.answer
    subtype = said.ihc0_subtype if said is not None else None
    probe = said.probe if said is not None else None
    zero = answer is not None and answer.score is IhcScore.ZERO and answer.ihc0_subtype is None
    if subtype is None and zero and note.intensity in (Intensity.FAINT, Intensity.WEAK):
        subtype = Ihc0Subtype.ULTRALOW  # IHC 0 with faint staining: ultralow (DESTINY-Breast06)
    if subtype is None and probe is None:
        return None
    if subtype is not None and (answer is None or answer.score is None):
        subtype = None  # a sub-type belongs to an IHC 0; on a value with no score it says nothing
        if probe is None:
            return None
    return Answer(
        score=IhcScore.ZERO if subtype is not None else None, ihc0_subtype=subtype, probe=probe
    )


QUANTITY_ANALYTE = {
    Quantity.RATIO: Analyte.HER2_CEP17_RATIO,
    Quantity.HER2_COPIES: Analyte.HER2_COPIES,
    Quantity.CEP17_COPIES: Analyte.CEP17_COPIES,
    Quantity.CELLS_COUNTED: Analyte.ISH_CELLS_COUNTED,
    Quantity.AMPLIFIED_PERCENT: Analyte.ISH_AMPLIFIED_PERCENT,
}
"""The analyte of an ISH number a value's words name."""
_IHC_VALUES = frozenset({Analyte.HER2_IHC, Analyte.HER2_IHC0_SUBTYPE})


def _derived(values: Sequence[ReadValue], warnings: list[IngestWarning]) -> list[ReadValue]:
    """Numbers a value's words name ("Amplified, HER2/CEP17 ratio 2.5", "2+ in 30% of cells"),
    as values of their own analyte. A value reported on its own is preferred: a named number
    is used only where none was, and one that differs from it is said, not used.
    """
    found: list[ReadValue] = []
    for value in values:
        if value.reading is None or not value.reading.quantities:
            continue
        for quantity, number in value.reading.quantities:
            analyte = QUANTITY_ANALYTE.get(quantity)
            if quantity is Quantity.PERCENT and value.analyte in _IHC_VALUES:
                analyte = Analyte.HER2_IHC_STAINED_PERCENT
            if analyte is None or analyte is value.analyte:
                continue
            reported = [
                v.observation.number
                for v in (*values, *found)
                if v.analyte is analyte and v.observation.number is not None
            ]
            if reported:
                if any(_bounds(r) != _bounds(number) for r in reported):
                    warnings.append(
                        IngestWarning(
                            code="VALUE-DISAGREES",
                            message=f"the words of this value name a {analyte} that differs "
                            "from the one reported: the reported one is used",
                            locator=value.provenance.locator,
                        )
                    )
                continue
            observation = replace(value.observation, analyte=analyte, number=number, ratio=None)
            found.append(ReadValue(observation=observation, derived=True))
    return found


def _ish(
    all_values: Sequence[ReadValue],
    by_analyte: dict[Analyte, list[ReadValue]],
    mapping: MappingSet,
    group_notes: tuple[str, ...],
    warnings: list[IngestWarning],
) -> IshResult | None:
    values = [v for v in all_values if v.analyte in ISH_ANALYTES]  # message order
    if not values:
        return None
    counted = [_numbered(by_analyte, analyte) for analyte in _COUNT_ANALYTES]
    ratio_values, her2_values, cep17_values = counted
    second_count = any(len(found) > 1 for found in counted)
    counts = _counts(ratio_values, her2_values, cep17_values)
    if second_count:
        warnings.append(
            IngestWarning(
                code="SECOND-COUNT",
                message="ISH counted more than once: the last count is used, "
                "the earlier ones are checked against it",
            )
        )
    qualitative = [v for v in by_analyte.get(Analyte.HER2_ISH, []) if not _failed(v)]
    stated = {a.stated for v in qualitative if (a := v.answer) and a.stated}
    failed = [v for v in values if _failed(v)]
    # One failed value (a CEP17 not counted) leaves the rest of the count usable: the ISH as a
    # whole failed only when nothing usable is left.
    reason = None if any(counted) or stated else _indeterminate(failed)
    if failed and reason is None:
        warnings.append(
            IngestWarning(
                code="ISH-VALUE-FAILED",
                message="ISH values the lab could not report: "
                + ", ".join(v.provenance.locator for v in failed),
            )
        )
    conflict = None
    if len(stated) > 1:
        # "Amplified" and "Not amplified" in one order: something is wrong with this order's
        # ISH, so none of it is used unreviewed (the classifier asks for adjudication).
        conflict = "conflicting qualitative ISH results in one order: " + ", ".join(
            _locators(qualitative)
        )
        warnings.append(IngestWarning(code="CONFLICTING-RESULTS", message=conflict))
    cells = _single_number(by_analyte.get(Analyte.ISH_CELLS_COUNTED, []), "cells counted", warnings)
    return IshResult(
        probe=_probe(values, warnings),
        ratio=counts[-1].ratio if counts else None,
        her2_copies=counts[-1].her2_copies if counts else None,
        cep17_copies=counts[-1].cep17_copies if counts else None,
        earlier_counts=tuple(count for count in counts[:-1] if count != counts[-1]),
        cells_counted=int(cells.value) if cells is not None and cells.value is not None else None,
        recount_done=second_count or _recount_reported(values, mapping, group_notes),
        recount_cells=_recount_cells(by_analyte.get(Analyte.ISH_RECOUNT, [])),
        amplified_percent=_single_number(
            by_analyte.get(Analyte.ISH_AMPLIFIED_PERCENT, []), "amplified cells %", warnings
        ),
        stated=_only(stated),
        indeterminate_reason=reason,
        conflict=conflict,
        heterogeneity_noted=_heterogeneous(values),
        provenance=_provenance(values),
    )


def _locators(values: Iterable[ReadValue]) -> list[str]:
    return sorted(dict.fromkeys(v.provenance.locator for v in values))


def _heterogeneous(values: Iterable[ReadValue]) -> bool:
    """The lab's words (a value, a note, the method) say the staining or count is heterogeneous."""
    return any(v.reading is not None and v.reading.heterogeneous for v in values)


_COUNT_ANALYTES = (Analyte.HER2_CEP17_RATIO, Analyte.HER2_COPIES, Analyte.CEP17_COPIES)


def _numbered(by_analyte: dict[Analyte, list[ReadValue]], analyte: Analyte) -> list[ReadValue]:
    return [v for v in by_analyte.get(analyte, []) if v.observation.number is not None]


def _counts(
    ratios: list[ReadValue], her2: list[ReadValue], cep17: list[ReadValue]
) -> list[IshCount]:
    """The counts in reporting order: the n-th ratio, HER2 and CEP17 values form count n."""
    total = max(len(ratios), len(her2), len(cep17))

    def nth(found: list[ReadValue], n: int) -> Interval | None:
        return found[n].observation.number if n < len(found) else None

    return [
        IshCount(ratio=nth(ratios, n), her2_copies=nth(her2, n), cep17_copies=nth(cep17, n))
        for n in range(total)
    ]


def _recount_reported(
    values: Sequence[ReadValue], mapping: MappingSet, group_notes: tuple[str, ...]
) -> bool:
    for value in values:
        observation = value.observation
        answer = value.answer
        if answer is not None and answer.recount:
            return True
        # A recount result says so with a "positive"/"yes"-like answer; a number is the cells
        # it counted, which the classifier checks (recount_cells).
        if (
            value.analyte is Analyte.ISH_RECOUNT
            and answer is not None
            and answer.stated is Interpretation.POSITIVE
        ):
            return True
        texts = (*observation.notes, observation.text or "")
        if any(_says_recount(mapping, text) for text in texts if text):
            return True
    return any(_says_recount(mapping, note) for note in group_notes)


def _says_recount(mapping: MappingSet, text: str) -> bool:
    """The text, read whole by the value grammar, says a recount was done: "Recount not
    performed" (a negation), "recount pending" (a deferral) and a text not understood do not.
    Its number, if any, is the recount's (cells counted)."""
    return grammar.read(mapping, text, Analyte.ISH_RECOUNT).recount


def _recount_cells(values: Sequence[ReadValue]) -> int | None:
    """A recount result given as a number: the cells counted (the classifier checks >= 20)."""
    for value in reversed(values):
        number = value.observation.number
        if number is not None and number.value is not None and number.value == number.value // 1:
            return int(number.value)
    return None


def _probe(values: Sequence[ReadValue], warnings: list[IngestWarning]) -> IshProbe | None:
    probes = {v.probe for v in values if v.probe} | {
        a.probe for v in values if (a := v.answer) and a.probe
    }
    # A CEP17 count or a ratio, even one reported as failed, says the assay was dual-probe.
    if any(v.analyte in (Analyte.CEP17_COPIES, Analyte.HER2_CEP17_RATIO) for v in values):
        probes.add(IshProbe.DUAL)
    probes |= {a.probe for v in values if (a := v.answer) and a.probe}
    if len(probes) > 1:
        warnings.append(
            IngestWarning(
                code="CONFLICTING-PROBE", message="single- and dual-probe ISH both stated"
            )
        )
        return None
    return _only(probes)


def _receptor(
    by_analyte: dict[Analyte, list[ReadValue]],
    result_analyte: Analyte,
    percent_analyte: Analyte,
    label: str,
    warnings: list[IngestWarning],
) -> ReceptorResult | None:
    results = by_analyte.get(result_analyte, [])
    percents = by_analyte.get(percent_analyte, [])
    if not (results or percents):
        return None
    # A result code carrying a number ("95%") reports the percentage.
    numbered = [v for v in (*percents, *results) if v.observation.number is not None]
    stated = {a.stated for v in results if (a := v.answer) and a.stated and not _failed(v)}
    reason = None if numbered or stated else _indeterminate((*results, *percents))
    percent = _single_number(numbered, f"{label} %", warnings)
    conflict = None
    if len(stated) > 1:
        conflict = f"conflicting {label} results in one order"
        warnings.append(IngestWarning(code="CONFLICTING-RESULTS", message=conflict))
    if percent is None and len({_bounds(n) for v in numbered if (n := v.observation.number)}) > 1:
        conflict = f"conflicting {label} percentages in one order"
    readings = [v.reading for v in (*results, *percents) if v.reading is not None]
    return ReceptorResult(
        percent=percent,
        stated=_only(stated) if len(stated) == 1 else None,
        indeterminate_reason=reason,
        conflict=conflict,
        # Kept and shown, never deciding (her2-rules.md section 6): the percentage decides.
        allred=next((n for r in readings if (n := r.quantity(Quantity.ALLRED))), None),
        h_score=next((n for r in readings if (n := r.quantity(Quantity.H_SCORE))), None),
        intensity=next((r.intensity.value for r in readings if r.intensity), None),
        provenance=_provenance((*results, *percents)),
    )


def _lab_interpretation(
    values: Sequence[ReadValue], warnings: list[IngestWarning]
) -> LabInterpretation | None:
    if not values:
        return None
    stated = {a.stated for v in values if (a := v.answer) and a.stated}
    if len(stated) > 1:
        warnings.append(
            IngestWarning(
                code="CONFLICTING-RESULTS",
                message="the lab reported conflicting overall HER2 interpretations",
            )
        )
    last = values[-1]
    observation = last.observation
    return LabInterpretation(
        stated=_only(stated),
        coding=observation.coding or Coding(),
        text=observation.text,
        provenance=_provenance(values),
    )


def _single_number(
    values: Sequence[ReadValue], label: str, warnings: list[IngestWarning]
) -> Interval | None:
    """The one number reported; several different ones are a conflict (``None`` + a warning).

    "95" and "95%" are the same number: intervals are compared on their bounds, not their text.
    """
    reported = [v.observation.number for v in values if v.observation.number is not None]
    numbers = {_bounds(number): number for number in reported}
    if len(numbers) > 1:
        warnings.append(
            IngestWarning(code="CONFLICTING-RESULTS", message=f"several different {label} values")
        )
        return None
    return reported[0] if reported else None


def _bounds(number: Interval) -> tuple[object, ...]:
    return (number.low, number.low_inclusive, number.high, number.high_inclusive)


def _only(found: set[_T]) -> _T | None:
    return next(iter(found)) if len(found) == 1 else None


def resolve_tissue(
    scopes: Iterable[Tissue | None],
    site_tissues: Iterable[Tissue | None],
    texts: Iterable[str],
    mapping: MappingSet,
) -> tuple[Tissue, list[IngestWarning]]:
    """The tissue, from site codes, then site texts, then the result codes' scope, then the sender.

    Evidence that disagrees gives ``unknown`` with a warning: the classifier never picks one.
    """
    coded = {tissue for tissue in site_tissues if tissue is not None}
    worded = {t for text in texts if text and (t := mapping.tissue_for_text(text)) is not None}
    scoped = {tissue for tissue in scopes if tissue is not None}
    evidence = coded or worded
    if len(evidence) > 1 or (evidence and scoped and evidence != scoped) or len(scoped) > 1:
        named = ", ".join(sorted(str(t) for t in evidence | scoped))
        return Tissue.UNKNOWN, [
            IngestWarning(code="CONFLICTING-TISSUE", message=f"the message names {named} tissue")
        ]
    for found in (evidence, scoped):
        if found:
            return found.pop(), []
    if mapping.default_tissue is not None:
        return mapping.default_tissue, []
    return Tissue.UNKNOWN, []
