"""The value grammar: one reader for result values, notes, methods and report lines.

A text is cut into tokens (numbers with their comparator and ``%`` or ``+``, words, signs), the
tokens into the phrases the mapping tables know (``[[answers]]`` wordings and ``[grammar]`` words:
scores, sub-types, intensities, methods and clones, quantities, labels, deferrals, negations,
recounts, filler), and the phrases are read in any order. No table entry is a whole sentence:
"Positive, score 3+ (complete membrane staining in >10% of cells)" is read from its parts.

Nothing is guessed. A word the tables do not know, a number no word explains, or a negation
makes the text not understood (``Reading.problem``, which never quotes the text). Two parts that
disagree (two scores, "1+ to 2+") give up the part they disagree on, with a warning, and keep the
rest: the conservative reading. A clause that says a result is still to come ("pending", "FISH
to follow") gives no result; about another test, it is set aside and said.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adapter.ingest.values import parse_decimal
from adapter.mapping import (
    Answer,
    GrammarPart,
    Intensity,
    LabelTarget,
    MappingSet,
    Method,
    Quantity,
)
from adapter.model import Analyte, Ihc0Subtype, IhcScore, Interpretation, Interval

# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------

_NUMBER = r"(?:<=|>=|<|>|=|^-)?\d+(?:\.\d+)?(?:%|\+)?|\+\d(?![\d.])"
_NUMBER_COMMA = r"(?:<=|>=|<|>|=|^-)?\d+(?:[.,]\d+)?(?:%|\+)?|\+\d(?![\d.,])"
_REST = r"|(?P<word>\d*[^\W\d_]\w*)|(?P<sign>\S)"
_TOKENS = re.compile(f"(?P<num>{_NUMBER}){_REST}")
_TOKENS_COMMA = re.compile(f"(?P<num>{_NUMBER_COMMA}){_REST}")
_SPACED = re.compile(r"(?<=[<>=])\s+(?=\d)|(?<=\d)\s+(?=[%+](?!\w))")
_SIGNS = str.maketrans({"≤": "<=", "≥": ">=", "–": "-", "—": "-", "‐": "-", "﹪": "%"})

_CLAUSE_SIGNS = frozenset({",", ";", "."})
_QUIET_SIGNS = frozenset({"(", ")", ":", "=", "/", "-", "[", "]", "'", '"'})
_RANGE_SIGN = "-"


def normalise(text: str) -> str:
    """Casefolded, one space between words, ``≤ 1 %`` written ``<=1%``."""
    folded = " ".join(text.casefold().translate(_SIGNS).split())
    return _SPACED.sub("", folded)


def tokenize(text: str, decimal_comma: bool = False) -> list[tuple[str, str]]:
    """``(kind, text)`` pairs, kind ``num``, ``word`` or ``sign``, of a normalised text."""
    pattern = _TOKENS_COMMA if decimal_comma else _TOKENS
    return [(match.lastgroup or "sign", match.group()) for match in pattern.finditer(text)]


# --------------------------------------------------------------------------------------------
# Parts: phrases of the tables, numbers, signs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number:
    interval: Interval
    percent: bool  # written with "%"
    plus: bool  # written "2+" or "+2": an IHC score, not a quantity


@dataclass(frozen=True, slots=True)
class Part:
    """One phrase (or number, or sign) of a text and what it means."""

    kind: str  # "answer", a [grammar] list or table name, "num", "clause", "sign", "unknown"
    value: Any = None  # Answer, Number, Method, Quantity, Intensity, LabelTarget
    scored: bool = False  # an answer phrase holding a number ("0+", "score 2"): a score part
    number: Number | None = None  # an answer phrase that is one bare number ("2"), as a number


AMBIGUOUS = "VALUE-AMBIGUOUS"  # parts that disagree: the part given up, the rest read
SET_ASIDE = "VALUE-SET-ASIDE"  # a clause about another marker or test, not read


@dataclass(frozen=True)
class Lexicon:
    """A sender's phrases, indexed by first token, longest first."""

    phrases: dict[str, tuple[tuple[tuple[str, ...], Part], ...]]
    decimal_comma: bool


def lexicon(mapping: MappingSet) -> Lexicon:
    found = mapping.reader_cache.get("lexicon")
    if isinstance(found, Lexicon):
        return found
    built = _build_lexicon(mapping)
    mapping.reader_cache["lexicon"] = built
    return built


def _build_lexicon(mapping: MappingSet) -> Lexicon:
    comma = mapping.grammar.decimal_comma
    entries: dict[tuple[str, ...], Part] = {}
    grammar_parts: Iterable[tuple[str, GrammarPart]] = mapping.grammar.phrases.items()
    for phrase, (kind, value) in grammar_parts:
        tokens = tuple(text for _, text in tokenize(phrase, comma))
        if tokens:
            entries[tokens] = Part(kind, value)
    for phrase, answer in mapping.text_answers.items():
        tokens_found = tokenize(normalise(phrase), comma)
        tokens = tuple(text for _, text in tokens_found)
        if not tokens:
            continue
        scored = any(kind == "num" for kind, _ in tokens_found)
        number_only = len(tokens_found) == 1 and tokens_found[0][0] == "num"
        number = _number(tokens[0]) if number_only else None
        entries[tokens] = Part("answer", answer, scored, number)
    index: dict[str, list[tuple[tuple[str, ...], Part]]] = {}
    for tokens, part in entries.items():
        index.setdefault(tokens[0], []).append((tokens, part))
    return Lexicon(
        {first: tuple(sorted(found, key=lambda e: -len(e[0]))) for first, found in index.items()},
        comma,
    )


def parts_of(text: str, words: Lexicon) -> list[Part]:
    """The phrases of ``text``, longest match first (a bare "2" is a score phrase here; the
    reader takes it for a number where the value is not an IHC score)."""
    tokens = tokenize(normalise(text), words.decimal_comma)
    texts = tuple(token for _, token in tokens)
    phrases = words.phrases
    found: list[Part] = []
    at, count = 0, len(texts)
    while at < count:
        for phrase, part in phrases.get(texts[at], ()):
            end = at + len(phrase)
            if texts[at:end] == phrase:  # one C-level tuple comparison per candidate
                found.append(part)
                at = end
                break
        else:
            found.append(_plain_part(tokens[at][0], texts[at], words.decimal_comma))
            at += 1
    return found


def _plain_part(kind: str, token: str, decimal_comma: bool) -> Part:
    if kind == "num":
        number = _number(token.replace(",", ".") if decimal_comma else token, shown=token)
        return Part("num", number) if number is not None else Part("unknown")
    if kind == "sign":
        if token in _CLAUSE_SIGNS:
            return Part("clause", token)
        if token in _QUIET_SIGNS:
            return Part("sign", token)
    return Part("unknown")


def _number(token: str, shown: str | None = None) -> Number | None:
    plus = token.endswith("+") or token.startswith("+")
    percent = token.endswith("%")
    body = token.strip("+%")
    comparator = ""
    for sign in ("<=", ">=", "<", ">", "="):
        if body.startswith(sign):
            comparator, body = sign, body[len(sign) :]
            break
    value = parse_decimal(body)
    if value is None:
        return None
    shown = shown or token
    if comparator == "<":
        interval = Interval(high=value, high_inclusive=False, text=shown)
    elif comparator == "<=":
        interval = Interval(high=value, text=shown)
    elif comparator == ">":
        interval = Interval(low=value, low_inclusive=False, text=shown)
    elif comparator == ">=":
        interval = Interval(low=value, text=shown)
    else:
        interval = Interval.point(value, shown)
    return Number(interval, percent, plus)


# --------------------------------------------------------------------------------------------
# Readings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """What a text says, part by part. ``problem`` set: nothing of it may be used."""

    answer: Answer | None = None  # score, sub-type, stated word, failed, recount, probe
    number: Interval | None = None  # the value's own number (a percentage, a count)
    quantities: tuple[tuple[Quantity, Interval], ...] = ()  # numbers a word names ("ratio 2.3")
    intensity: Intensity | None = None
    method: Method | None = None
    heterogeneous: bool = False
    recount: bool = False  # the text says a recount was done ("blinded recount: same group")
    deferred: bool = False  # the text says the result is still to come
    problem: str | None = None  # why it is not understood (never quotes the text)
    warnings: tuple[tuple[str, str], ...] = ()  # (code, message): what was set aside, and why

    def quantity(self, which: Quantity) -> Interval | None:
        return next((number for named, number in self.quantities if named is which), None)


_IHC = frozenset({Analyte.HER2_IHC, Analyte.HER2_IHC0_SUBTYPE})
_PERCENT = frozenset(
    {
        Analyte.ER_RESULT,
        Analyte.ER_PERCENT,
        Analyte.PGR_RESULT,
        Analyte.PGR_PERCENT,
        Analyte.HER2_IHC_STAINED_PERCENT,
        Analyte.ISH_AMPLIFIED_PERCENT,
    }
)
_COUNT = frozenset(
    {
        Analyte.HER2_CEP17_RATIO,
        Analyte.HER2_COPIES,
        Analyte.CEP17_COPIES,
        Analyte.ISH_CELLS_COUNTED,
        Analyte.ISH_RECOUNT,
    }
)
_ISH = _COUNT | {Analyte.HER2_ISH, Analyte.ISH_AMPLIFIED_PERCENT}
_SCORED = _IHC | {Analyte.HER2_INTERPRETATION, None}  # where "2" may be an IHC score
_RECEPTORS = {
    Analyte.ER_RESULT: LabelTarget.ER,
    Analyte.ER_PERCENT: LabelTarget.ER,
    Analyte.PGR_RESULT: LabelTarget.PGR,
    Analyte.PGR_PERCENT: LabelTarget.PGR,
}
_QUANTITY_METHOD = {
    Quantity.RATIO: Method.ISH,
    Quantity.HER2_COPIES: Method.ISH,
    Quantity.CEP17_COPIES: Method.ISH,
    Quantity.CELLS_COUNTED: Method.ISH,
    Quantity.AMPLIFIED_PERCENT: Method.ISH,
}
_OWN_QUANTITY = {
    Analyte.HER2_CEP17_RATIO: Quantity.RATIO,
    Analyte.HER2_COPIES: Quantity.HER2_COPIES,
    Analyte.CEP17_COPIES: Quantity.CEP17_COPIES,
    Analyte.ISH_CELLS_COUNTED: Quantity.CELLS_COUNTED,
    Analyte.ISH_AMPLIFIED_PERCENT: Quantity.AMPLIFIED_PERCENT,
    Analyte.ER_PERCENT: Quantity.PERCENT,
    Analyte.PGR_PERCENT: Quantity.PERCENT,
    Analyte.ER_RESULT: Quantity.PERCENT,
    Analyte.PGR_RESULT: Quantity.PERCENT,
    Analyte.HER2_IHC_STAINED_PERCENT: Quantity.PERCENT,
}


def method_of(analyte: Analyte | None) -> Method | None:
    if analyte is None or analyte is Analyte.HER2_INTERPRETATION:
        return None
    return Method.ISH if analyte in _ISH else Method.IHC


def target_of(analyte: Analyte | None) -> LabelTarget | None:
    if analyte is None:
        return None
    return _RECEPTORS.get(analyte, LabelTarget.HER2)


def read(mapping: MappingSet, text: str, analyte: Analyte | None) -> Reading:
    """The reading of one value (or note, or method) of ``analyte``; remembered per sender."""
    memo: dict[tuple[str, Analyte | None], Reading] = mapping.reader_cache.setdefault("read", {})
    key = (text, analyte)
    found = memo.get(key)
    if found is not None:
        return found
    reading = read_parts(parts_of(text, lexicon(mapping)), analyte)
    if len(memo) >= 4096:  # free text is unbounded: forget and start again (as mapping._Memo)
        memo.clear()
    memo[key] = reading
    return reading


def read_parts(parts: Sequence[Part], analyte: Analyte | None) -> Reading:
    return _Reader(analyte).read(parts)


class _Reader:
    def __init__(self, analyte: Analyte | None) -> None:
        self.analyte = analyte
        self.method = method_of(analyte)
        self.target = target_of(analyte)
        self.warnings: list[tuple[str, str]] = []

    def read(self, parts: Sequence[Part]) -> Reading:
        if self.analyte not in _SCORED:
            # "2" is a score only where the value is an IHC score; elsewhere it is a number
            parts = [Part("num", p.number) if p.number is not None else p for p in parts]
        if any(part.kind == "unknown" for part in parts):
            return Reading(problem="words or signs not in the mappings")
        kept: list[Part] = []
        deferred = False
        for clause in _clauses(parts):
            verdict = self._clause(clause)
            if verdict == "problem-negation":
                return Reading(problem="a negation the grammar does not read")
            if verdict == "problem-several":
                return Reading(problem="one clause names several markers")
            if verdict == "deferred":
                deferred = True
            elif verdict == "keep":
                kept.extend(clause)
        if deferred:
            return Reading(deferred=True, warnings=tuple(self.warnings))
        if not kept:
            if self.warnings:
                return Reading(problem="names another marker or test only")
            return Reading()
        return self._meaning(kept)

    # -- clauses -----------------------------------------------------------------------------

    def _clause(self, clause: list[Part]) -> str:
        methods = {p.value for p in clause if p.kind == "methods"}
        methods |= {
            m for p in clause if p.kind == "quantities" and (m := _QUANTITY_METHOD.get(p.value))
        }
        labels = {p.value for p in clause if p.kind == "labels"}
        other_marker = bool(labels) and self.target is not None and self.target not in labels
        other_test = self.method is not None and bool(methods) and self.method not in methods
        says_later = any(p.kind == "deferrals" for p in clause)
        negated = any(p.kind == "negations" for p in clause)
        if self.target in labels and len(labels) > 1:
            return "problem-several"  # "ER/PR: positive (90%)": whose value is it?
        if other_marker:
            self.warnings.append((SET_ASIDE, "a clause about another marker was set aside"))
            return "skip"
        if other_test and (says_later or negated):
            self.warnings.append(
                (SET_ASIDE, "a clause about another test (to follow or not done) was set aside")
            )
            return "skip"
        if says_later:
            return "deferred"
        if negated:
            return "problem-negation"
        return "keep"

    # -- meaning -----------------------------------------------------------------------------

    def _meaning(self, parts: list[Part]) -> Reading:
        parts = self._ranges(parts)
        quantities, free = self._bind(parts)
        words = [p.value for p in parts if p.kind == "answer" and not p.scored]
        scores = [p.value for p in parts if p.kind == "answer" and p.scored]
        number: Interval | None = None
        problem: str | None = None
        for part in free:
            kind, value = part.kind, part.value
            if kind == "score-range":
                scores_in_range = value
                if set(scores_in_range) <= {IhcScore.ZERO, IhcScore.ONE}:
                    self.warnings.append(
                        (AMBIGUOUS, "a score range within 0 to 1+: negative, no score used")
                    )
                    words.append(Answer(stated=Interpretation.NEGATIVE))
                else:
                    self.warnings.append((AMBIGUOUS, "a score range: no score used"))
                continue
            if kind == "fraction":
                problem = "a fraction no word explains"
                continue
            # a bare number: the value's own percentage or count
            if self.analyte in _IHC:
                if value.percent:
                    quantities.append((Quantity.PERCENT, value.interval))
                    continue
                problem = "a number that is not an IHC score"
            elif not value.plus and (
                self.analyte in _PERCENT or (self.analyte in _COUNT and not value.percent)
            ):
                if number is not None:
                    problem = "two numbers for one value"
                number = value.interval
            else:
                problem = "a number no word explains"
        own = _OWN_QUANTITY.get(self.analyte) if self.analyte is not None else None
        if self.analyte in _IHC:
            own = None  # an IHC value's percentage is the stained cells, a value of its own
        if own is not None:
            # "Ratio: 2.3" in a ratio value: the named number is the value's own
            mine = [n for q, n in quantities if q is own] + ([number] if number else [])
            quantities = [(q, n) for q, n in quantities if q is not own]
            if len({_bounds(n) for n in mine}) > 1:
                problem = "two numbers for one value"
            elif mine:
                number = mine[0]
        if self.analyte not in _IHC and any(p.kind == "score_words" for p in parts):
            problem = problem or "a score for a value that is not an IHC score"
        if problem is not None:
            return Reading(problem=problem)
        answer = self._answer(words, scores)
        scored_elsewhere = self.analyte not in _SCORED
        if answer is not None and answer.score is not None and scored_elsewhere:
            return Reading(problem="an IHC score for a value that is not an IHC score")
        intensity = next((p.value for p in parts if p.kind == "intensities"), None)
        answer = self._subtype_from_staining(answer, intensity, parts)
        methods = {p.value for p in parts if p.kind == "methods"}
        return Reading(
            answer=answer,
            number=number,
            quantities=tuple(quantities),
            intensity=intensity,
            method=next(iter(methods)) if len(methods) == 1 else None,
            heterogeneous=any(p.kind == "heterogeneity" for p in parts),
            recount=any(p.kind == "recounts" for p in parts),
            warnings=tuple(self.warnings),
        )

    def _ranges(self, parts: list[Part]) -> list[Part]:
        """``1-10%`` and ``1 to 10%`` are one interval; ``1+ to 2+`` and ``0-1+`` a score range;
        ``7/8`` (an Allred score out of 8) a fraction, whose numerator a quantity word may name.
        """
        out: list[Part] = []
        at = 0
        while at < len(parts):
            part = parts[at]
            joined = None
            if at + 2 < len(parts) and _is_range_word(parts[at + 1]):
                joined = _join_range(part, parts[at + 2])
            elif (
                at + 2 < len(parts) and parts[at + 1].kind == "sign" and parts[at + 1].value == "/"
            ):
                joined = _fraction(part, parts[at + 2])
            if joined is not None:
                out.append(joined)
                at += 3
            else:
                out.append(part)
                at += 1
        return out

    def _bind(self, parts: list[Part]) -> tuple[list[tuple[Quantity, Interval]], list[Part]]:
        """Numbers that a quantity word names (after it, else just before it); the rest free."""
        meaningful = [p for p in parts if p.kind not in ("filler", "sign", "clause")]
        bound: set[int] = set()
        quantities: list[tuple[Quantity, Interval]] = []
        for index, part in enumerate(meaningful):
            if part.kind != "quantities":
                continue
            for neighbour in (index + 1, index - 1):
                if 0 <= neighbour < len(meaningful) and neighbour not in bound:
                    candidate = meaningful[neighbour]
                    if candidate.kind in ("num", "fraction") and not candidate.value.plus:
                        quantities.append((part.value, candidate.value.interval))
                        bound.add(neighbour)
                        break
        free = [
            p
            for i, p in enumerate(meaningful)
            if i not in bound and p.kind in ("num", "score-range", "fraction")
        ]
        return quantities, free

    def _answer(self, words: list[Answer], scores: list[Answer]) -> Answer | None:
        worded = self._merge(words, "two result words that disagree: neither used")
        scored = self._merge(scores, "two IHC scores that disagree: no score used")
        if worded is None or scored is None:
            return worded or scored
        both = worded.merged(scored)
        if both is not None:
            return both
        # A contradiction such as "HER2-null (1+)": the score and the word, for the rules to see.
        return Answer(score=scored.score, ihc0_subtype=scored.ihc0_subtype, stated=worded.stated)

    def _merge(self, answers: list[Answer], disagreement: str) -> Answer | None:
        if not answers:
            return None
        merged = answers[0]
        for other in answers[1:]:
            both = merged.merged(other)
            if both is None:
                self.warnings.append((AMBIGUOUS, disagreement))
                return _without_disagreement(merged, other)
            merged = both
        return merged

    def _subtype_from_staining(
        self, answer: Answer | None, intensity: Intensity | None, parts: list[Part]
    ) -> Answer | None:
        """IHC 0 with faint or weak membrane staining is ultralow (DESTINY-Breast06 wording)."""
        if self.analyte not in _IHC or answer is None or answer.score is not IhcScore.ZERO:
            return answer
        if intensity is None or answer.ihc0_subtype is not None:
            return answer
        if intensity in (Intensity.FAINT, Intensity.WEAK):
            return answer.model_copy(update={"ihc0_subtype": Ihc0Subtype.ULTRALOW})
        self.warnings.append(
            (AMBIGUOUS, "IHC 0 with moderate or strong staining: no sub-type used")
        )
        return answer


def _without_disagreement(first: Answer, second: Answer) -> Answer:
    """The fields two answers agree on (or only one sets); the fields they disagree on dropped."""
    values: dict[str, Any] = {}
    for name in ("score", "ihc0_subtype", "stated", "probe"):
        mine, theirs = getattr(first, name), getattr(second, name)
        values[name] = (
            mine if theirs is None or mine == theirs else theirs if mine is None else None
        )
    return Answer(
        indeterminate=first.indeterminate or second.indeterminate,
        recount=first.recount or second.recount,
        **values,
    )


def _clauses(parts: Sequence[Part]) -> Iterable[list[Part]]:
    clause: list[Part] = []
    for part in parts:
        if part.kind == "clause":
            if clause:
                yield clause
            clause = []
        else:
            clause.append(part)
    if clause:
        yield clause


def _is_range_word(part: Part) -> bool:
    return part.kind == "range_words" or (part.kind == "sign" and part.value == _RANGE_SIGN)


_SCORE_OF_NUMBER = {"0": IhcScore.ZERO, "1": IhcScore.ONE, "2": IhcScore.TWO, "3": IhcScore.THREE}


def _score(part: Part) -> IhcScore | None:
    if part.kind == "answer" and part.scored and part.value.score is not None:
        return part.value.score  # type: ignore[no-any-return]
    number = _as_number(part)
    if number is not None and not number.percent and number.interval.value is not None:
        return _SCORE_OF_NUMBER.get(str(number.interval.value))
    return None


def _as_number(part: Part) -> Number | None:
    if part.kind == "num":
        return part.value  # type: ignore[no-any-return]
    return part.number


def _join_range(low: Part, high: Part) -> Part | None:
    first, second = _as_number(low), _as_number(high)
    numeric = first is not None and second is not None and not (first.plus or second.plus)
    if numeric and first is not None and second is not None:
        a, b = first.interval.value, second.interval.value
        if a is None or b is None or a > b:
            return None
        shown = f"{first.interval.text}-{second.interval.text}"
        percent = first.percent or second.percent
        return Part("num", Number(Interval(low=a, high=b, text=shown), percent, plus=False))
    first_score, second_score = _score(low), _score(high)
    if first_score is not None and second_score is not None:
        order = list(IhcScore)
        a_at, b_at = order.index(first_score), order.index(second_score)
        if a_at < b_at:
            return Part("score-range", tuple(order[a_at : b_at + 1]))
    return None


def _fraction(top: Part, bottom: Part) -> Part | None:
    """``7/8``: the numerator, kept as a number only a quantity word ("Allred") may take."""
    first, second = _as_number(top), _as_number(bottom)
    if first is None or second is None or first.percent or second.percent:
        return None
    return Part("fraction", first)


def _bounds(number: Interval) -> tuple[Decimal | None, bool, Decimal | None, bool]:
    return (number.low, number.low_inclusive, number.high, number.high_inclusive)
