"""The fixture corpus end to end: hand-written expectations, reviewed golden Bundles, valid FHIR.

Every file in ``fixtures/hl7v2/`` and ``fixtures/fhir/`` goes through ``pipeline.process`` exactly
as ``her2-adapter convert`` runs it. Three checks per file:

1. the classification matches ``expectations.toml``, written by hand from the spec;
2. the output is byte-identical to ``fixtures/expected/<format>/<file>.ndjson`` (one line per
   message: the Bundle, or ``{"error": ...}``). Golden files are reviewed, not regenerated
   blindly: ``HER2_UPDATE_GOLDENS=1 pytest tests/test_fixtures.py`` rewrites them, then read the
   diff before committing;
3. every Bundle validates against the FHIR R4 JSON schema and the fhir.resources R4B models.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from mapping_support import example_settings

from adapter.cases import PriorMessage
from adapter.cases.combine import CaseView
from adapter.cases.log import CaseLog
from adapter.errors import AdapterError
from adapter.model import SourceFormat
from adapter.pipeline import Context, Outcome, process, split_input

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
EXPECTED = FIXTURES / "expected"
FORMATS = ("hl7v2", "fhir")
UPDATE = os.environ.get("HER2_UPDATE_GOLDENS") == "1"
MAPPINGS_VERSION = b"sha256:MAPPINGS-VERSION"  # stands for Mappings.version in golden files


def _expectations(kind: str) -> dict[str, Any]:
    path = FIXTURES / kind / "expectations.toml"
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


CASES = [
    pytest.param(kind, name, spec, id=f"{kind}/{name}")
    for kind in FORMATS
    for name, spec in sorted(_expectations(kind).items())
]


@pytest.fixture(scope="module")
def context() -> Context:
    return Context.from_settings(example_settings())


def _run(path: Path, context: Context) -> list[Outcome]:
    try:
        messages = split_input(path.read_bytes())
    except AdapterError as error:  # reported as the file's outcome
        return [Outcome(format=SourceFormat(path.parent.name), message_id=None, error=error)]
    cases = CaseLog()  # as convert runs one file: its messages combine, in order
    outcomes = []
    for message in messages:
        outcome = process(message, context, cases.prior)
        if outcome.application is not None:
            cases.add(PriorMessage(message.data, message.format), outcome.application)
        outcomes.append(outcome)
    return outcomes


def _golden_line(outcome: Outcome) -> bytes:
    if outcome.bundle_json is not None and outcome.error is None:
        return outcome.bundle_json
    error = outcome.error
    if outcome.bundle_json is not None:  # a value not understood: the error and its Bundle
        return orjson.dumps(
            {
                "error": {"code": error.code, "reason": error.reason, "location": error.location},
                "bundle": orjson.Fragment(outcome.bundle_json),
            }
        )
    return orjson.dumps(
        {
            "error": {
                "message_id": outcome.message_id,
                "code": getattr(error, "code", "INTERNAL"),
                "reason": getattr(error, "reason", str(error)),
                "location": getattr(error, "location", None),
            }
        }
    )


def test_every_fixture_has_expectations() -> None:
    """No fixture file escapes review: each one is described in its expectations.toml."""
    for kind in FORMATS:
        described = set(_expectations(kind))
        files = {
            p.name
            for p in (FIXTURES / kind).iterdir()
            if p.suffix in (".hl7", ".json", ".ndjson", ".txt", ".er7")
        }
        assert files <= described, f"{kind}: no expectations for {sorted(files - described)}"


@pytest.mark.parametrize(("kind", "name", "spec"), CASES)
def test_fixture_matches_hand_written_expectations(
    kind: str, name: str, spec: dict[str, Any], context: Context
) -> None:
    """The classification of each fixture is what the spec says, record by record."""
    outcomes = _run(FIXTURES / kind / name, context)
    if "error" in spec:
        codes = [getattr(o.error, "code", None) for o in outcomes]
        assert spec["error"] in codes, f"expected {spec['error']}, got {codes}"
        if "records" not in spec:  # a value not understood: the error comes with a Bundle
            return
    else:
        assert all(o.error is None for o in outcomes), [str(o.error) for o in outcomes if o.error]
    if "messages" in spec:
        assert len(outcomes) == spec["messages"]
    produced = [
        (number, record, classification, _case_of(outcome, index))
        for number, outcome in enumerate(outcomes, start=1)
        for index, (record, classification) in enumerate(
            zip(outcome.records, outcome.classifications, strict=True)
        )
    ]
    expected_records = spec.get("records", [])
    assert len(produced) == len(expected_records)
    for (number, record, got, case), want in zip(produced, expected_records, strict=True):
        if "message" in want:
            assert number == want["message"]
        assert case.empty == want.get("withdrawn", False), "every result of the case withdrawn"
        if case.empty:
            continue
        # "none": no HER2 result to classify (HER2-not-reported, HER2-not-understood)
        official = got.official_result.value if got.official_result is not None else "none"
        assert official == want["official"]
        assert got.category.value == want["category"]
        assert got.ish_group == want.get("ish_group")
        for key in ("er_result", "pgr_result", "hr_status"):
            value = getattr(got, key)
            assert (value.value if value else None) == want.get(key), key
        if "report_status" in want:
            assert record.report_status.value == want["report_status"]
        fired = {rule.rule_id for rule in got.rules}
        assert set(want.get("rules", [])) <= fired, f"rules fired: {sorted(fired)}"
        flags = {flag.code.value for flag in got.flags}
        assert set(want.get("flags", [])) <= flags, f"flags: {sorted(flags)}"
        warnings = {warning.code for warning in record.warnings}
        assert set(want.get("warnings", [])) <= warnings, f"warnings: {sorted(warnings)}"
        unused = {u.provenance.code.code for u in record.unused if u.provenance.code}
        assert set(want.get("unused_codes", [])) <= unused, f"unused: {sorted(unused)}"


def _case_of(outcome: Outcome, index: int) -> CaseView:
    """The case the record at ``index`` joined, as the message left it."""
    assert outcome.application is not None
    case_id = outcome.application.orders[index].case_id
    return next(view for view in outcome.application.cases if view.case_id == case_id)


@pytest.mark.parametrize(("kind", "name", "spec"), CASES)
def test_fixture_output_is_the_reviewed_golden_file(
    kind: str, name: str, spec: dict[str, Any], context: Context
) -> None:
    """Output is byte-identical to the reviewed golden file (deterministic, no wall clock)."""
    lines = [_golden_line(o) for o in _run(FIXTURES / kind / name, context)]
    # The mappings' content hash changes with every mapping edit; the golden holds its place.
    version = context.mappings.version.encode()
    produced = b"".join(line + b"\n" for line in lines).replace(version, MAPPINGS_VERSION)
    golden = EXPECTED / kind / f"{name}.ndjson"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        if not golden.exists() or golden.read_bytes() != produced:
            golden.write_bytes(produced)
    assert golden.exists(), f"no golden file {golden}; run with HER2_UPDATE_GOLDENS=1 and review"
    assert produced == golden.read_bytes(), f"{golden} differs: review the change"


@pytest.mark.parametrize(("kind", "name", "spec"), CASES)
def test_fixture_bundles_are_valid_fhir_r4(
    kind: str,
    name: str,
    spec: dict[str, Any],
    context: Context,
    valid_r4: Callable[[Any], None],
) -> None:
    """Every emitted Bundle passes the official R4 JSON schema and the fhir.resources models."""
    for outcome in _run(FIXTURES / kind / name, context):
        if outcome.bundle_json is not None:
            valid_r4(outcome.bundle_json)


def test_same_input_gives_identical_bytes(context: Context) -> None:
    """Processing a message twice, in fresh contexts, gives byte-identical Bundles."""
    fresh = Context.from_settings(example_settings())
    for path in sorted((FIXTURES / "hl7v2").glob("*.hl7"))[:20]:
        first = [o.bundle_json for o in _run(path, context)]
        second = [o.bundle_json for o in _run(path, fresh)]
        assert first == second, path.name
