"""her2-adapter mappings suggest: every unplaced code, display and value, with a snippet that
works once filled in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from adapter.cli import app
from adapter.config import default_mappings_dir

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _suggest(*paths: Path, mappings: Path | None = None) -> str:
    extra = ["--mappings", str(mappings)] if mappings else []
    result = CliRunner().invoke(app, ["mappings", "suggest", *extra, *map(str, paths)])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_each_kind_of_unplaced_result_is_listed_once_with_its_place() -> None:
    out = _suggest(
        FIXTURES / "hl7v2" / "unknown-local-code.hl7",
        FIXTURES / "hl7v2" / "her2-not-understood.hl7",
        FIXTURES / "hl7v2" / "ki67-under-er-loinc.hl7",
        FIXTURES / "hl7v2" / "her2-not-understood.hl7",  # twice: counted, not repeated
    )
    assert out.count("# value: her2-ihc value") == 1
    assert "# seen 2x: " in out
    assert 'text = "Q7"' in out
    assert "# code: result code HER2DIA" in out
    assert 'code = "HER2DIA"' in out
    assert "# other test: result code KI67" in out  # Ki-67 is not ours: nothing to add
    assert "# display: code 85329-1" in out
    assert "unknown-local-code.hl7#1 OBX[3]" in out


def test_nothing_to_add_says_so() -> None:
    assert _suggest(FIXTURES / "hl7v2" / "ihc3-positive.hl7").startswith("# nothing to add")


def test_a_filled_in_snippet_makes_the_value_understood(tmp_path: Path) -> None:
    """The value snippet, given its meaning, goes into a sender file: the message then converts."""
    message = FIXTURES / "hl7v2" / "her2-not-understood.hl7"
    out = _suggest(message)
    snippet = out[out.index("[[answers]]") :].split("\n\n")[0]
    mappings = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), mappings)
    (mappings / "senders").mkdir(exist_ok=True)  # the shipped mappings have no sender file
    (mappings / "senders" / "goodhealth.toml").write_text(
        '[sender]\nname = "Goodhealth"\nfacilities = ["GOODHEALTH PATHOLOGY"]\n\n'
        + snippet.replace('# score = "1+"', 'score = "1+"  #'),
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["convert", "--mappings", str(mappings), str(message)])
    assert result.exit_code == 0, result.stderr
    assert "HER2-low" in json.dumps(json.loads(result.stdout))
    assert _suggest(message, mappings=mappings).startswith("# nothing to add")
