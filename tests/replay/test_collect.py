"""``her2-adapter replay`` on a generated corpus: record, replay, mapping change, MLLP, store."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from adapter.cli import app
from adapter.config import default_mappings_dir

# --------------------------------------------------------------------------------------------
# The corpus: ORU^R01 messages whose content the generator knows
# --------------------------------------------------------------------------------------------

IHC_WORDINGS = ["0", "1+", "2+", "3+", "Negative (1+)", "Positive (3+)", "Borderline", "ultralow"]
CHANGED_WORDING = "Borderline"  # the wording whose mapping entry the change test edits
SENDERS = [
    ("COPATH", "GOODHEALTH PATHOLOGY"),
    ("LABSYS", "NORTH HOSPITAL LAB"),
    ("PATHNET", "RIVER CLINIC"),
]
RATIOS = ["1.50", "2.20", "3.10"]
PERCENTS = ["0", "0.5", "5", "40", "95"]


@dataclass(frozen=True)
class CorpusMessage:
    control_id: str
    ihc_text: str
    rejected: bool  # carries no HER2 result: the adapter answers NO-HER2-RESULT
    text: str


def corpus(size: int = 240) -> list[CorpusMessage]:
    """``size`` messages varying IHC wording, ISH numbers, ER/PgR and sender; ids unique."""
    return [_message(index) for index in range(size)]


def _message(i: int) -> CorpusMessage:
    application, facility = SENDERS[i % len(SENDERS)]
    ihc = IHC_WORDINGS[i % len(IHC_WORDINGS)]
    control_id = f"RPL{i:04d}"
    rejected = i % 50 == 49
    day = f"202403{1 + i % 28:02d}"
    segments = [
        f"MSH|^~\\&|{application}|{facility}|HER2-ADAPTER|ONCOLOGY|{day}120000-0500||"
        f"ORU^R01^ORU_R01|{control_id}|P|2.5.1",
        f"PID|1||PAT{i:05d}^^^{application}^MR||TEST^PATIENT||19600101|F",
        f"OBR|1|PLC{i:05d}^EHR|SP24-{i:05d}^{application}|BRPROG^Breast prognostic markers^L"
        f"|||{day}093000-0500|||||||||||||||{day}110000-0500||SP|F",
    ]
    observations: list[tuple[str, str, str, str]] = []  # OBX-2, OBX-3, OBX-5, OBX-6
    if rejected:
        glucose = "2345-7^Glucose [Mass/volume] in Serum or Plasma^LN"
        observations.append(("NM", glucose, "95", "mg/dL^mg/dL^UCUM"))
    else:
        her2_ihc = "85319-2^HER2 [Presence] in Breast cancer specimen by Immune stain^LN"
        observations.append(("ST", her2_ihc, ihc, ""))
        if ihc in ("2+", "Borderline") or i % 7 == 0:
            ratio = "49683-6^ERBB2 gene copy number/Chromosome 17 copy number in Tissue by FISH^LN"
            copies = "74860-8^ERBB2 gene copy number/nucleus in Tissue by FISH^LN"
            observations.append(("NM", ratio, RATIOS[i % len(RATIOS)], "{ratio}^ratio^UCUM"))
            per_cell = "{copies}/{cell}^copies per cell^UCUM"
            observations.append(("NM", copies, f"{3 + i % 5}.{i % 10}", per_cell))
        er = (
            "85329-1^Cells.estrogen receptor/100 cells in Breast cancer specimen by Immune stain^LN"
        )
        pgr = (
            "85325-9^Cells.progesterone receptor/100 cells in Breast cancer specimen by Immune"
            " stain^LN"
        )
        observations.append(("NM", er, PERCENTS[i % 5], "%^percent^UCUM"))
        observations.append(("NM", pgr, PERCENTS[(i // 5) % 5], "%^percent^UCUM"))
    segments.extend(
        f"OBX|{n}|{kind}|{code}|1|{value}|{units}|||||F|||{day}093000-0500"
        for n, (kind, code, value, units) in enumerate(observations, start=1)
    )
    segments.append(
        f"SPM|1|^SP24-{i:05d}-A1&{application}||TISS^Tissue^HL70487|||CNB^Core needle biopsy^L"
        "|80248007^Left breast structure^SCT"
    )
    return CorpusMessage(control_id, ihc, rejected, "\r".join(segments) + "\r")


def write_corpus(folder: Path, messages: list[CorpusMessage], per_file: int = 40) -> None:
    """Several messages per file, as a sender's daily batch would be captured."""
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(messages), per_file):
        chunk = messages[start : start + per_file]
        (folder / f"day-{start // per_file:02d}.hl7").write_text(
            "".join(m.text for m in chunk), encoding="ascii"
        )


def changed_mappings(tmp_path: Path) -> Path:
    """The shipped mappings with one entry changed: "Borderline" now means IHC 1+."""
    target = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), target)
    wordings = target / "wordings.toml"
    text = wordings.read_text(encoding="utf-8")
    entry = 'text = "borderline"\nstated = "equivocal"'
    assert entry in text, "the shipped wordings no longer have the entry this test edits"
    wordings.write_text(text.replace(entry, 'text = "borderline"\nscore = "1+"'), "utf-8")
    return target


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["replay", *args])
    return result.exit_code, result.output


def report(path: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def statuses(path: Path) -> dict[str, str]:
    messages = report(path)["messages"]
    assert isinstance(messages, list)
    return {m["key"]: m["status"] for m in messages}


@pytest.fixture(scope="module")
def messages() -> list[CorpusMessage]:
    return corpus()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, messages: list[CorpusMessage]) -> Path:
    """A corpus folder with ``expected/`` recorded next to ``traffic/``."""
    root = tmp_path_factory.mktemp("replay")
    write_corpus(root / "traffic", messages)
    code, output = run(str(root / "traffic"), "--expected", str(root / "expected"), "--record")
    assert code == 0, output
    return root


# --------------------------------------------------------------------------------------------
# Record and replay in-process
# --------------------------------------------------------------------------------------------


def test_record_writes_one_expected_file_per_message(
    recorded: Path, messages: list[CorpusMessage]
) -> None:
    """--record writes <MSH-10>.json for each message: a Bundle, or the error for a rejection."""
    files = {p.stem: json.loads(p.read_text()) for p in (recorded / "expected").glob("*.json")}
    assert set(files) == {m.control_id for m in messages}
    for message in messages:
        document = files[message.control_id]
        if message.rejected:
            assert document["error"]["code"] == "NO-HER2-RESULT"
            assert document["error"]["ack"] == "AE"
        else:
            assert document["resourceType"] == "Bundle"
            assert document["identifier"]["value"] == message.control_id


def test_replay_unchanged_exits_0_with_every_message_same(recorded: Path, tmp_path: Path) -> None:
    """Replaying the recorded corpus with the same mappings: all same, exit 0, no failures."""
    junit = tmp_path / "junit.xml"
    code, output = run(
        str(recorded / "traffic"),
        "--expected",
        str(recorded / "expected"),
        "--junit",
        str(junit),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert code == 0, output
    assert set(statuses(tmp_path / "r.json").values()) == {"same"}
    suite = ElementTree.parse(junit).getroot()
    assert suite.get("tests") == "240"
    assert suite.get("failures") == "0"


def test_recording_again_touches_no_file(recorded: Path, tmp_path: Path) -> None:
    """--record rewrites only new or changed expectations: an unchanged corpus writes none."""
    expected = tmp_path / "expected"
    shutil.copytree(recorded / "expected", expected)
    before = {p.name: p.stat().st_mtime_ns for p in expected.iterdir()}
    time.sleep(0.01)
    code, output = run(
        str(recorded / "traffic"), "--expected", str(expected), "--record", "--json",
        str(tmp_path / "r.json"),
    )  # fmt: skip
    assert code == 0, output
    assert report(tmp_path / "r.json")["recorded"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in expected.iterdir()} == before


def test_mapping_change_reports_exactly_the_affected_messages(
    recorded: Path, messages: list[CorpusMessage], tmp_path: Path
) -> None:
    """Editing one wording changes exactly the messages that used it: exit 1, JUnit says so."""
    affected = {m.control_id for m in messages if m.ihc_text == CHANGED_WORDING and not m.rejected}
    assert len(affected) >= 20
    junit = tmp_path / "junit.xml"
    code, output = run(
        str(recorded / "traffic"),
        "--expected",
        str(recorded / "expected"),
        "--mappings",
        str(changed_mappings(tmp_path)),
        "--junit",
        str(junit),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert code == 1, output
    found = statuses(tmp_path / "r.json")
    assert {key for key, status in found.items() if status == "changed"} == affected
    assert {key for key, status in found.items() if status != "changed"} == (
        {m.control_id for m in messages} - affected
    )
    assert all(status == "same" for key, status in found.items() if key not in affected)
    failed = {
        case.get("name")
        for case in ElementTree.parse(junit).getroot().iter("testcase")
        if case.find("failure") is not None
    }
    assert failed == affected


def test_a_change_names_the_field_and_the_rules_behind_it(
    recorded: Path, messages: list[CorpusMessage], tmp_path: Path
) -> None:
    """The diff names DiagnosticReport.conclusionCode (old -> new category) and the rule ids."""
    example = next(m for m in messages if m.ihc_text == CHANGED_WORDING)
    run(
        str(recorded / "traffic"),
        "--expected",
        str(recorded / "expected"),
        "--mappings",
        str(changed_mappings(tmp_path)),
        "--json",
        str(tmp_path / "r.json"),
    )
    messages_out = report(tmp_path / "r.json")["messages"]
    assert isinstance(messages_out, list)
    details = next(m["details"] for m in messages_out if m["key"] == example.control_id)
    conclusion = [d for d in details if d.startswith("DiagnosticReport.conclusionCode:")]
    assert len(conclusion) == 1
    before, after = conclusion[0].split(": ", 1)[1].split(" -> ")
    assert "HER2-low" in after
    assert "HER2-low" not in before
    rules = [d for d in details if d.startswith("DiagnosticReport rules:")]
    assert len(rules) == 1
    assert "HER2-CAT-LOW-IHC1" in rules[0].split(" -> ")[1]
    assert "HER2-CAT-LOW-IHC1" not in rules[0].split(" -> ")[0]


def test_two_jobs_give_the_same_report_in_input_order(recorded: Path, tmp_path: Path) -> None:
    """--jobs 2 replays on worker processes and reports exactly what one process does."""
    mappings = str(changed_mappings(tmp_path))
    for jobs in ("1", "2"):
        code, output = run(
            str(recorded / "traffic"), "--expected", str(recorded / "expected"),
            "--mappings", mappings, "--jobs", jobs, "--json", str(tmp_path / f"r{jobs}.json"),
        )  # fmt: skip
        assert code == 1, output
    assert report(tmp_path / "r1.json") == report(tmp_path / "r2.json")


def test_missing_new_and_duplicate_keys(recorded: Path, tmp_path: Path) -> None:
    """An expected file without a message is missing, a message without one is new, and a
    repeated key is replayed as key.2 with a note."""
    expected = tmp_path / "expected"
    shutil.copytree(recorded / "expected", expected)
    (expected / "RPL0000.json").unlink()
    shutil.copy(expected / "RPL0001.json", expected / "GONE.json")
    traffic = tmp_path / "traffic"
    shutil.copytree(recorded / "traffic", traffic)
    first = (traffic / "day-00.hl7").read_text().split("MSH|")[1]
    (traffic / "zz-resent.hl7").write_text("MSH|" + first)
    code, _ = run(str(traffic), "--expected", str(expected), "--json", str(tmp_path / "r.json"))
    assert code == 1
    found = statuses(tmp_path / "r.json")
    assert found["RPL0000"] == "new"
    assert found["GONE"] == "missing"
    assert found["RPL0000.2"] == "new"
    messages_out = report(tmp_path / "r.json")["messages"]
    assert isinstance(messages_out, list)
    duplicate = next(m for m in messages_out if m["key"] == "RPL0000.2")
    assert "duplicate key 'RPL0000'" in duplicate["note"]
    assert [m["key"] for m in messages_out][-1] == "GONE"  # missing ones come last


def test_changed_error_is_reported_and_same_error_is_same(recorded: Path, tmp_path: Path) -> None:
    """A rejection recorded as an error is "same" while it stays; a different code is "changed"."""
    expected = tmp_path / "expected"
    shutil.copytree(recorded / "expected", expected)
    stored = json.loads((expected / "RPL0049.json").read_text())
    stored["error"]["code"] = "HL7-MALFORMED"
    (expected / "RPL0049.json").write_text(json.dumps(stored))
    code, _ = run(
        str(recorded / "traffic"), "--expected", str(expected), "--json", str(tmp_path / "r.json")
    )
    assert code == 1
    found = statuses(tmp_path / "r.json")
    assert found["RPL0049"] == "changed"
    assert found["RPL0099"] == "same"  # another rejection, unchanged


# --------------------------------------------------------------------------------------------
# From the store
# --------------------------------------------------------------------------------------------


def test_replay_from_the_store_with_filters(
    recorded: Path, messages: list[CorpusMessage], tmp_path: Path
) -> None:
    """--from-store replays each stored row's raw bytes; --sender and --since filter the rows."""
    from adapter.store import open_store

    url = f"sqlite:///{tmp_path / 's.db'}"
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    with open_store(url) as store:
        for index, message in enumerate(messages[:60]):
            application = message.text.split("|")[2]
            store.receive(
                transport="mllp", message_format="hl7v2", sender=application,
                message_id=message.control_id, raw=message.text.encode(),
                received_at=t0 + timedelta(minutes=index),
            )  # fmt: skip
    wanted = {
        m.control_id for index, m in enumerate(messages[:60]) if index >= 30 and index % 3 == 0
    }
    code, output = run(
        "--from-store", url, "--sender", "COPATH", "--since", "2024-05-01T00:30:00Z",
        "--expected", str(recorded / "expected"), "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    found = statuses(tmp_path / "r.json")
    replayed = {key for key, status in found.items() if status != "missing"}
    assert replayed == wanted
    assert all(found[key] == "same" for key in wanted)
    assert code == 1, output  # the rest of the expected corpus is missing from this replay


# --------------------------------------------------------------------------------------------
# Over MLLP to a running service
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def running_service(tmp_path: Path) -> Iterator[int]:
    """``her2-adapter serve`` in a subprocess, MLLP only; yields its MLLP port."""
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable, "-c", "from adapter.cli import app; app()", "serve",
            "--http-port", "0", "--mllp-port", str(port),
            "--store", f"sqlite:///{tmp_path / 's.db'}",
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the startup line, once the listeners are bound
        assert "listening" in line, (tmp_path / "serve.log").read_text()
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        log.close()


@pytest.mark.slow
def test_replay_over_mllp_to_a_running_service(
    recorded: Path, running_service: int, tmp_path: Path
) -> None:
    """Every message's ACK matches the in-process expectation (Bundle: AA, rejection: AE)."""
    code, output = run(
        str(recorded / "traffic"), "--expected", str(recorded / "expected"),
        "--target", f"mllp://127.0.0.1:{running_service}", "--concurrency", "4",
        "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert code == 0, output
    assert set(statuses(tmp_path / "r.json").values()) == {"same"}


# --------------------------------------------------------------------------------------------
# Usage and reports
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="no-source"),
        pytest.param(["x.hl7", "--from-store", "sqlite:///s.db"], id="source-and-store"),
        pytest.param(["{traffic}", "--rate", "fast"], id="bad-rate"),
        pytest.param(["{traffic}", "--target", "ftp://host:1"], id="bad-target"),
        pytest.param(["{traffic}", "--key", "not a key!"], id="bad-key"),
        pytest.param(["does-not-exist/*.hl7"], id="no-match"),
    ],
)
def test_usage_errors_exit_2(args: list[str], recorded: Path, tmp_path: Path) -> None:
    """Options that cannot run exit 2 with a message, before anything is replayed."""
    filled = [a.format(traffic=recorded / "traffic") for a in args]
    code, output = run(*filled, "--expected", str(tmp_path / "e"))
    assert code == 2, output
    assert "her2-adapter:" in output
    assert not (tmp_path / "e").exists()


def test_html_report_is_self_contained_and_escaped(tmp_path: Path) -> None:
    """The HTML page loads nothing external and escapes keys and details."""
    message = _message(6).text.replace("RPL0006", "<b>x</b>")
    (tmp_path / "in.hl7").write_text(message)
    html_path = tmp_path / "r.html"
    code, _ = run(
        str(tmp_path / "in.hl7"), "--expected", str(tmp_path / "e"), "--html", str(html_path)
    )
    assert code == 1  # new
    page = html_path.read_text(encoding="utf-8")
    assert "<b>x</b>" not in page
    assert "_b_x__b_" in page  # the key as a file name
    assert "src=" not in page
    assert "href=" not in page
