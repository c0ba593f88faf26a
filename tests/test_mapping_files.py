"""The shipped mapping files load, and codes.md and mappings/ cannot drift apart.

codes.md lives beside the project (``../shared/spec/codes.md``); a checkout without it skips the
drift tests rather than failing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mapping_support import example_mappings_dir

from adapter.config import default_mappings_dir
from adapter.mapping import Mappings, MappingSet, load_file
from adapter.model import Analyte

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CODES_MD = PROJECT_ROOT.parent / "shared" / "spec" / "codes.md"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"

SHIPPED = sorted(default_mappings_dir().rglob("*.toml"))

# codes.md's analyte column -> the analyte its codes must map to. A new row in codes.md that is
# not listed here fails the drift test until someone decides what it means.
ANALYTE_NAMES = {
    "HER2 IHC score": Analyte.HER2_IHC,
    "HER2 IHC score (any tissue)": Analyte.HER2_IHC,
    "HER2 ISH qualitative result": Analyte.HER2_ISH,
    "HER2 ISH qualitative (any tissue)": Analyte.HER2_ISH,
    "HER2 overall interpretation": Analyte.HER2_INTERPRETATION,
    "HER2/CEP17 ratio": Analyte.HER2_CEP17_RATIO,
    "HER2 copies per cell": Analyte.HER2_COPIES,
    "CEP17 copies per cell": Analyte.CEP17_COPIES,
    "ER result": Analyte.ER_RESULT,
    "ER % positive cells": Analyte.ER_PERCENT,
    "PgR result": Analyte.PGR_RESULT,
    "PgR % positive cells": Analyte.PGR_PERCENT,
}
PANEL_MARK = "(OBR-4)"  # order panels: codes.md lists them, but they carry no value

LOINC_CODE = re.compile(r"\b\d{1,6}-\d\b")
LOINC_ANSWER = re.compile(r"\bLA\d+-\d\b")
SNOMED_ANSWER = re.compile(r"\b(\d{6,18})\b")


def codes_md() -> str:
    if not CODES_MD.is_file():
        pytest.skip(f"codes.md not found at {CODES_MD} (specs live outside this checkout)")
    return CODES_MD.read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The body of one ``## heading`` section of codes.md."""
    _, found, rest = text.partition(f"## {heading}")
    assert found, f"codes.md has no section {heading!r}"
    return rest.split("\n## ", 1)[0]


def result_code_rows() -> list[tuple[str, str]]:
    """(analyte name, LOINC code) for each code in the "Incoming result codes" table."""
    rows: list[tuple[str, str]] = []
    for line in section(codes_md(), "Incoming result codes").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("analyte", "") or set(cells[0]) <= {"-"}:
            continue
        rows.extend((cells[0], code) for code in LOINC_CODE.findall(cells[1]))
    assert rows, "no rows parsed from codes.md's result code table"
    return rows


def line_starting(text: str, start: str) -> str:
    found = [line for line in text.splitlines() if line.strip().startswith(start)]
    assert len(found) == 1, f"codes.md: expected one line starting {start!r}"
    return found[0]


@pytest.fixture(scope="module")
def default() -> MappingSet:
    return Mappings.load(default_mappings_dir()).default


@pytest.mark.parametrize(
    "path", [pytest.param(p, id=str(p.relative_to(default_mappings_dir()))) for p in SHIPPED]
)
def test_every_shipped_file_loads(path: Path) -> None:
    """Each shipped mapping file is valid on its own."""
    assert load_file(path) is not None


def test_shipped_directory_loads_without_the_examples() -> None:
    """The shipped directory loads as a whole; the example lab under examples/ is not active."""
    loaded = Mappings.load(default_mappings_dir())
    examples = sorted((default_mappings_dir() / "examples").rglob("*.toml"))
    assert examples, "the example sender files moved"
    assert len(loaded.files) == len(SHIPPED) - len(examples)
    assert not any(name.startswith("senders/") for name in loaded.files)


def test_example_lab_loads_as_a_sender_file() -> None:
    """Copied into senders/ (as docs/mapping-files.md tells), the example is a valid sender."""
    loaded = Mappings.load(example_mappings_dir())
    assert "senders/example-lab.toml" in loaded.files
    assert loaded.for_hl7_sender("EXLAB-LIS", None).name == "example-lab"


def test_every_codes_md_result_code_is_mapped(default: MappingSet) -> None:
    """Every LOINC result code in codes.md maps to the analyte its row names."""
    problems = []
    for name, code in result_code_rows():
        if PANEL_MARK in name:
            if default.code(LOINC, code) is not None:
                problems.append(f"{code}: an order panel mapped as a result")
            continue
        if name not in ANALYTE_NAMES:
            problems.append(f"{code}: codes.md analyte {name!r} unknown to this test")
            continue
        entry = default.code(LOINC, code)
        if entry is None:
            problems.append(f"{code} ({name}): not in mappings/")
        elif entry.analyte is not ANALYTE_NAMES[name]:
            problems.append(f"{code} ({name}): mapped to {entry.analyte}")
    assert problems == []


def test_every_codes_md_serum_code_is_excluded(default: MappingSet) -> None:
    """The serum HER2 codes codes.md lists are excluded, never mapped."""
    line = line_starting(codes_md(), "Serum HER2 tests")
    serum = LOINC_CODE.findall(line)
    assert serum
    assert [c for c in serum if default.exclusion(LOINC, c) is None] == []
    assert [c for c in serum if default.code(LOINC, c) is not None] == []


def test_every_codes_md_answer_code_is_mapped(default: MappingSet) -> None:
    """The LOINC and SNOMED CT answer codes codes.md lists all have a meaning."""
    text = codes_md()
    loinc = LOINC_ANSWER.findall(line_starting(text, "- LOINC answers seen"))
    snomed = SNOMED_ANSWER.findall(line_starting(text, "- SNOMED CT:"))
    assert loinc
    assert snomed
    missing = [c for c in loinc if default.answer(system=LOINC, code=c) is None]
    missing += [c for c in snomed if default.answer(system=SNOMED, code=c) is None]
    assert missing == []


def test_codes_md_cap_ecc_example_is_mapped(default: MappingSet) -> None:
    """The CAP eCC item and answer codes.md gives as an example are supported."""
    text = codes_md()
    assert "52399.100004300" in text
    assert "40505.100004300" in text
    assert default.code("https://cap.org/eCC", "52399.100004300") is not None
    assert default.answer(system="https://cap.org/eCC", code="40505.100004300") is not None
