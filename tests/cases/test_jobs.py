"""``convert --jobs N`` and ``replay --jobs N``: every case on one worker, the output unchanged.

The input holds every case sequence of ``fixtures/cases/`` split across it: each sequence's
first message early, the rest after 300 unrelated messages (so that chunks, or a round-robin,
would part them), and messages of another sender reusing a sequence's order number (so that
two workers' cases must be joined). With two workers the output is byte for byte that of one,
and each sequence's Bundles are its golden ones: the case was combined across the whole input.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from adapter.cases import PriorMessage
from adapter.cases.keys import record_keys, untagged
from adapter.cases.log import CaseLog
from adapter.cases.parallel import _Pool
from adapter.cases.route import route_numbers
from adapter.cli import app
from adapter.config import Settings
from adapter.errors import AdapterError
from adapter.ingest import hl7v2
from adapter.model import SourceFormat
from adapter.pipeline import Context, RawMessage, process, split_input

ROOT = Path(__file__).resolve().parents[2]
SEQUENCES = ROOT / "fixtures" / "cases"
EXPECTED = ROOT / "fixtures" / "expected" / "cases"
FILLERS = 300


def filler(number: int, sender: str = "GOODHEALTH PATHOLOGY", order: str | None = None) -> bytes:
    """An unrelated IHC 3+ message with numbers of its own (or the given filler number)."""
    filler_number = order or f"FILL{number}"
    segments = [
        f"MSH|^~\\&|COPATH|{sender}|HER2-ADAPTER|ONCOLOGY|20260301101500-0500||ORU^R01^ORU_R01|"
        f"filler-{sender[:5]}-{number}|P|2.5.1|||AL|NE",
        f"PID|1||TSTF{number:05d}^^^GOODHEALTH^MR||TEST^FILLER||19700101|F",
        f"ORC|RE|PLCF{number}^EHR|{filler_number}^COPATH||CM",
        f"OBR|1|PLCF{number}^EHR|{filler_number}^COPATH|BRPROG^Breast prognostic markers^L|||"
        "20260301093000-0500||||||||||||||||||SP|F",
        "OBX|1|CWE|85319-2^HER2 IHC^LN|1|3+^Positive (3+)^L||||||F",
        f"SPM|1|^{filler_number}-A1&COPATH||TISS^Tissue^HL70487|||CNB^Core needle biopsy^L|"
        "80248007^Left breast structure^SCT",
    ]
    return ("\r".join(segments) + "\r").encode()


@pytest.fixture(scope="module")
def split_input_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("split")
    sequences = sorted(p for p in SEQUENCES.iterdir() if p.is_dir())
    firsts = [sorted(p.iterdir())[0] for p in sequences]
    rests = [f for p in sequences for f in sorted(p.iterdir())[1:]]
    names = iter(range(10_000))
    for first in firsts:
        (folder / f"{next(names):04d}-{first.parent.name}{first.suffix}").write_bytes(
            first.read_bytes()
        )
        # Another sender's order with the number the reference lab's order will use: routed
        # apart first, then joined with the case when that order names both numbers.
        if first.parent.name == "reference-lab-by-parent":
            other = filler(0, sender="OTHER LAB", order="REF-77123")
            (folder / f"{next(names):04d}-other-lab.hl7").write_bytes(other)
    (folder / f"{next(names):04d}-fillers.hl7").write_bytes(
        b"".join(filler(n) for n in range(1, FILLERS + 1))
    )
    for rest in rests:
        (folder / f"{next(names):04d}-{rest.parent.name}{rest.suffix}").write_bytes(
            rest.read_bytes()
        )
    return folder


def convert(folder: Path, *options: str) -> tuple[bytes, str]:
    result = CliRunner().invoke(app, ["convert", str(folder), *options])
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes, result.stderr


def test_convert_with_two_jobs_gives_the_output_of_one(split_input_folder: Path) -> None:
    """Byte for byte, and every sequence's Bundles are its golden ones."""
    one, errors_one = convert(split_input_folder)
    two, errors_two = convert(split_input_folder, "--jobs", "2")
    assert two == one
    assert errors_two == errors_one
    bundles = [orjson.loads(line) for line in one.splitlines()]
    assert len(bundles) == FILLERS + 1 + sum(
        len(list(p.iterdir())) for p in SEQUENCES.iterdir() if p.is_dir()
    )
    by_message = {
        _message_id(bundle): line for bundle, line in zip(bundles, one.splitlines(), strict=True)
    }
    for golden in sorted(EXPECTED.glob("*.ndjson")):
        for line in golden.read_bytes().splitlines():
            assert by_message[_message_id(orjson.loads(line))] == line, golden.name


def _message_id(bundle: dict[str, object]) -> str:
    identifier = bundle.get("identifier")
    assert isinstance(identifier, dict)
    return str(identifier["value"])


def test_replay_with_two_jobs_finds_what_one_recorded(
    split_input_folder: Path, tmp_path: Path
) -> None:
    """Recorded with one process, replayed with two: no message differs."""
    expected = tmp_path / "expected"
    runner = CliRunner()
    recorded = runner.invoke(
        app, ["replay", str(split_input_folder), "--expected", str(expected), "--record"]
    )
    assert recorded.exit_code == 0, recorded.stderr
    report = tmp_path / "report.json"
    replayed = runner.invoke(
        app,
        [
            *("replay", str(split_input_folder), "--expected", str(expected)),
            *("--jobs", "2", "--json", str(report)),
        ],
    )
    assert replayed.exit_code == 0, replayed.stdout
    statuses = {m["status"] for m in json.loads(report.read_text())["messages"]}
    assert statuses == {"same"}


def test_a_message_joining_two_workers_cases_moves_them(
    split_input_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference lab's order joins its parent's group and the other lab's: one moves."""
    joins: list[tuple[int, int]] = []
    join = _Pool._join

    def counted(pool: _Pool, group: int, target: int) -> None:
        joins.append((pool._worker_of[group], pool._worker_of[target]))
        join(pool, group, target)

    monkeypatch.setattr(_Pool, "_join", counted)
    convert(split_input_folder, "--jobs", "2")
    assert any(source != target for source, target in joins)


def test_case_log_handed_over_is_the_case_log_kept() -> None:
    """``take`` then ``merge`` into another log gives the next message the same prior."""
    context = Context.from_settings(Settings())
    first, second = sorted((SEQUENCES / "ihc2-then-ish-g5").iterdir())
    alone, giver, taker = CaseLog(), CaseLog(), CaseLog()
    (message,) = split_input(first.read_bytes())
    outcome = process(message, context, alone.prior)
    assert outcome.application is not None
    for log in (alone, giver):
        log.add(PriorMessage(message.data, message.format), outcome.application, 7)
    taker.merge(giver.take(route_numbers(message.data, message.format, context)))
    (follow_up,) = split_input(second.read_bytes())
    expected = process(follow_up, context, alone.prior)
    moved = process(follow_up, context, taker.prior)
    left = process(follow_up, context, giver.prior)
    assert moved.bundle_json == expected.bundle_json
    assert left.bundle_json != expected.bundle_json  # the giver no longer holds the case


def every_fixture_message() -> list[RawMessage]:
    files = [
        *sorted((ROOT / "fixtures" / "hl7v2").glob("*.hl7")),
        *sorted((ROOT / "fixtures" / "fhir").glob("*.json")),
        *sorted(SEQUENCES.glob("*/*")),
    ]
    found: list[RawMessage] = []
    for file in files:
        try:
            found.extend(split_input(file.read_bytes()))
        except AdapterError:
            continue  # a file that does not split is one rejection, and meets no case
    return found


def test_routing_numbers_hold_every_number_the_records_are_found_by() -> None:
    """For every fixture: what routing reads cheaply covers what ``record_keys`` names."""
    context = Context.from_settings(Settings())
    checked = 0
    for message in every_fixture_message():
        try:
            if message.format is SourceFormat.HL7V2:
                read = hl7v2.read_message(message.data, context.settings)
                records = [
                    o.record for o in hl7v2.to_orders(read, context.mappings, context.settings)
                ]
            else:
                from adapter.ingest import fhir

                _, orders = fhir.to_orders(message.data, context.mappings, context.settings)
                records = [o.record for o in orders]
        except AdapterError:
            continue  # a message that does not read meets no case
        numbers = {untagged(n) for record in records for n in record_keys(record).numbers}
        assert numbers <= route_numbers(message.data, message.format, context)
        checked += bool(numbers)
    assert checked > 50


def test_routing_a_message_the_reader_crashes_on_is_no_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader bug is the pipeline's INTERNAL answer for that one message (as with --jobs 1),
    not a traceback that stops the run; an oversized message is not read to be routed."""
    context = Context.from_settings(Settings())
    message = next(m for m in every_fixture_message() if m.format is SourceFormat.HL7V2)

    read: list[int] = []

    def broken(data: bytes, *_: object) -> object:
        read.append(len(data))
        raise KeyError("a reader bug")

    monkeypatch.setattr(hl7v2, "read_message", broken)
    assert route_numbers(message.data, message.format, context) == frozenset()
    oversized = b"MSH|" + b"x" * context.settings.max_message_bytes
    assert route_numbers(oversized, SourceFormat.HL7V2, context) == frozenset()
    assert read == [len(message.data)]
