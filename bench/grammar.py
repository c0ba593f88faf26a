"""Time the value grammar and the report-text reader, uncached and remembered.

Run: ``.venv/bin/python bench/grammar.py [iterations]``. Prints µs per value read from scratch
(tokens, phrases, reading), per value read again (the per-sender memo, as in a feed that repeats
its wordings), and per report of 8 lines, new and again. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

from adapter.ingest import grammar
from adapter.ingest.report_text import read_text
from adapter.mapping import Mappings
from adapter.model import Analyte

VALUES = [
    ("Positive (3+)", Analyte.HER2_IHC),
    (
        "HER2 (4B5): 2+ (weak to moderate complete membrane staining in 30% of tumor cells)",
        Analyte.HER2_IHC,
    ),
    ("0, faint staining in 5% of cells", Analyte.HER2_IHC),
    ("Negative (0-1+)", Analyte.HER2_IHC),
    ("Equivocal (2+), reflex FISH to follow", Analyte.HER2_IHC),
    ("Positive, 95% of tumor cells, strong intensity, Allred 8", Analyte.ER_RESULT),
    ("Negative (<1%)", Analyte.PGR_RESULT),
    ("Amplified (HER2/CEP17 ratio 2.5; average HER2 copy number 5.1)", Analyte.HER2_ISH),
    ("4.5 signals per cell", Analyte.HER2_COPIES),
    ("approximately 3+", Analyte.HER2_IHC),
]
REPORT = """BREAST BIOMARKER REPORT
Estrogen Receptor (ER) Status: Positive (95%), strong intensity
Progesterone Receptor (PgR) Status: Negative (<1%)
HER2 by Immunohistochemistry: Negative (Score 1+)
HER2 (ERBB2) by ISH: Not amplified
Ratio of HER2 to CEP17 signals: 1.3
Average HER2 copy number per cell: 2.1
Ki-67: 20%"""


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    mapping = Mappings.load(Path(__file__).resolve().parents[1] / "mappings").default
    words = grammar.lexicon(mapping)

    def fresh() -> None:
        for text, analyte in VALUES:
            grammar.read_parts(grammar.parts_of(text, words), analyte)

    def remembered() -> None:
        for text, analyte in VALUES:
            grammar.read(mapping, text, analyte)

    def report() -> None:
        read_text([("OBX[1]", REPORT)], mapping)

    def report_fresh() -> None:
        mapping.reader_cache.pop("report-line", None)
        read_text([("OBX[1]", REPORT)], mapping)

    count = len(VALUES)
    best = {
        name: min(timeit.repeat(run, number=iterations, repeat=5)) / iterations * 1e6
        for name, run in (
            ("fresh", fresh),
            ("remembered", remembered),
            ("report", report),
            ("report-fresh", report_fresh),
        )
    }
    print(f"value read from scratch:  {best['fresh'] / count:8.2f} µs/value")
    print(f"value read again (memo):  {best['remembered'] / count:8.2f} µs/value")
    print(f"report of 8 lines, new:   {best['report-fresh']:8.2f} µs/report")
    print(f"report of 8 lines, again: {best['report']:8.2f} µs/report")


if __name__ == "__main__":
    main()
