"""Report text -> HER2, ER and PgR statements, each with the line it came from.

Many feeds (NAACCR Volume V narrative and synoptic pathology reports) carry the biomarkers only in
the report text: OBX TX/FT lines, ``DiagnosticReport.conclusion``, a plain-text
``presentedForm``. A statement is a label ("HER2 by IHC", "Estrogen receptor (ER)", "Ratio of
HER2 to CEP17 signals") with its value, in either order ("Negative for estrogen receptor"), read
by the same grammar as coded values, so a line is read only when every word of it is known.

Nothing is guessed. A section whose heading says it is still to come ("Addendum to follow:",
"Pending studies:"), and a statement that defers ("HER2 by FISH: pending") or negates in a way the
grammar does not read ("No HER2 amplification"), give no result, with a warning naming the line.
Lines that name no marker are not statements and say nothing. Deterministic, and fast: one pass
of the same tokenizer, no model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from adapter.ingest import grammar
from adapter.ingest.assemble import QUANTITY_ANALYTE, ReadValue, usable
from adapter.ingest.grammar import Part, Reading
from adapter.mapping import LabelTarget, MappingSet, Method, Quantity
from adapter.model import (
    IHC_ANALYTES,
    ISH_ANALYTES,
    Analyte,
    Coding,
    IngestWarning,
    Interval,
    Provenance,
    ReportedObservation,
    ResultStatus,
)


@dataclass(frozen=True)
class Statement:
    """One biomarker statement read from a line of report text."""

    analyte: Analyte
    reading: Reading
    locator: str  # "OBX[5] line 3", "OBX[5] lines 3-4", "OBX[5] line 3 to OBX[6] line 1"
    line: str  # the line as sent (the lines, one space between, when it runs over several)
    sources: tuple[str, ...] = ()  # the locators of the sources it was read from


_QUIET = frozenset({"filler", "sign", "score_words", "range_words"})
_NOT_VALUES = _QUIET | {"labels", "clause", "methods"}
_ISH_QUANTITIES = frozenset(
    {
        Quantity.RATIO,
        Quantity.HER2_COPIES,
        Quantity.CEP17_COPIES,
        Quantity.CELLS_COUNTED,
        Quantity.AMPLIFIED_PERCENT,
    }
)
_RECEPTOR_ANALYTE = {LabelTarget.ER: Analyte.ER_RESULT, LabelTarget.PGR: Analyte.PGR_RESULT}
_NAMES = {
    Analyte.HER2_IHC: "HER2 IHC",
    Analyte.HER2_ISH: "HER2 ISH",
    Analyte.HER2_INTERPRETATION: "HER2 interpretation",
    Analyte.ER_RESULT: "Estrogen receptor",
    Analyte.PGR_RESULT: "Progesterone receptor",
}
_LOINC = "http://loinc.org"
# The LOINC code codes.md names for each kind of result, in its any-tissue form: a line of text
# does not say what the specimen is (the record's tissue comes from the message, as for coded
# results). A line that is one ISH number ("Ratio of HER2 to CEP17 signals: 1.3") takes that
# number's code; one whose kind codes.md names no code for (cells counted) keeps none.
TEXT_CODES: dict[Analyte | Quantity, tuple[str, str]] = {
    Analyte.HER2_IHC: ("18474-7", "HER2 Ag [Presence] in Tissue by Immune stain"),
    Analyte.HER2_ISH: ("31150-6", "ERBB2 gene duplication [Presence] in Tissue by FISH"),
    Analyte.HER2_INTERPRETATION: ("48676-1", "HER2 [Interpretation] in Tissue"),
    Analyte.ER_RESULT: ("40556-3", "Estrogen receptor Ag [Presence] in Tissue by Immune stain"),
    Analyte.PGR_RESULT: (
        "40557-1",
        "Progesterone receptor Ag [Presence] in Tissue by Immune stain",
    ),
    Quantity.RATIO: (
        "49683-6",
        "ERBB2 gene copy number/Chromosome 17 copy number in Tissue by FISH",
    ),
    Quantity.HER2_COPIES: ("74860-8", "ERBB2 gene copy number/nucleus in Tissue by FISH"),
    Quantity.CEP17_COPIES: ("74861-6", "Chromosome 17 copy number/nucleus in Tissue by FISH"),
}


Source = tuple[str, str] | tuple[str, str, str | None]
"""(locator, text), or (locator, text, run): consecutive sources of one run (not None) are one
text."""


def read_text(
    sources: Iterable[Source], mapping: MappingSet
) -> tuple[list[Statement], list[IngestWarning]]:
    """The statements of every source, in order; warnings for lines not read.

    A label line ("HER2 (ERBB2) status by immunohistochemistry:") takes its value from the next
    line, and a statement continued on the next line (an open parenthesis, a trailing comma, a
    next line that starts in lower case) is read with it, so that the continuation can qualify
    it. Lines run on from one source to the next only within a run: one OBX per report line,
    the same OBX-3 in a row, is common in NAACCR feeds.
    """
    lines = _Lines(mapping)
    previous: str | None = None
    for source in sources:
        base, text = source[0], source[1]
        run = source[2] if len(source) == 3 else None
        if run is None or run != previous:
            lines.end()
        previous = run
        for number, line in enumerate(text.splitlines(), start=1):
            lines.add(base, number, line)
    lines.end()
    return lines.statements, lines.warnings


@dataclass(frozen=True)
class _Held:
    """A line waiting for the next: a label without its value, or a statement that may run on."""

    text: str
    base: str  # where it starts
    number: int
    statements: int = 0  # how many statements it gave (the last ones of the list)
    warnings: int = 0  # how many warnings it gave (the last ones of the list)
    runs_on: bool = False  # it says it continues (an open parenthesis, a trailing comma)
    bases: tuple[str, ...] = ()  # the sources it spans so far


class _Lines:
    """Report lines in order, each read alone or with the line it continues."""

    def __init__(self, mapping: MappingSet) -> None:
        self.mapping = mapping
        self.statements: list[Statement] = []
        self.warnings: list[IngestWarning] = []
        self.deferred_section = False
        self.label: _Held | None = None  # a label line, its value to come
        self.open: _Held | None = None  # a statement line the next line may continue

    def add(self, base: str, number: int, line: str) -> None:
        text = line.strip()
        if not text:
            self.deferred_section = False  # a blank line ends a section
            self.end()
            return
        read = _read_line(text, self.mapping)
        starts_anew = read.heading or read.names_marker
        if self.label is not None:
            label, self.label = self.label, None
            if not starts_anew:
                self._say(f"{label.text} {text}", label, base, number)
                return
            self._no_value(label)
        if self.open is not None:
            held, self.open = self.open, None
            if not starts_anew and (held.runs_on or _continues(text)):
                self._withdraw(held)
                self._say(f"{held.text} {text}", held, base, number)
                return
        if read.heading:
            self.deferred_section = read.defers
        elif read.label_only:
            self.label = _Held(text, base, number, bases=(base,))
        else:
            self._say(text, None, base, number)

    def end(self) -> None:
        """Nothing more for what is held: a label left without a value is said."""
        if self.label is not None:
            self._no_value(self.label)
        self.label = self.open = None

    def _say(self, text: str, start: _Held | None, base: str, number: int) -> None:
        """Read ``text``, which ends at ``base`` line ``number`` and starts at ``start``."""
        locator = f"{base} line {number}" if start is None else _span(start, base, number)
        bases = (base,) if start is None or start.base == base else (*start.bases, base)
        read = _read_line(text, self.mapping)
        statements, warnings = len(self.statements), len(self.warnings)
        for code, what in read.warnings:
            self.warnings.append(_warning(code, locator, what))
        for analyte, reading in read.statements:
            if self.deferred_section:
                self.warnings.append(_warning("TEXT-DEFERRED", locator, "in a section to follow"))
            else:
                self.statements.append(Statement(analyte, reading, locator, text, bases))
        if read.names_marker:
            self.open = _Held(
                text,
                start.base if start else base,
                start.number if start else number,
                len(self.statements) - statements,
                len(self.warnings) - warnings,
                read.runs_on,
                bases,
            )

    def _withdraw(self, held: _Held) -> None:
        """The held line is read again with its continuation: what it gave alone is taken back."""
        del self.statements[len(self.statements) - held.statements :]
        del self.warnings[len(self.warnings) - held.warnings :]

    def _no_value(self, held: _Held) -> None:
        self.warnings.append(
            _warning("TEXT-NOT-UNDERSTOOD", f"{held.base} line {held.number}", "has no value")
        )


def _span(held: _Held, base: str, number: int) -> str:
    if held.base == base:
        return f"{base} lines {held.number}-{number}"
    return f"{held.base} line {held.number} to {base} line {number}"


def _continues(text: str) -> bool:
    """A line that carries on the one before rather than starting anew: it starts in lower case
    ("in 5% of tumor cells") or with a sign no statement starts with."""
    first = text[0]
    return first.islower() or first in ",;)"


@dataclass(frozen=True)
class _Line:
    """What one line says, wherever it stands (remembered per sender: report lines repeat)."""

    heading: bool = False
    defers: bool = False
    label_only: bool = False  # a marker's label and ':' with no value: the value comes next
    names_marker: bool = False  # the line names a marker, so it starts a statement of its own
    runs_on: bool = False  # the statement is unfinished: an open parenthesis, a trailing comma
    statements: tuple[tuple[Analyte, Reading], ...] = ()
    warnings: tuple[tuple[str, str], ...] = ()


def _read_line(line: str, mapping: MappingSet) -> _Line:
    memo: dict[str, _Line] = mapping.reader_cache.setdefault("report-line", {})
    found = memo.get(line)
    if found is not None:
        return found
    parts = grammar.parts_of(line, grammar.lexicon(mapping))
    labelled = any(p.kind == "labels" for p in parts)
    if _is_heading(parts):
        read = _Line(heading=True, defers=any(p.kind == "deferrals" for p in parts))
    elif labelled and _ends_with_colon(parts) and not _has_value(parts):
        read = _Line(label_only=True, names_marker=True)
    else:
        said: list[tuple[Analyte, Reading]] = []
        problems: list[tuple[str, str]] = []
        for analyte, segment in _segments(parts, problems):
            reading = grammar.read_parts(segment, analyte)
            if reading.deferred:
                problems.append(("TEXT-DEFERRED", "says it is to follow"))
            elif reading.problem is not None:
                problems.append(("TEXT-NOT-UNDERSTOOD", f"not read ({reading.problem})"))
            elif usable(analyte, reading.number, reading.answer) or reading.quantities:
                said.append((analyte, reading))
        read = _Line(
            names_marker=labelled,
            runs_on=line.count("(") > line.count(")") or line.rstrip().endswith(","),
            statements=tuple(said),
            warnings=tuple(problems),
        )
    if len(memo) >= 4096:  # free text is unbounded: forget and start again
        memo.clear()
    memo[line] = read
    return read


def _warning(code: str, locator: str, what: str) -> IngestWarning:
    # The line is never quoted: warnings reach ACKs and logs.
    return IngestWarning(code=code, message=f"a biomarker statement {what}", locator=locator)


def _is_heading(parts: Sequence[Part]) -> bool:
    """A line that ends with ':' and holds no value: a section heading ("ADDENDUM TO FOLLOW:")."""
    if not _ends_with_colon(parts):
        return False
    return not any(p.kind in ("answer", "num", "labels", "quantities") for p in parts)


def _ends_with_colon(parts: Sequence[Part]) -> bool:
    meaningful = [p for p in parts if p.kind not in ("filler",)]
    return bool(meaningful) and meaningful[-1].kind == "sign" and meaningful[-1].value == ":"


def _segments(
    parts: Sequence[Part], warnings: list[tuple[str, str]]
) -> Iterable[tuple[Analyte, list[Part]]]:
    """Each statement of a line: its analyte and its parts, label first."""
    for clause in _sentences(parts):
        starts = [i for i, p in enumerate(clause) if p.kind == "labels"]
        if not starts:
            if any(p.kind == "quantities" and p.value in _ISH_QUANTITIES for p in clause):
                # "Ratio of HER2 to CEP17 signals: 1.3" names its own analyte
                yield from _targeted(LabelTarget.HER2, clause, warnings)
            elif any(p.kind == "methods" for p in clause) and any(
                p.kind == "deferrals" for p in clause
            ):
                # "reflex FISH to follow": a test still to come, said
                warnings.append(("TEXT-DEFERRED", "says it is to follow"))
            continue
        leading = clause[: starts[0]]
        says_something = any(p.kind not in _QUIET for p in leading)
        if says_something and len(starts) > 1:
            warnings.append(("TEXT-AMBIGUOUS", "names several markers"))
            continue
        pieces = [clause[a:b] for a, b in zip(starts, [*starts[1:], len(clause)], strict=True)]
        if says_something:
            pieces[0] = [*leading, *pieces[0]]  # "Negative for estrogen receptor"
        if len(pieces) > 1 and any(not _has_value(piece) for piece in pieces):
            # "ER and PR: positive": which value belongs to which marker is not said
            warnings.append(("TEXT-AMBIGUOUS", "names several markers"))
            continue
        for piece in pieces:
            labels = {p.value for p in piece if p.kind == "labels"}
            target = next(iter(labels)) if len(labels) == 1 else None
            if target is not None and target is not LabelTarget.OTHER:
                yield from _targeted(target, piece, warnings)


def _sentences(parts: Sequence[Part]) -> Iterable[list[Part]]:
    """Parts split at ';' and at a sentence's '.' (commas stay inside a statement)."""
    sentence: list[Part] = []
    for part in parts:
        if part.kind == "clause" and part.value in (";", "."):
            if sentence:
                yield sentence
            sentence = []
        else:
            sentence.append(part)
    if sentence:
        yield sentence


def _has_value(piece: Sequence[Part]) -> bool:
    return any(p.kind not in _NOT_VALUES for p in piece)


def _targeted(
    target: LabelTarget, piece: list[Part], warnings: list[tuple[str, str]]
) -> Iterable[tuple[Analyte, list[Part]]]:
    if target in _RECEPTOR_ANALYTE:
        yield _RECEPTOR_ANALYTE[target], piece
        return
    methods = {p.value for p in piece if p.kind == "methods"}
    if any(p.kind == "quantities" and p.value in _ISH_QUANTITIES for p in piece):
        methods.add(Method.ISH)
    if any(p.kind == "answer" and (p.scored or p.value.ihc0_subtype) for p in piece):
        methods.add(Method.IHC)
    if any(p.kind == "intensities" for p in piece):
        methods.add(Method.IHC)
    if len(methods) > 1:
        warnings.append(("TEXT-AMBIGUOUS", "names both IHC and ISH"))
        return
    if Method.IHC in methods:
        yield Analyte.HER2_IHC, piece
    elif Method.ISH in methods:
        yield Analyte.HER2_ISH, piece
    else:
        yield Analyte.HER2_INTERPRETATION, piece


def statement_values(statements: Sequence[Statement], status: ResultStatus) -> list[ReadValue]:
    """Each statement as a reported value, marked as read from text, with its line."""
    return [
        ReadValue(
            observation=ReportedObservation(
                analyte=statement.analyte,
                provenance=Provenance(
                    locator=statement.locator,
                    code=_text_code(statement),
                    value_type="text",
                    value_text=statement.line,
                    from_text=True,
                ),
                status=status,
                number=statement.reading.number,
                text=statement.line,
                notes=(f"Read from report text, {statement.locator}: {statement.line}",),
            ),
            answer=statement.reading.answer,
            reading=statement.reading,
        )
        for statement in statements
    ]


def _text_code(statement: Statement) -> Coding:
    """The statement's LOINC code (the emitted text says it was read from report text)."""
    reading = statement.reading
    kind: Analyte | Quantity = statement.analyte
    if statement.analyte is Analyte.HER2_ISH and reading.answer is None and reading.number is None:
        named = {quantity for quantity, _ in reading.quantities}
        if len(named) == 1:
            kind = named.pop()
    code = TEXT_CODES.get(kind)
    if code is None:
        return Coding(display=_NAMES[statement.analyte])
    return Coding(system=_LOINC, code=code[0], display=code[1])


_FAMILIES = (
    IHC_ANALYTES,
    ISH_ANALYTES,
    frozenset({Analyte.ER_RESULT, Analyte.ER_PERCENT}),
    frozenset({Analyte.PGR_RESULT, Analyte.PGR_PERCENT}),
    frozenset({Analyte.HER2_INTERPRETATION}),
)


def _family(analyte: Analyte) -> frozenset[Analyte]:
    return next(family for family in _FAMILIES if analyte in family)


def text_values_kept(
    coded: Sequence[ReadValue], from_text: Sequence[ReadValue], warnings: list[IngestWarning]
) -> list[ReadValue]:
    """The text values to use: those of a test the coded results do not report.

    Where the lab also coded the test, its coded result is used; a text that says another score
    or number is said (``TEXT-DISAGREES``), so that a reviewer looks, and is not used.
    """
    kept: list[ReadValue] = []
    for value in from_text:
        family = _family(value.analyte)
        same = [v for v in coded if v.analyte in family]
        if not same:
            kept.append(value)
            continue
        if _disagrees(value, same):
            warnings.append(
                IngestWarning(
                    code="TEXT-DISAGREES",
                    message="the report text states another result than the coded one; "
                    "the coded result is used",
                    locator=value.provenance.locator,
                )
            )
    return kept


def _disagrees(value: ReadValue, coded: Sequence[ReadValue]) -> bool:
    """The text names a score, or a number of an analyte, that the coded results do not hold."""
    score = value.answer.score if value.answer is not None else None
    scores = {a.score for v in coded if (a := v.answer) is not None and a.score is not None}
    if score is not None and scores and score not in scores:
        return True
    named: list[tuple[Analyte | None, Interval | None]] = [
        (value.analyte, value.observation.number)
    ]
    if value.reading is not None:
        named += [(QUANTITY_ANALYTE.get(q), n) for q, n in value.reading.quantities]
    for analyte, number in named:
        numbers = {
            (n.low, n.high)
            for v in coded
            if v.analyte is analyte and (n := v.observation.number) is not None
        }
        if number is not None and numbers and (number.low, number.high) not in numbers:
            return True
    return False
