"""The FHIR facade serves each resource from the one stored copy: the message's Bundle.

Read back from the stored bytes, every resource of every fixture's Bundle is served byte for
byte as the emitter serialised it (decimals digit for digit), with its references resolvable.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mapping_support import example_settings

from adapter.emit.bundle import dumps, loads_exact
from adapter.pipeline import Context, process, split_input
from adapter.service.fhir_index import TOKEN_ELEMENTS, resource_rows, served
from adapter.store import StoredResource

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FILES = sorted(p for kind in ("hl7v2", "fhir") for p in (FIXTURES / kind).iterdir() if p.is_file())
GOLDENS = sorted((FIXTURES / "expected").rglob("*.ndjson"))


@pytest.fixture(scope="module")
def context() -> Context:
    return Context.from_settings(example_settings())


def test_every_golden_bundle_reads_back_to_its_bytes() -> None:
    """``loads_exact`` then ``dumps`` gives every reviewed Bundle's bytes back, decimals too."""
    bundles = [
        line
        for path in GOLDENS
        for line in path.read_bytes().splitlines()
        if line.startswith(b'{"resourceType":"Bundle"')
    ]
    assert len(bundles) > 100
    # decimals with trailing zeros (2.30) occur: a float reading would lose them
    assert any(re.search(rb'":\d+\.\d*0[,}\]]', line) for line in bundles)
    for line in bundles:
        assert dumps(loads_exact(line)) == line


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_served_resources_are_the_emitted_ones(path: Path, context: Context) -> None:
    """Each indexed resource, served from the stored Bundle, is the emitted resource with every
    ``urn:uuid:<uuid>`` reference to an entry made ``Type/id`` (the adapter's own fullUrls; an
    input's other ids are left as they came)."""
    try:
        messages = split_input(path.read_bytes())
    except Exception:  # noqa: BLE001 - files the reader refuses have no Bundle to serve
        pytest.skip("not read as messages")
    outcomes = [process(message, context) for message in messages]
    built = [o for o in outcomes if o.bundle is not None and o.bundle_json is not None]
    if not built:
        pytest.skip("no Bundle")
    for outcome in built:
        assert outcome.bundle is not None
        assert outcome.bundle_json is not None
        entries = outcome.bundle["entry"]
        references = {
            f'"{e["fullUrl"]}"': f'"{e["resource"]["resourceType"]}/{e["resource"]["id"]}"'
            for e in entries
            if len(e["fullUrl"]) == len("urn:uuid:") + 36
        }
        expected = []
        for entry in entries:
            resource = entry["resource"]
            if resource["resourceType"] not in TOKEN_ELEMENTS:
                continue
            text = dumps(resource).decode()
            for urn, local in references.items():
                text = text.replace(urn, local)
            expected.append(text.encode())
        found = [
            StoredResource(row.resource_type, row.resource_id, outcome.bundle_json)
            for row in resource_rows(outcome.bundle)
        ]
        assert served(found) == expected
