"""One OBX segment -> one ReadValue (or the reason it was not used).

OBX-2 decides how OBX-5 is read: NM number, SN structured numeric, ST/TX/FT text, CWE/CE/CNE
coded, IS table value. What a value means (a score, a wording, an answer code) comes from the
mapping tables only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import tzinfo
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import NamedTuple

from adapter.ingest import er7, grammar
from adapter.ingest.assemble import READ_AS_NUMBER, ReadValue, usable
from adapter.ingest.codecheck import CodeCheck, check_code
from adapter.ingest.grammar import Reading
from adapter.ingest.values import bounded, parse_decimal, parse_hl7_datetime, parse_interval
from adapter.mapping import Answer, CodeEntry, MappingSet
from adapter.model import (
    Analyte,
    Coding,
    IngestWarning,
    Interval,
    Provenance,
    ReportedObservation,
    ResultStatus,
    UnusedResult,
)

_CODED_TYPES = frozenset({"CWE", "CE", "CNE", "CF"})
_TEXT_TYPES = frozenset({"ST", "TX", "FT", "IS", "ID", "TN"})
_SN_COMPARATORS = ("<=", ">=", "<>", "<", ">", "=")
_REPORT_TYPES = frozenset({"TX", "FT"})


class ObxOutcome(NamedTuple):
    """What one OBX gives its order group.

    A tuple rather than a frozen dataclass, as ``_Value``: one is made per OBX. Never compared.
    """

    value: ReadValue | None
    unused: UnusedResult | None
    status: ResultStatus | None
    warnings: tuple[IngestWarning, ...]
    report_text: str | None = None  # TX/FT report text, read for statements by the group
    # OBX-23 performing organisation: name (23.1), assigning authority HD (23.6.1-3)
    performing: tuple[str, str, str, str] = ("", "", "", "")


class _Value(NamedTuple):
    # A tuple rather than a frozen dataclass: one is made per OBX, and tuples are cheap to make.
    number: Interval | None = None
    ratio: tuple[Decimal, Decimal] | None = None
    text: str | None = None
    coding: Coding | None = None
    answer: Answer | None = None
    reading: Reading | None = None


def read_obx(
    segment: er7.Segment,
    position: int,
    mapping: MappingSet,
    zone: tzinfo,
    notes: tuple[str, ...] = (),
) -> ObxOutcome:
    """The OBX at ``position`` (OBX[n] counts the message's OBX segments) with its NTE notes.

    What the fields other than OBX-14 say is remembered per sender (``_shape``, ``_read``): the
    same codes, types, units and mostly the same values come in message after message, so a
    repeated OBX costs its two look-ups, its timestamp and the value objects it is made of.
    """
    fields = segment.raw_fields
    if len(fields) < _FIELDS_READ:
        fields = fields + _NO_FIELDS[len(fields) :]
    shape = _shape(segment, fields, mapping)
    read = _read(segment, fields, shape, position, mapping)
    if read.outcome is not None:
        return read.outcome
    entry = shape.entry
    assert entry is not None  # a value is read only under a mapping entry
    value = read.value
    moment = parse_hl7_datetime(segment.field(14), zone)[0] if fields[14] else None
    observation = ReportedObservation(
        analyte=entry.analyte,
        provenance=read.provenance,
        status=shape.status,
        number=value.number,
        ratio=value.ratio,
        text=value.text,
        coding=value.coding,
        unit=shape.unit,
        ucum=shape.ucum,
        interpretation=shape.flags,
        notes=notes,
        effective=moment,
        method=shape.method,
    )
    # Notes add to a value; they never take its grammar reading or its OBX-17 method away.
    read_value = ReadValue(
        observation=observation,
        answer=value.answer,
        probe=entry.probe,
        tissue_scope=entry.tissue,
        indeterminate_reason=shape.indeterminate,
        reading=value.reading,
        method_text=shape.method_text,
    )
    return ObxOutcome(read_value, None, shape.status, read.warnings, None, shape.performing)


_FIELDS_READ = 24  # OBX-1 to OBX-23, and the segment name
_NO_FIELDS = ("",) * _FIELDS_READ


@dataclass(frozen=True, slots=True, eq=False)
class _Shape:
    """What an OBX's code, type, units, flags, status, method and performer say (OBX-2, 3, 6, 8,
    11, 17 and 23), whatever its value: the same for every OBX of one test from one sender.

    Warnings are (code, message) pairs: each OBX gives them its own locator.
    """

    code: Coding
    value_type: str
    status_code: str
    status: ResultStatus
    before: tuple[tuple[str, str], ...]  # the status's and the code check's warnings
    unused: tuple[str, Analyte | None, bool] | None  # not used, whatever the value says
    report_reason: str | None  # report text: the reason it stays unused without a statement
    entry: CodeEntry | None
    indeterminate: str | None  # OBX-11 X
    unit: str | None
    ucum: str | None
    flags: tuple[str, ...]
    after: tuple[tuple[str, str], ...]  # the flags' warnings, given only with a used value
    method: Coding | None
    method_text: str | None
    performing: tuple[str, str, str, str]


_SHAPES = "obx-shapes"
_READS = "obx-reads"
"""``MappingSet.reader_cache`` keys of the remembered OBX shapes and values (bounded as the
grammar's readings are: past 4,096 they are forgotten and read again)."""
_LIMIT = 4096


def _shape(segment: er7.Segment, fields: tuple[str, ...], mapping: MappingSet) -> _Shape:
    memo: dict[tuple[object, ...], _Shape] = mapping.reader_cache.setdefault(_SHAPES, {})
    # The raw texts with the separators and character set they are unescaped with.
    key = (
        segment.separators,
        segment.codec,
        fields[2],
        fields[3],
        fields[6],
        fields[8],
        fields[11],
        fields[17],
        fields[23],
    )
    found = memo.get(key)
    if found is None:
        found = _new_shape(segment, mapping)
        if len(memo) >= _LIMIT:
            memo.clear()
        memo[key] = found
    return found


def _new_shape(segment: er7.Segment, mapping: MappingSet) -> _Shape:
    known = _known_code(segment.components(3), mapping)
    value_type = segment.component(2).upper()
    status_code = segment.field(11).upper()
    before: list[tuple[str, str]] = []
    status = _status(status_code, mapping, before)
    unused: tuple[str, Analyte | None, bool] | None = None
    report_reason: str | None = None
    checked = known.check
    entry = checked.entry
    not_mapped = checked.unused_reason or "result code not in the mappings"
    if known.excluded is not None:
        unused = (f"not classified: {known.excluded}", None, False)
    else:
        if checked.warning is not None:
            before.append((checked.warning.code, checked.warning.message))
        if known.mapped is not None and entry is None:
            # A mapped code whose display names another test is not understood: the lab must
            # fix it.
            unused = (checked.unused_reason or "not used", known.mapped.analyte, True)
        elif status is ResultStatus.ENTERED_IN_ERROR:
            reason = not_mapped if entry is None else f"entered in error (OBX-11 {status_code})"
            unused = (reason, None, False)
        elif entry is not None and entry.analyte is Analyte.REPORT_TEXT:
            report_reason = "report text without a HER2, ER or PgR statement"
        elif entry is None and value_type in _REPORT_TYPES:
            # Free text under a code no table knows: the group reads it for statements too.
            report_reason = not_mapped
        elif entry is None:
            unused = (not_mapped, None, False)
    unit_text = segment.component(6, 1) or segment.component(6, 2)
    after: list[tuple[str, str]] = []
    flags = _flags(segment, mapping, after)
    method_text = segment.component(17, 2) or segment.component(17, 1)
    return _Shape(
        code=known.code,
        value_type=value_type,
        status_code=status_code,
        status=status,
        before=tuple(before),
        unused=unused,
        report_reason=report_reason,
        entry=entry,
        indeterminate=(
            "result cannot be obtained (OBX-11 X)" if status is ResultStatus.CANCELLED else None
        ),
        unit=unit_text or None,
        ucum=mapping.unit_for(unit_text) if unit_text else None,
        flags=flags,
        after=tuple(after),
        method=_method(segment, mapping),
        method_text=method_text or None,
        performing=(
            segment.component(23, 1),
            segment.component(23, 6, 1),
            segment.component(23, 6, 2),
            segment.component(23, 6, 3),
        ),
    )


class _Read(NamedTuple):
    """One OBX's shape with its position, OBX-4 and OBX-5: everything but OBX-14."""

    provenance: Provenance
    outcome: ObxOutcome | None  # the whole outcome, when the value is not used
    value: _Value = _Value()
    warnings: tuple[IngestWarning, ...] = ()


def _read(
    segment: er7.Segment,
    fields: tuple[str, ...],
    shape: _Shape,
    position: int,
    mapping: MappingSet,
) -> _Read:
    memo: dict[tuple[object, ...], _Read] = mapping.reader_cache.setdefault(_READS, {})
    key = (shape, position, fields[4], fields[5])
    found = memo.get(key)
    if found is None:
        found = _new_read(segment, shape, position, mapping)
        if found.outcome is None or found.outcome.report_text is None:
            # Report text is not kept: it is as long as the lab writes, and seldom sent twice.
            if len(memo) >= _LIMIT:
                memo.clear()
            memo[key] = found
    return found


def _new_read(segment: er7.Segment, shape: _Shape, position: int, mapping: MappingSet) -> _Read:
    locator = f"OBX[{position}]"
    warnings = [
        IngestWarning(code=code, message=message, locator=locator) for code, message in shape.before
    ]
    provenance = Provenance(
        locator=locator,
        code=shape.code,
        sub_id=segment.field(4) or None,
        value_type=shape.value_type or None,
        value_text=segment.field(5) or None,
    )
    status = shape.status

    def unused(reason: str, analyte: Analyte | None = None, not_understood: bool = False) -> _Read:
        result = UnusedResult(
            provenance=provenance, reason=reason, analyte=analyte, not_understood=not_understood
        )
        return _Read(provenance, ObxOutcome(None, result, status, tuple(warnings)))

    if shape.unused is not None:
        return unused(*shape.unused)
    if shape.report_reason is not None:
        # Report text: the group reads its lines for statements; this stays the reason if none
        # is found.
        read = unused(shape.report_reason)
        assert read.outcome is not None
        text = "\n".join(segment.repetitions(5))
        return read._replace(outcome=read.outcome._replace(report_text=text or None))
    entry = shape.entry
    assert entry is not None  # else the shape says it is not used
    value_type = shape.value_type
    value = _read_value(segment, value_type, entry.analyte, mapping, locator, warnings)
    if value.reading is not None:
        warnings.extend(_reading_warnings(value.reading, locator))
    if shape.indeterminate is None and not usable(entry.analyte, value.number, value.answer):
        if not segment.raw(5):
            return unused("no value (OBX-5 empty)", entry.analyte)
        if value.reading is not None and value.reading.deferred:
            return unused("the lab says this result is still to come")
        # The value itself is not quoted: this text reaches ACKs and logs, and free text in
        # OBX-5 can hold anything, patient names included. Provenance keeps the value.
        return unused(
            f"{value_type or 'OBX-5'} value not understood for {entry.analyte}",
            entry.analyte,
            not_understood=True,
        )
    warnings.extend(
        IngestWarning(code=code, message=message, locator=locator) for code, message in shape.after
    )
    return _Read(provenance, None, value, tuple(warnings))


class _KnownCode(NamedTuple):
    """What the sender's tables say of one OBX-3: the same few codes come in every message."""

    code: Coding
    mapped: CodeEntry | None  # the entry the tables give, before the display check
    excluded: str | None  # why the tables exclude the code from classification
    check: CodeCheck  # its warning has no locator: each OBX that has the code gives its own


_KNOWN_CODES = "obx-result-codes"
"""The ``MappingSet.reader_cache`` key of the OBX-3 look-ups (bounded like the grammar's)."""


def _known_code(parts: list[str], mapping: MappingSet) -> _KnownCode:
    memo: dict[tuple[str, ...], _KnownCode] = mapping.reader_cache.setdefault(_KNOWN_CODES, {})
    key = tuple(parts)
    found = memo.get(key)
    if found is not None:
        return found
    code = _result_code(parts, mapping)
    entry, excluded = _lookup(parts, mapping)
    check = check_code(code, entry, mapping, "") if excluded is None else CodeCheck(None)
    found = _KnownCode(code, entry, excluded, check)
    if len(memo) >= 4096:  # codes are as unbounded as the senders make them
        memo.clear()
    memo[key] = found
    return found


def _result_code(parts: list[str], mapping: MappingSet) -> Coding:
    code = parts[0] if parts else ""
    system = parts[2] if len(parts) > 2 else ""
    return Coding(
        system=mapping.system_uri(system) if system else None,
        code=code or None,
        display=(parts[1] if len(parts) > 1 else "") or None,
    )


def _lookup(parts: list[str], mapping: MappingSet) -> tuple[CodeEntry | None, str | None]:
    """The mapping entry for OBX-3, trying the primary then the alternate code (CWE-4..6)."""
    padded = [*parts, "", "", "", "", "", ""]
    for code, system in ((padded[0], padded[2]), (padded[3], padded[5])):
        if not (code and system):
            continue
        uri = mapping.system_uri(system)
        excluded = mapping.exclusion(uri, code)
        if excluded is not None:
            return None, excluded
        entry = mapping.code(uri, code)
        if entry is not None:
            return entry, None
    return None, None


def _status(code: str, mapping: MappingSet, warnings: list[tuple[str, str]]) -> ResultStatus:
    status = mapping.observation_status_for(code) if code else None
    if status is None:
        shown = code or "(empty)"
        warnings.append(
            ("STATUS-UNKNOWN", f"OBX-11 {shown} is not a known result status; read as preliminary")
        )
        return ResultStatus.PRELIMINARY
    if status is ResultStatus.PRELIMINARY and code != "P":
        warnings.append(("STATUS-PRELIMINARY", f"OBX-11 {code} is read as preliminary"))
    return status


def _read_value(
    segment: er7.Segment,
    value_type: str,
    analyte: Analyte,
    mapping: MappingSet,
    locator: str,
    warnings: list[IngestWarning],
) -> _Value:
    if value_type == "SN":
        return _structured_numeric(segment, analyte, mapping, locator, warnings)
    if value_type in _CODED_TYPES:
        return _coded(segment, analyte, mapping, locator, warnings)
    text = "\n".join(segment.repetitions(5)).strip()
    if not text:
        return _Value()
    if value_type == "NM":
        number = parse_decimal(text)
        if number is not None and analyte in READ_AS_NUMBER:
            return _Value(number=Interval.point(number, text))
        if number is not None:
            # Labs send an IHC score as a bare number: read it as the score's wording, and say so.
            warnings.append(
                IngestWarning(
                    code="NM-AS-WORDING",
                    message=f"OBX-2 NM for {analyte} is read as the wording {text}",
                    locator=locator,
                )
            )
            return _text_value(text, analyte, mapping)
        warnings.append(
            IngestWarning(
                code="NM-NOT-NUMERIC",
                message="OBX-2 NM but OBX-5 is not a number; read as text",
                locator=locator,
            )
        )
    elif value_type not in _TEXT_TYPES:
        warnings.append(
            IngestWarning(
                code="VALUE-TYPE-UNKNOWN",
                message=f"OBX-2 {value_type or '(empty)'} is not a supported type; read as text",
                locator=locator,
            )
        )
    return _text_value(text, analyte, mapping)


def _text_value(text: str, analyte: Analyte, mapping: MappingSet) -> _Value:
    reading = grammar.read(mapping, text, analyte)
    number = reading.number if analyte in READ_AS_NUMBER else None
    return _Value(number=number, text=text, answer=reading.answer, reading=reading)


def _reading_warnings(reading: Reading, locator: str) -> list[IngestWarning]:
    return [
        IngestWarning(code=code, message=message, locator=locator)
        for code, message in reading.warnings
    ]


def _structured_numeric(
    segment: er7.Segment,
    analyte: Analyte,
    mapping: MappingSet,
    locator: str,
    warnings: list[IngestWarning],
) -> _Value:
    """SN ``comparator^num1^separator^num2``: ``^2.3``, ``>^6``, ``^2.3^:^1``, ``^1^-^10``."""
    comparator, first, separator, second = (segment.component(5, c) for c in (1, 2, 3, 4))
    text = segment.field(5)
    if comparator and not first and not separator:
        # The malformed but common "<0.10": comparator and number in one component.
        number = parse_interval(comparator)
        if number is not None:
            warnings.append(
                IngestWarning(
                    code="SN-MALFORMED",
                    message="SN value without component separators; read as a bound",
                    locator=locator,
                )
            )
            return _Value(number=replace(number, text=text))
        return _text_value(comparator, analyte, mapping)
    low = parse_decimal(first)
    if low is None:
        return _Value(text=text) if text else _Value()
    if separator in (":", "/") and second:
        high = parse_decimal(second)
        if high is None:
            return _Value(text=text)
        try:
            quotient = low / high
        except (DivisionByZero, InvalidOperation):
            return _Value(text=text)
        return _Value(
            number=Interval.point(quotient, f"{first}{separator}{second}"), ratio=(low, high)
        )
    if separator == "-" and second:
        high = parse_decimal(second)
        if high is None or high < low:
            return _Value(text=text)
        return _Value(number=Interval(low=low, high=high, text=f"{first}-{second}"))
    if separator == "+" and not second:
        # An ordinal such as an IHC score sent as SN ("^2^+").
        return _text_value(f"{first}+", analyte, mapping)
    if comparator and comparator not in _SN_COMPARATORS:
        return _Value(text=text)
    if comparator == "<>":
        return _Value(text=text)
    shown = first if comparator in ("", "=") else f"{comparator}{first}"
    return _Value(number=bounded(comparator or "=", low, shown))


def _coded(
    segment: er7.Segment,
    analyte: Analyte,
    mapping: MappingSet,
    locator: str,
    warnings: list[IngestWarning],
) -> _Value:
    parts = segment.components(5)
    code = parts[0] if parts else ""
    display = parts[1] if len(parts) > 1 else ""
    system_name = parts[2] if len(parts) > 2 else ""
    system = mapping.system_uri(system_name) if system_name else None
    coding = Coding(system=system, code=code or None, display=display or None)
    answer = mapping.answer(system=system, code=code) if system and code else None
    if answer is not None:
        return _Value(text=display or None, coding=coding, answer=answer)
    # Local or unknown answer codes: the wording (or a local code that is itself a wording,
    # as in "3+^Positive (3+)^L") is the next best evidence, percentages in it included.
    reading: Reading | None = None
    for wording in (display, code):
        if wording:
            reading = grammar.read(mapping, wording, analyte)
            if reading.answer is not None or reading.number is not None:
                break
    number = reading.number if reading is not None and analyte in READ_AS_NUMBER else None
    answer = reading.answer if reading is not None else None
    read_something = answer is not None or number is not None
    if read_something and system and code and not mapping.is_local(system):
        warnings.append(
            IngestWarning(
                code="ANSWER-CODE-UNKNOWN",
                message=f"answer code {code} ({system}) not in the mappings; its text was used",
                locator=locator,
            )
        )
    return _Value(
        number=number, text=display or None, coding=coding, answer=answer, reading=reading
    )


def _flags(
    segment: er7.Segment, mapping: MappingSet, warnings: list[tuple[str, str]]
) -> tuple[str, ...]:
    found: list[str] = []
    for rep in range(1, len(segment.raw_repetitions(8)) + 1):
        code = segment.component(8, 1, rep=rep)
        if not code:
            continue
        mapped = mapping.interpretation_for(code)
        if mapped is None:
            warnings.append(("FLAG-UNKNOWN", f"OBX-8 flag {code!r} not mapped"))
        else:
            found.append(mapped)
    return tuple(found)


def _method(segment: er7.Segment, mapping: MappingSet) -> Coding | None:
    """OBX-17 observation method: the assay, antibody clone or probe kit, as the lab names it."""
    return cwe_coding(segment.components(17), mapping)


def cwe_coding(components: list[str], mapping: MappingSet) -> Coding | None:
    """A CWE/CE value as a Coding (system name translated to its URI); ``None`` when empty."""
    code = components[0] if components else ""
    display = components[1] if len(components) > 1 else ""
    system = components[2] if len(components) > 2 else ""
    if not (code or display):
        return None
    return Coding(
        system=mapping.system_uri(system) if system else None,
        code=code or None,
        display=display or None,
    )
