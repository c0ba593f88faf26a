"""The value grammar over a corpus of wordings labs write (issue 11): each row is a value as sent,
the analyte it was sent for, and everything it must be read as. Fields a row does not name must
come out empty: a wording never says more than the row expects.

English rows use the shipped defaults; ``de`` rows use a sender that writes German
(``mappings/languages/de.toml`` through ``senders/pathologie-beispiel.toml``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mapping_support import example_mappings

from adapter.config import default_mappings_dir
from adapter.ingest import grammar
from adapter.ingest.grammar import AMBIGUOUS, SET_ASIDE
from adapter.mapping import MappingSet, load_mappings
from adapter.model import Analyte

IHC, SUB, ISH, INTERP = (
    Analyte.HER2_IHC,
    Analyte.HER2_IHC0_SUBTYPE,
    Analyte.HER2_ISH,
    Analyte.HER2_INTERPRETATION,
)
RATIO, COPIES, CEP17, CELLS = (
    Analyte.HER2_CEP17_RATIO,
    Analyte.HER2_COPIES,
    Analyte.CEP17_COPIES,
    Analyte.ISH_CELLS_COUNTED,
)
ER, PGR, ERP, PGRP, STAINED = (
    Analyte.ER_RESULT,
    Analyte.PGR_RESULT,
    Analyte.ER_PERCENT,
    Analyte.PGR_PERCENT,
    Analyte.HER2_IHC_STAINED_PERCENT,
)


@dataclass(frozen=True)
class W:
    text: str
    analyte: Analyte
    score: str | None = None
    subtype: str | None = None
    stated: str | None = None
    number: str | None = None  # the value's own number, as "lo..hi" bounds text below
    quantities: dict[str, str] = field(default_factory=dict)  # quantity -> number
    probe: str | None = None
    indeterminate: bool = False
    recount: bool = False
    intensity: str | None = None
    heterogeneous: bool = False
    problem: bool = False
    deferred: bool = False
    warnings: tuple[str, ...] = ()
    lang: str = "en"


def bounds(text: str) -> tuple[str | None, bool, str | None, bool]:
    """``"95"``, ``"<1"``, ``">=6"``, ``"1-10"`` as (low, low inclusive, high, high inclusive)."""
    for sign, shape in (("<=", "le"), (">=", "ge"), ("<", "lt"), (">", "gt")):
        if text.startswith(sign):
            value = text[len(sign) :]
            return {
                "le": (None, True, value, True),
                "ge": (value, True, None, True),
                "lt": (None, True, value, False),
                "gt": (value, False, None, True),
            }[shape]
    if "-" in text:
        low, high = text.split("-")
        return (low, True, high, True)
    return (text, True, text, True)


CORPUS: list[W] = [
    # ---- HER2 IHC, English: scores with words, in any order, labels, clones, descriptions ----
    W("3+", IHC, score="3+"),
    W("Positive (3+)", IHC, score="3+", stated="positive"),
    W("POSITIVE (3+)", IHC, score="3+", stated="positive"),
    W("Score 3+", IHC, score="3+"),
    W("Score: 3+", IHC, score="3+"),
    W("Score 3+, positive", IHC, score="3+", stated="positive"),
    W("3+ (positive)", IHC, score="3+", stated="positive"),
    W("Positive, score 3+", IHC, score="3+", stated="positive"),
    W("Positive (Score 3+)", IHC, score="3+", stated="positive"),
    W("HER2: 3+", IHC, score="3+"),
    W("HER2 (4B5): 3+", IHC, score="3+"),
    W("HER2/neu by IHC: Positive (3+)", IHC, score="3+", stated="positive"),
    W("Positive (3+) for protein overexpression", IHC, score="3+", stated="positive"),
    W(
        "Positive (3+): circumferential membrane staining that is complete, intense and in >10% "
        "of tumor cells",
        IHC,
        score="3+",
        stated="positive",
        quantities={"percent": ">10"},
        intensity="strong",
    ),
    W(
        "3+ (intense complete membrane staining in 90% of invasive tumor cells)",
        IHC,
        score="3+",
        quantities={"percent": "90"},
        intensity="strong",
    ),
    W("+3", IHC, score="3+"),
    W("IHC 3+", IHC, score="3+"),
    W("3", IHC, score="3+"),
    W("Equivocal (2+)", IHC, score="2+", stated="equivocal"),
    W("Borderline (2+)", IHC, score="2+", stated="equivocal"),
    W("2+ equivocal", IHC, score="2+", stated="equivocal"),
    W("Score 2", IHC, score="2+"),
    W("2", IHC, score="2+"),
    W("Equivocal (Score 2+)", IHC, score="2+", stated="equivocal"),
    W(
        "HER2 (4B5): 2+ (weak complete staining in 30%)",
        IHC,
        score="2+",
        quantities={"percent": "30"},
        intensity="weak",
    ),
    W(
        "Equivocal (2+): weak to moderate complete membrane staining in >10% of tumor cells",
        IHC,
        score="2+",
        stated="equivocal",
        quantities={"percent": ">10"},
        intensity="weak",
    ),
    W(
        "Equivocal (2+), reflex FISH to follow",
        IHC,
        score="2+",
        stated="equivocal",
        warnings=(SET_ASIDE,),
    ),
    W("2+; ISH pending", IHC, score="2+", warnings=(SET_ASIDE,)),
    W("Negative (1+)", IHC, score="1+", stated="negative"),
    W("1+", IHC, score="1+"),
    W("+1", IHC, score="1+"),
    W("Score 1+ (negative)", IHC, score="1+", stated="negative"),
    W("Negative, score 1+", IHC, score="1+", stated="negative"),
    W("Negative (Score 1+)", IHC, score="1+", stated="negative"),
    W(
        "1+ (faint/barely perceptible incomplete membrane staining in >10% of cells)",
        IHC,
        score="1+",
        quantities={"percent": ">10"},
        intensity="faint",
    ),
    W("HER2-low (1+)", IHC, score="1+", stated="her2-low"),
    W("Negative (0)", IHC, score="0", stated="negative"),
    W("Negative (Score 0)", IHC, score="0", stated="negative"),
    W("0", IHC, score="0"),
    W("Score 0", IHC, score="0"),
    W("IHC 0", IHC, score="0"),
    W("0 (no staining)", IHC, score="0", subtype="null"),
    W("Negative (score 0), no staining", IHC, score="0", subtype="null", stated="negative"),
    W("No staining", IHC, score="0", subtype="null"),
    W("0 without membrane staining", IHC, score="0", subtype="null"),
    W("HER2-null", IHC, score="0", subtype="null", stated="her2-null"),
    W("0+", IHC, score="0", subtype="ultralow"),
    W(">0 <1+", IHC, score="0", subtype="ultralow"),
    W("Ultralow", IHC, score="0", subtype="ultralow"),
    W("HER2-ultralow", IHC, score="0", subtype="ultralow", stated="her2-ultralow"),
    W("0 with membrane staining", IHC, score="0", subtype="ultralow"),
    W(
        "0, faint staining in 5% of cells",
        IHC,
        score="0",
        subtype="ultralow",
        quantities={"percent": "5"},
        intensity="faint",
    ),
    W(
        "Negative (0): faint incomplete membrane staining in <=10% of tumor cells",
        IHC,
        score="0",
        subtype="ultralow",
        stated="negative",
        quantities={"percent": "<=10"},
        intensity="faint",
    ),
    W(
        "Score 0 (weak staining in 1-10% of cells)",
        IHC,
        score="0",
        subtype="ultralow",
        quantities={"percent": "1-10"},
        intensity="weak",
    ),
    W("Negative", IHC, stated="negative"),
    W("Neg", IHC, stated="negative"),
    W("Positive", IHC, stated="positive"),
    W("Indeterminate", IHC, stated="indeterminate", indeterminate=True),
    W("Specimen inadequate", IHC, stated="indeterminate", indeterminate=True),
    W("Negative (0-1+)", IHC, stated="negative", warnings=(AMBIGUOUS,)),
    W("0-1+", IHC, stated="negative", warnings=(AMBIGUOUS,)),
    W("1+ to 2+", IHC, warnings=(AMBIGUOUS,)),
    W("2-3+", IHC, warnings=(AMBIGUOUS,)),
    W("Negative (3+)", IHC, score="3+", stated="negative"),
    W("Positive (0)", IHC, score="0", stated="positive"),
    W("HER2-null (1+)", IHC, score="1+", stated="her2-null"),
    W("2+ and 3+", IHC, warnings=(AMBIGUOUS,)),
    W("Positive, negative", IHC, warnings=(AMBIGUOUS,)),
    W("Pending", IHC, deferred=True),
    W("To follow", IHC, deferred=True),
    W("See addendum", IHC, deferred=True),
    W("approximately 3+", IHC, problem=True),
    W("3++", IHC, problem=True),
    W("3+?", IHC, problem=True),
    W("Not 3+", IHC, problem=True),
    W("Score 5", IHC, problem=True),
    W("30%", IHC, quantities={"percent": "30"}),
    W("2+, Ki-67 20%", IHC, score="2+", warnings=(SET_ASIDE,)),
    W("Ki-67: 20%", IHC, problem=True),
    W("Heterogeneous staining, 2+", IHC, score="2+", heterogeneous=True),
    W("3+ (HercepTest)", IHC, score="3+"),
    W("Positive (3+), PATHWAY anti-HER2/neu (4B5)", IHC, score="3+", stated="positive"),
    W("Ultralow", SUB, score="0", subtype="ultralow"),
    W("No staining", SUB, score="0", subtype="null"),
    W("Faint staining in 5% of cells", SUB, quantities={"percent": "5"}, intensity="faint"),
    # ---- HER2 IHC, German (de) ----
    W("Score 3+", IHC, score="3+", lang="de"),
    W("Positiv (3+)", IHC, score="3+", stated="positive", lang="de"),
    W("Score 2+, grenzwertig", IHC, score="2+", stated="equivocal", lang="de"),
    W(
        "Score 2+, 30% positive Tumorzellen, schwache bis mäßige komplette membranständige Färbung",
        IHC,
        score="2+",
        quantities={"percent": "30"},
        intensity="weak",
        lang="de",
    ),
    W("Negativ (Score 1+)", IHC, score="1+", stated="negative", lang="de"),
    W("Score null", IHC, score="0", lang="de"),
    W("Null", IHC, score="0", lang="de"),
    W("Keine Färbung", IHC, score="0", subtype="null", lang="de"),
    W(
        "0, sehr schwache inkomplette Färbung in 5% der Tumorzellen",
        IHC,
        score="0",
        subtype="ultralow",
        quantities={"percent": "5"},
        intensity="faint",
        lang="de",
    ),
    W("Negativ", IHC, stated="negative", lang="de"),
    W("Nicht beurteilbar", IHC, stated="indeterminate", indeterminate=True, lang="de"),
    W("Ausstehend", IHC, deferred=True, lang="de"),
    W("Score 2+, FISH folgt", IHC, score="2+", warnings=(SET_ASIDE,), lang="de"),
    W("Nicht 3+", IHC, problem=True, lang="de"),
    W("etwa 3+", IHC, problem=True, lang="de"),
    # ---- ISH, English ----
    W("Amplified", ISH, stated="positive"),
    W("Not amplified", ISH, stated="negative"),
    W("Non-amplified", ISH, stated="negative"),
    W("HER2 not amplified", ISH, stated="negative"),
    W("Positive (amplified)", ISH, stated="positive"),
    W(
        "Amplified (HER2/CEP17 ratio 2.5; average HER2 copy number 5.1)",
        ISH,
        stated="positive",
        quantities={"her2-cep17-ratio": "2.5", "her2-copies": "5.1"},
    ),
    W(
        "Not amplified, ratio 1.3, HER2 copies 2.1, CEP17 copies 1.6",
        ISH,
        stated="negative",
        quantities={"her2-cep17-ratio": "1.3", "her2-copies": "2.1", "cep17-copies": "1.6"},
    ),
    W(
        "Negative (not amplified); HER2/CEP17 ratio: 1.1; 20 cells counted",
        ISH,
        stated="negative",
        quantities={"her2-cep17-ratio": "1.1", "ish-cells-counted": "20"},
    ),
    W("Not amplified (dual probe)", ISH, stated="negative", probe="dual"),
    W("Amplified, single probe", ISH, stated="positive", probe="single"),
    W("Amplified, heterogeneous", ISH, stated="positive", heterogeneous=True),
    W("Amplified (ratio >=2.0)", ISH, stated="positive", quantities={"her2-cep17-ratio": ">=2.0"}),
    W("Equivocal", ISH, stated="equivocal"),
    W("Pending", ISH, deferred=True),
    W("No amplification", ISH, problem=True),
    W("3+", ISH, problem=True),
    W("2.3", RATIO, number="2.3"),
    W("Ratio: 2.3", RATIO, number="2.3"),
    W("HER2/CEP17 ratio 2.0", RATIO, number="2.0"),
    W("1.99 (not amplified)", RATIO, number="1.99", stated="negative"),
    W(">6", RATIO, number=">6"),
    W("2.3 and 2.5", RATIO, problem=True),
    W("2,3", RATIO, problem=True),
    W("4.5 signals per cell", COPIES, number="4.5"),
    W("Average HER2 copy number: 4.0", COPIES, number="4.0"),
    W("6.0 copies/cell", COPIES, number="6.0"),
    W("5.99", COPIES, number="5.99"),
    W("3.99 HER2 signals per cell", COPIES, number="3.99"),
    W("1.9 signals/nucleus", CEP17, number="1.9"),
    W("20 cells", CELLS, number="20"),
    W("6%", COPIES, problem=True),
    # ---- ISH, German (de) ----
    W("Amplifiziert", ISH, stated="positive", lang="de"),
    W("Nicht amplifiziert", ISH, stated="negative", lang="de"),
    W(
        "Nicht amplifiziert, HER2/CEP17-Quotient 1,3",
        ISH,
        stated="negative",
        quantities={"her2-cep17-ratio": "1.3"},
        lang="de",
    ),
    W("Keine Amplifikation", ISH, stated="negative", lang="de"),
    W("2,3", RATIO, number="2.3", lang="de"),
    W("Quotient 2,0", RATIO, number="2.0", lang="de"),
    W("4,5 Signale pro Zelle", COPIES, number="4.5", lang="de"),
    W("Einzelsonde, amplifiziert", ISH, stated="positive", probe="single", lang="de"),
    W("FISH folgt", ISH, deferred=True, lang="de"),
    # ---- ER / PgR, English ----
    W("95", ER, number="95"),
    W("95%", ER, number="95"),
    W("Positive", ER, stated="positive"),
    W("Positive (95%)", ER, stated="positive", number="95"),
    W("Positive, 95%", ER, stated="positive", number="95"),
    W("95% positive", ER, stated="positive", number="95"),
    W("Positive (95% of tumor cells)", ER, stated="positive", number="95"),
    W(
        "Positive, 95% of tumor cells, strong intensity",
        ER,
        stated="positive",
        number="95",
        intensity="strong",
    ),
    W(
        "Positive, 95% of tumor cells, strong intensity, Allred 8",
        ER,
        stated="positive",
        number="95",
        intensity="strong",
        quantities={"allred": "8"},
    ),
    W("Positive (Allred score 7)", ER, stated="positive", quantities={"allred": "7"}),
    W("Allred 7/8", ER, quantities={"allred": "7"}),
    W("Positive, Allred 7/8", ER, stated="positive", quantities={"allred": "7"}),
    W("7/8", ER, problem=True),
    W("H-score 250", ER, quantities={"h-score": "250"}),
    W(
        "Positive (H-score 180), 80%",
        ER,
        stated="positive",
        number="80",
        quantities={"h-score": "180"},
    ),
    W("Positive (>90%)", ER, stated="positive", number=">90"),
    W("91-100%", ER, number="91-100"),
    W("1-10%", ER, number="1-10"),
    W("1 to 10%", ER, number="1-10"),
    W("Low positive (5%)", ER, stated="low-positive", number="5"),
    W("Low positive", ER, stated="low-positive"),
    W("Weakly positive (5%)", ER, stated="positive", number="5", intensity="weak"),
    W("Negative", ER, stated="negative"),
    W("Negative (<1%)", ER, stated="negative", number="<1"),
    W("Negative (0%)", ER, stated="negative", number="0"),
    W("<1%", PGR, number="<1"),
    W("0", PGR, number="0"),
    W(
        "Positive (40%), moderate intensity",
        PGR,
        stated="positive",
        number="40",
        intensity="moderate",
    ),
    W("Negative (<1%), internal control positive", PGR, stated="negative", number="<1"),
    W("Negative (<1%), positive", PGR, number="<1", warnings=(AMBIGUOUS,)),
    W("Positive, 10.5%", ER, stated="positive", number="10.5"),
    W("Score 7", ER, problem=True),
    W("Ki-67: 15%", ER, problem=True),
    W("3+", ER, problem=True),
    W("150", ER, number="150"),
    W("Pending", ER, deferred=True),
    W("Not performed", ER, problem=True),
    W("95", ERP, number="95"),
    W("95 percent", ERP, number="95"),
    W("<1", PGRP, number="<1"),
    W("≤ 1 %", PGRP, number="<=1"),
    W("Positive (95%), ER (SP1)", ER, stated="positive", number="95"),
    W("ER/PR: Positive (90%)", ER, problem=True),
    W("ER positive (90%), PR negative", ER, stated="positive", number="90", warnings=(SET_ASIDE,)),
    # ---- ER / PgR, German (de) ----
    W(
        "Positiv, 90% der Tumorzellen, starke Intensität",
        ER,
        stated="positive",
        number="90",
        intensity="strong",
        lang="de",
    ),
    W("Negativ (<1%)", PGR, stated="negative", number="<1", lang="de"),
    W("Niedrig positiv (5%)", ER, stated="low-positive", number="5", lang="de"),
    W(
        "80% positive Tumorzellen, mäßige Intensität",
        ER,
        number="80",
        intensity="moderate",
        lang="de",
    ),
    W("Positiv (Allred-Score 8)", ER, stated="positive", quantities={"allred": "8"}, lang="de"),
    W("10 bis 20%", PGR, number="10-20", lang="de"),
    W("Ausstehend", ER, deferred=True, lang="de"),
    W("Nicht durchgeführt", ER, problem=True, lang="de"),
    W("12,5%", ER, number="12.5", lang="de"),
    W("Positiv, 95 Prozent", ER, stated="positive", number="95", lang="de"),
    # ---- the lab's overall call ----
    W("Negative", INTERP, stated="negative"),
    W("HER2 negative", INTERP, stated="negative"),
    W("Positive (3+)", INTERP, score="3+", stated="positive"),
]


@pytest.fixture(scope="module")
def senders() -> dict[str, MappingSet]:
    mappings = example_mappings()  # the German-writing example lab active
    german = mappings.for_hl7_sender(None, "PATHOLOGIE BEISPIEL")
    assert german is not mappings.default
    return {"en": mappings.default, "de": german}


def test_the_corpus_is_large_enough() -> None:
    """Issue 11: at least 150 wordings, IHC, ISH and ER/PgR, in English and one other language."""
    assert len(CORPUS) >= 150
    assert {w.lang for w in CORPUS} == {"en", "de"}
    families = {(w.lang, w.analyte in (ER, PGR, ERP, PGRP)) for w in CORPUS}
    assert len(families) == 4


@pytest.mark.parametrize(
    "row", [pytest.param(w, id=f"{w.lang}:{w.analyte}:{w.text}") for w in CORPUS]
)
def test_wording_is_read(row: W, senders: dict[str, MappingSet]) -> None:
    reading = grammar.read(senders[row.lang], row.text, row.analyte)
    if row.problem:
        assert reading.problem is not None, reading
        assert (reading.answer, reading.number, reading.quantities) == (None, None, ())
        return
    assert reading.problem is None, reading.problem
    assert reading.deferred is row.deferred
    answer = reading.answer
    got = (
        answer.score.value if answer and answer.score else None,
        answer.ihc0_subtype.value if answer and answer.ihc0_subtype else None,
        answer.stated.value if answer and answer.stated else None,
        answer.probe.value if answer and answer.probe else None,
        bool(answer and answer.indeterminate),
        bool(answer and answer.recount),
    )
    assert got == (row.score, row.subtype, row.stated, row.probe, row.indeterminate, row.recount)
    number = reading.number
    shown = None if number is None else _bounds_of(number)
    assert shown == (None if row.number is None else bounds(row.number))
    quantities = {q.value: _bounds_of(n) for q, n in reading.quantities}
    assert quantities == {name: bounds(text) for name, text in row.quantities.items()}
    assert (reading.intensity.value if reading.intensity else None) == row.intensity
    assert reading.heterogeneous is row.heterogeneous
    assert {code for code, _ in reading.warnings} == set(row.warnings)


def _bounds_of(number: object) -> tuple[str | None, bool, str | None, bool]:
    low, high = number.low, number.high  # type: ignore[attr-defined]
    return (
        None if low is None else str(low),
        number.low_inclusive,  # type: ignore[attr-defined]
        None if high is None else str(high),
        number.high_inclusive,  # type: ignore[attr-defined]
    )


def test_a_reading_never_quotes_the_text(senders: dict[str, MappingSet]) -> None:
    """Problems and warnings reach ACKs and logs: they never hold the value's words."""
    secret = "Doe Jane 3+"
    reading = grammar.read(senders["en"], secret, IHC)
    assert reading.problem is not None
    assert "Doe" not in reading.problem
    assert "Jane" not in reading.problem


RECOUNT = Analyte.ISH_RECOUNT


@pytest.mark.parametrize(
    ("text", "recount"),
    [
        pytest.param("Recount performed by a second observer.", True, id="recount"),
        pytest.param("Counted by an ADDITIONAL   observer", True, id="additional-observer"),
        pytest.param("Blinded count of 20 cells", True, id="blinded-count"),
        pytest.param(
            "Blinded recount by additional observer (20 nuclei): same ISH group.",
            True,
            id="cap-wording",
        ),
        pytest.param("HER2/CEP17 ratio 2.3, 40 cells", False, id="plain-count"),
        pytest.param("Recount not performed", False, id="negated"),
        pytest.param("No recount by an additional observer", False, id="no-recount"),
        pytest.param("Recount recommended", False, id="recommended"),
        pytest.param("Second observer review pending", False, id="pending"),
        pytest.param("Recount planned", False, id="planned"),
        pytest.param("Recount done by Dr Smith", False, id="unknown-words-say-nothing"),
        pytest.param("", False, id="empty"),
    ],
)
def test_a_recount_is_read_by_the_grammar(
    senders: dict[str, MappingSet], text: str, recount: bool
) -> None:
    """Section 2's recount, said in a note or a text, is one of the grammar's words: the whole
    text is read, so a negation or a deferral in its clause, or a word not known, says none."""
    assert grammar.read(senders["en"], text, RECOUNT).recount is recount


def test_recount_words_of_an_older_sender_file_still_count(tmp_path: Path) -> None:
    """``recount_phrases`` / ``recount_negations`` (before [grammar] recounts) keep working."""
    folder = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), folder)
    (folder / "senders").mkdir(exist_ok=True)
    (folder / "senders" / "old-lab.toml").write_text(
        'recount_phrases = ["zweitauszaehlung"]\nrecount_negations = ["ausstehend"]\n'
        '[sender]\nname = "Old lab"\nfacilities = ["OLD LAB"]\n',
        encoding="utf-8",
    )
    old = load_mappings(folder).for_hl7_sender(None, "OLD LAB")
    assert grammar.read(old, "Zweitauszaehlung", RECOUNT).recount is True
    assert grammar.read(old, "Zweitauszaehlung ausstehend", RECOUNT).recount is False
