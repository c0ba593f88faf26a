"""Replay combines a case as the service and ``convert`` did, messages with an error included.

A message whose value was not understood is answered with an error and a Bundle; the service
stores its case write with that Bundle, and ``convert`` keeps it in the run's cases. So its
results (here the ER) are part of the case when the next message of it arrives, in replay too.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from adapter.cli import app

ROOT = Path(__file__).resolve().parents[2]
NOT_UNDERSTOOD = ROOT / "fixtures" / "hl7v2" / "her2-not-understood.hl7"

FOLLOW_UP = (
    "MSH|^~\\&|COPATH|GOODHEALTH PATHOLOGY|HER2-ADAPTER|ONCOLOGY|20240403101500-0500||"
    "ORU^R01^ORU_R01|her2-not-understood-2|P|2.5.1|||AL|NE\r"
    "PID|1||TST000204^^^GOODHEALTH^MR||TEST^PATIENT^KILO||19620405|F\r"
    "ORC|RE|PLC3004^EHR|SP24-03004^COPATH||CM\r"
    "OBR|2|PLC3004^EHR|SP24-03004^COPATH|BRPROG^Breast prognostic markers^L|||"
    "20240401093010-0500||||||||||||||||||SP|F\r"
    "OBX|1|NM|85325-9^Cells.progesterone receptor/100 cells in Breast cancer specimen by Immune"
    " stain^LN|1|40|%^percent^UCUM|||||F|||20240401093010-0500\r"
    "SPM|1|^SP24-03004-A1&COPATH||TISS^Tissue^HL70487|||CNB^Core needle biopsy^L|"
    "80248007^Left breast structure^SCT\r"
)


def test_replay_gives_the_follow_up_of_a_not_understood_message_as_convert_does(
    tmp_path: Path,
) -> None:
    traffic = tmp_path / "traffic"
    traffic.mkdir()
    (traffic / "1.hl7").write_bytes(NOT_UNDERSTOOD.read_bytes())
    (traffic / "2.hl7").write_text(FOLLOW_UP)
    runner = CliRunner()
    converted = runner.invoke(app, ["convert", str(traffic)])
    assert converted.exit_code == 1  # the first message's value is not understood
    first, second = (json.loads(line) for line in converted.stdout.splitlines())
    assert len(second["entry"]) > len(first["entry"])  # the ER of message 1 is in the case
    expected = tmp_path / "expected"
    for jobs in ("1", "2"):
        recorded = runner.invoke(
            app, ["replay", str(traffic), "--expected", str(expected), "--record", "--jobs", jobs]
        )
        assert recorded.exit_code == 0, recorded.stdout
        replayed = json.loads((expected / "her2-not-understood-2.json").read_text())
        assert replayed == second
