"""Format-neutral assembly: read values of one order -> IHC, ISH, ER/PgR results, and the tissue."""

from __future__ import annotations

from decimal import Decimal

import pytest
from mapping_support import example_mappings

from adapter.ingest.assemble import AssembledResults, ReadValue, assemble, resolve_tissue
from adapter.mapping import Answer, Mappings, MappingSet
from adapter.model import (
    Analyte,
    Ihc0Subtype,
    IhcScore,
    Interpretation,
    Interval,
    IshProbe,
    Provenance,
    ReportedObservation,
    ResultStatus,
    Tissue,
)

D = Decimal
A = Analyte


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return example_mappings()


@pytest.fixture(scope="module")
def default(mappings: Mappings) -> MappingSet:
    return mappings.default


_counter = iter(range(1, 10_000))


def value(
    analyte: Analyte,
    *,
    answer: Answer | None = None,
    number: str | None = None,
    text: str | None = None,
    notes: tuple[str, ...] = (),
    probe: IshProbe | None = None,
    scope: Tissue | None = None,
    indeterminate: str | None = None,
) -> ReadValue:
    """A read value as a reader would hand it over (numbers parsed by hand, not by values.py)."""
    position = next(_counter)
    interval = None
    if number is not None:
        interval = Interval.point(D(number), number)
    observation = ReportedObservation(
        analyte=analyte,
        provenance=Provenance(locator=f"OBX[{position}]", value_text=text or number),
        status=ResultStatus.FINAL,
        number=interval,
        text=text,
        notes=notes,
    )
    return ReadValue(observation, answer, probe, scope, indeterminate)


def run(mapping: MappingSet, *values: ReadValue, notes: tuple[str, ...] = ()) -> AssembledResults:
    return assemble(values, mapping, notes)


def codes(result: AssembledResults) -> list[str]:
    return [warning.code for warning in result.warnings]


# --------------------------------------------------------------------------------------------
# HER2 IHC
# --------------------------------------------------------------------------------------------


def test_single_ihc_score(default: MappingSet) -> None:
    """One score (with its stated word) is the IHC result."""
    result = run(
        default,
        value(A.HER2_IHC, answer=Answer(score=IhcScore.THREE, stated=Interpretation.POSITIVE)),
    )
    ihc = result.her2_ihc
    assert ihc is not None
    assert (ihc.score, ihc.stated, ihc.indeterminate_reason) == (
        IhcScore.THREE,
        Interpretation.POSITIVE,
        None,
    )
    assert codes(result) == []


def test_agreeing_ihc_results_are_not_a_conflict(default: MappingSet) -> None:
    """The same score reported twice (a code and a wording) is one score."""
    result = run(
        default,
        value(A.HER2_IHC, answer=Answer(score=IhcScore.TWO)),
        value(A.HER2_IHC, answer=Answer(score=IhcScore.TWO, stated=Interpretation.EQUIVOCAL)),
    )
    assert result.her2_ihc is not None
    assert result.her2_ihc.score is IhcScore.TWO
    assert codes(result) == []


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(Answer(score=IhcScore.THREE), Answer(score=IhcScore.ONE), id="scores-3+-1+"),
        pytest.param(
            Answer(stated=Interpretation.POSITIVE),
            Answer(stated=Interpretation.NEGATIVE),
            id="stated-positive-negative",
        ),
        pytest.param(
            Answer(score=IhcScore.ZERO, ihc0_subtype=Ihc0Subtype.NULL),
            Answer(score=IhcScore.ZERO, ihc0_subtype=Ihc0Subtype.ULTRALOW),
            id="subtypes-null-ultralow",
        ),
    ],
)
def test_conflicting_ihc_results_are_a_conflict_not_a_failure(
    default: MappingSet, first: Answer, second: Answer
) -> None:
    """Two different IHC results in one order: none is picked; the conflict names their
    positions (never their values), and it is not a failed test."""
    result = run(default, value(A.HER2_IHC, answer=first), value(A.HER2_IHC, answer=second))
    ihc = result.her2_ihc
    assert ihc is not None
    assert (ihc.score, ihc.ihc0_subtype, ihc.stated) == (None, None, None)
    assert ihc.indeterminate_reason is None
    assert ihc.conflict is not None
    assert ihc.conflict.startswith("conflicting HER2 IHC results in one order: OBX[")
    assert codes(result) == ["CONFLICTING-RESULTS"]


@pytest.mark.parametrize(
    ("subtype", "expected"),
    [
        pytest.param(Ihc0Subtype.ULTRALOW, Ihc0Subtype.ULTRALOW, id="ultralow"),
        pytest.param(Ihc0Subtype.NULL, Ihc0Subtype.NULL, id="null"),
    ],
)
def test_subtype_result_alone_implies_score_zero(
    default: MappingSet, subtype: Ihc0Subtype, expected: Ihc0Subtype
) -> None:
    """A sub-type result ("ultralow", "null") without a score result says the score is 0."""
    result = run(
        default,
        value(A.HER2_IHC0_SUBTYPE, answer=Answer(score=IhcScore.ZERO, ihc0_subtype=subtype)),
    )
    assert result.her2_ihc is not None
    assert (result.her2_ihc.score, result.her2_ihc.ihc0_subtype) == (IhcScore.ZERO, expected)


def test_score_zero_with_separate_subtype(default: MappingSet) -> None:
    """Score 0 and a separate sub-type result combine."""
    result = run(
        default,
        value(A.HER2_IHC, answer=Answer(score=IhcScore.ZERO)),
        value(
            A.HER2_IHC0_SUBTYPE,
            answer=Answer(score=IhcScore.ZERO, ihc0_subtype=Ihc0Subtype.ULTRALOW),
        ),
    )
    assert result.her2_ihc is not None
    assert (result.her2_ihc.score, result.her2_ihc.ihc0_subtype) == (
        IhcScore.ZERO,
        Ihc0Subtype.ULTRALOW,
    )


def test_score_one_with_ultralow_subtype_is_a_conflict(default: MappingSet) -> None:
    """Score 1+ and an "ultralow" (score 0) sub-type contradict each other."""
    result = run(
        default,
        value(A.HER2_IHC, answer=Answer(score=IhcScore.ONE)),
        value(
            A.HER2_IHC0_SUBTYPE,
            answer=Answer(score=IhcScore.ZERO, ihc0_subtype=Ihc0Subtype.ULTRALOW),
        ),
    )
    assert result.her2_ihc is not None
    assert result.her2_ihc.score is None
    assert result.her2_ihc.conflict is not None
    assert result.her2_ihc.indeterminate_reason is None
    assert "CONFLICTING-RESULTS" in codes(result)


def test_lab_says_ihc_indeterminate(default: MappingSet) -> None:
    """An "indeterminate" wording gives the reason, naming where it was reported."""
    result = run(
        default,
        value(
            A.HER2_IHC,
            answer=Answer(stated=Interpretation.INDETERMINATE, indeterminate=True),
            text="Indeterminate",
        ),
    )
    assert result.her2_ihc is not None
    reason = result.her2_ihc.indeterminate_reason
    assert reason is not None
    assert "'Indeterminate'" in reason
    assert "OBX[" in reason


def test_stained_percent(default: MappingSet) -> None:
    """The percentage of stained cells is kept as reported."""
    result = run(
        default,
        value(A.HER2_IHC, answer=Answer(score=IhcScore.ZERO)),
        value(A.HER2_IHC_STAINED_PERCENT, number="5"),
    )
    assert result.her2_ihc is not None
    assert result.her2_ihc.stained_percent == Interval.point(D("5"), "5")


def test_no_ihc_values_no_ihc_result(default: MappingSet) -> None:
    """Without IHC values there is no IHC result at all (not an empty one)."""
    result = run(default, value(A.ER_PERCENT, number="95"))
    assert result.her2_ihc is None
    assert result.her2_ish is None


# --------------------------------------------------------------------------------------------
# ISH: probe, counts, recount
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "probe", "warnings"),
    [
        pytest.param(
            (value(A.HER2_CEP17_RATIO, number="2.3", probe=IshProbe.DUAL),),
            IshProbe.DUAL,
            [],
            id="from-ratio-code",
        ),
        pytest.param(
            (value(A.HER2_COPIES, number="6.5", probe=IshProbe.SINGLE),),
            IshProbe.SINGLE,
            [],
            id="from-single-probe-code",
        ),
        pytest.param(
            (
                value(A.HER2_COPIES, number="6.5"),
                value(A.HER2_ISH, answer=Answer(probe=IshProbe.SINGLE), text="single probe"),
            ),
            IshProbe.SINGLE,
            [],
            id="from-answer",
        ),
        pytest.param(
            (value(A.HER2_COPIES, number="6.5"), value(A.CEP17_COPIES, number="2.0")),
            IshProbe.DUAL,
            [],
            id="from-cep17-presence",
        ),
        pytest.param((value(A.HER2_COPIES, number="6.5"),), None, [], id="not-stated"),
        pytest.param(
            (
                value(A.HER2_COPIES, number="6.5", probe=IshProbe.SINGLE),
                value(A.CEP17_COPIES, number="2.0"),
            ),
            None,
            ["CONFLICTING-PROBE"],
            id="single-code-with-cep17",
        ),
    ],
)
def test_ish_probe(
    default: MappingSet,
    values: tuple[ReadValue, ...],
    probe: IshProbe | None,
    warnings: list[str],
) -> None:
    """The probe comes from codes, answers or CEP17; conflicting evidence gives none."""
    result = run(default, *values)
    assert result.her2_ish is not None
    assert result.her2_ish.probe is probe
    assert codes(result) == warnings


def test_ish_numbers(default: MappingSet) -> None:
    """Ratio, copies, CEP17 and cells counted are kept exactly."""
    result = run(
        default,
        value(A.HER2_CEP17_RATIO, number="2.30"),
        value(A.HER2_COPIES, number="4.6"),
        value(A.CEP17_COPIES, number="2.0"),
        value(A.ISH_CELLS_COUNTED, number="20"),
    )
    ish = result.her2_ish
    assert ish is not None
    assert ish.ratio is not None
    assert str(ish.ratio.value) == "2.30"
    assert (ish.her2_copies, ish.cep17_copies) == (
        Interval.point(D("4.6"), "4.6"),
        Interval.point(D("2.0"), "2.0"),
    )
    assert ish.cells_counted == 20
    assert ish.recount_done is False


@pytest.mark.parametrize(
    ("values", "notes", "recount"),
    [
        pytest.param(
            (value(A.ISH_RECOUNT, answer=Answer(stated=Interpretation.POSITIVE), text="Yes"),),
            (),
            True,
            id="recount-result-positive",
        ),
        pytest.param(
            (value(A.ISH_RECOUNT, number="20"),), (), False, id="recount-cells-left-to-classifier"
        ),
        pytest.param(
            (value(A.HER2_ISH, answer=Answer(recount=True), text="Recount performed"),),
            (),
            True,
            id="recount-answer",
        ),
        pytest.param(
            (value(A.HER2_CEP17_RATIO, number="2.3", notes=("Recount by second observer",)),),
            (),
            True,
            id="observation-note",
        ),
        pytest.param(
            (value(A.HER2_CEP17_RATIO, number="2.3"),),
            ("Additional observer counted 20 cells",),
            True,
            id="order-note",
        ),
        pytest.param(
            (value(A.HER2_CEP17_RATIO, number="2.3"),),
            ("Reviewed by pathologist",),
            False,
            id="unrelated-note",
        ),
    ],
)
def test_recount_reported(
    default: MappingSet, values: tuple[ReadValue, ...], notes: tuple[str, ...], recount: bool
) -> None:
    """A recount result, answer or note reports the blinded recount; nothing else does."""
    result = run(default, *values, notes=notes)
    assert result.her2_ish is not None
    assert result.her2_ish.recount_done is recount


@pytest.mark.parametrize("cells", ["12", "20", "0"])
def test_a_recount_given_as_a_number_is_the_cells_it_counted(
    default: MappingSet, cells: str
) -> None:
    """A numeric recount result is passed on as cells counted (the classifier checks >= 20)."""
    result = run(default, value(A.ISH_RECOUNT, number=cells))
    assert result.her2_ish is not None
    assert result.her2_ish.recount_cells == int(cells)


def test_second_count_is_a_recount_and_the_last_count_wins(default: MappingSet) -> None:
    """A ratio counted twice: the last one is used, the recount is recorded, and we warn."""
    result = run(
        default,
        value(A.HER2_CEP17_RATIO, number="2.1"),
        value(A.HER2_CEP17_RATIO, number="1.8"),
    )
    ish = result.her2_ish
    assert ish is not None
    assert ish.ratio == Interval.point(D("1.8"), "1.8")
    assert ish.recount_done is True
    assert codes(result) == ["SECOND-COUNT"]


def test_ish_indeterminate_from_status(default: MappingSet) -> None:
    """A value that could not be obtained makes the ISH indeterminate with that reason."""
    result = run(default, value(A.HER2_ISH, indeterminate="result cannot be obtained (OBX-11 X)"))
    assert result.her2_ish is not None
    assert result.her2_ish.indeterminate_reason == "result cannot be obtained (OBX-11 X)"


def test_conflicting_ish_calls_are_warned(default: MappingSet) -> None:
    """Two contradicting qualitative ISH calls are a conflict, said as such."""
    result = run(
        default,
        value(A.HER2_ISH, answer=Answer(stated=Interpretation.POSITIVE), text="Amplified"),
        value(A.HER2_ISH, answer=Answer(stated=Interpretation.NEGATIVE), text="Not amplified"),
    )
    assert result.her2_ish is not None
    assert result.her2_ish.indeterminate_reason is None  # a conflict, not a failed test
    assert result.her2_ish.conflict is not None
    assert "CONFLICTING-RESULTS" in codes(result)


# --------------------------------------------------------------------------------------------
# ER / PgR
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result_analyte", "percent_analyte", "attribute"),
    [
        pytest.param(A.ER_RESULT, A.ER_PERCENT, "er", id="ER"),
        pytest.param(A.PGR_RESULT, A.PGR_PERCENT, "pgr", id="PgR"),
    ],
)
def test_result_code_with_a_number_is_the_percentage(
    default: MappingSet, result_analyte: Analyte, percent_analyte: Analyte, attribute: str
) -> None:
    """ "ER: 95" under a result code reports the percentage of positive cells."""
    result = run(default, value(result_analyte, number="95"))
    receptor = getattr(result, attribute)
    assert receptor is not None
    assert receptor.percent == Interval.point(D("95"), "95")


def test_receptor_word_and_percentage_combine(default: MappingSet) -> None:
    """A stated ER result and its percentage are kept together."""
    result = run(
        default,
        value(A.ER_RESULT, answer=Answer(stated=Interpretation.POSITIVE), text="Positive"),
        value(A.ER_PERCENT, number="95"),
    )
    assert result.er is not None
    assert (result.er.stated, result.er.percent) == (
        Interpretation.POSITIVE,
        Interval.point(D("95"), "95"),
    )
    assert result.er.indeterminate_reason is None


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        pytest.param(
            (value(A.ER_PERCENT, number="95"), value(A.ER_RESULT, number="90")),
            "conflicting ER percentages in one order",
            id="two-percentages",
        ),
        pytest.param(
            (
                value(A.ER_RESULT, answer=Answer(stated=Interpretation.POSITIVE)),
                value(A.ER_RESULT, answer=Answer(stated=Interpretation.NEGATIVE)),
            ),
            "conflicting ER results in one order",
            id="two-words",
        ),
    ],
)
def test_conflicting_receptor_results(
    default: MappingSet, values: tuple[ReadValue, ...], reason: str
) -> None:
    """Two different ER results: neither is picked, and the conflict says why (not a failure)."""
    result = run(default, *values)
    assert result.er is not None
    assert (result.er.percent, result.er.stated) == (None, None)
    assert result.er.conflict == reason
    assert result.er.indeterminate_reason is None
    assert "CONFLICTING-RESULTS" in codes(result)


def test_same_percentage_written_two_ways_is_not_a_conflict(default: MappingSet) -> None:
    """95 and 95% are the same percentage."""
    percent = ReportedObservation(
        analyte=A.ER_RESULT,
        provenance=Provenance(locator="OBX[2]"),
        status=ResultStatus.FINAL,
        number=Interval.point(D("95"), "95%"),
    )
    result = run(default, value(A.ER_PERCENT, number="95"), ReadValue(percent))
    assert result.er is not None
    assert result.er.percent is not None
    assert result.er.percent.value == D("95")
    assert codes(result) == []


# --------------------------------------------------------------------------------------------
# The lab's own interpretation
# --------------------------------------------------------------------------------------------


def test_lab_interpretation_is_kept(default: MappingSet) -> None:
    """The lab's overall HER2 call is kept for comparison, not trusted."""
    result = run(
        default,
        value(
            A.HER2_INTERPRETATION, answer=Answer(stated=Interpretation.POSITIVE), text="Positive"
        ),
    )
    assert result.lab_interpretation is not None
    assert (result.lab_interpretation.stated, result.lab_interpretation.text) == (
        Interpretation.POSITIVE,
        "Positive",
    )


def test_conflicting_lab_interpretations_are_warned(default: MappingSet) -> None:
    """Two contradicting overall calls from the lab are not resolved by message order."""
    result = run(
        default,
        value(A.HER2_INTERPRETATION, answer=Answer(stated=Interpretation.POSITIVE)),
        value(A.HER2_INTERPRETATION, answer=Answer(stated=Interpretation.NEGATIVE)),
    )
    assert result.lab_interpretation is not None
    assert result.lab_interpretation.stated is None
    assert "CONFLICTING-RESULTS" in codes(result)


# --------------------------------------------------------------------------------------------
# resolve_tissue: site codes, then words, then code scope, then sender default
# --------------------------------------------------------------------------------------------

B, G, U = Tissue.BREAST, Tissue.GASTROESOPHAGEAL, Tissue.UNKNOWN

# (scopes, site tissues, texts, sender default?) -> tissue, conflict warning?
TISSUES = [
    ((), (B,), (), False, B, False, "site-code"),
    ((), (), ("Left breast",), False, B, False, "site-word"),
    ((B,), (), (), False, B, False, "code-scope"),
    ((B, None), (), (), False, B, False, "code-scope-with-any-tissue-code"),
    ((), (), (), True, B, False, "sender-default"),
    ((), (), (), False, U, False, "nothing"),
    ((), (G,), ("Left breast",), False, G, False, "site-code-before-word"),
    ((), (None,), ("Gastric",), False, G, False, "unknown-site-code-then-word"),
    ((), (G,), (), True, G, False, "site-code-before-sender-default"),
    ((None,), (), ("Breast and stomach",), True, B, False, "ambiguous-word-then-default"),
    ((B,), (G,), (), False, U, True, "site-code-disagrees-with-scope"),
    ((B,), (), ("Stomach",), False, U, True, "site-word-disagrees-with-scope"),
    ((), (B, G), (), False, U, True, "two-site-codes-disagree"),
    ((), (), ("Breast", "Gastric"), False, U, True, "two-site-words-disagree"),
    ((B, G), (), (), False, U, True, "two-scopes-disagree"),
    ((B,), (B,), ("Breast",), False, B, False, "all-agree"),
]


@pytest.mark.parametrize(
    ("scopes", "sites", "texts", "sender", "tissue", "conflict"),
    [pytest.param(*row[:-1], id=row[-1]) for row in TISSUES],
)
def test_resolve_tissue(
    mappings: Mappings,
    scopes: tuple[Tissue | None, ...],
    sites: tuple[Tissue | None, ...],
    texts: tuple[str, ...],
    sender: bool,
    tissue: Tissue,
    conflict: bool,
) -> None:
    """Site codes, then site words, then code scope, then the sender; disagreement -> unknown."""
    mapping = mappings.for_hl7_sender(None, "EXAMPLE PATHOLOGY") if sender else mappings.default
    found, warnings = resolve_tissue(scopes, sites, texts, mapping)
    assert found is tissue
    assert [w.code for w in warnings] == (["CONFLICTING-TISSUE"] if conflict else [])
