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
from adapter.service import fhir_index
from adapter.service.fhir_index import TOKEN_ELEMENTS, resource_rows, served, token_word
from adapter.store import StoredResource

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
GOLDENS = sorted((FIXTURES / "expected").rglob("*.ndjson"))
_BUNDLE_LINE = b'{"resourceType":"Bundle"'


def _gives_a_bundle(path: Path) -> bool:
    """Whether the fixture's reviewed golden holds a Bundle, alone or beside its error (a
    not-understood value): the fixtures that are only rejections have nothing to serve, and
    tests/test_fixtures.py holds every fixture to its golden."""
    golden = FIXTURES / "expected" / path.parent.name / f"{path.name}.ndjson"
    return _BUNDLE_LINE in golden.read_bytes()


FILES = sorted(
    p
    for kind in ("hl7v2", "fhir")
    for p in (FIXTURES / kind).iterdir()
    if p.is_file() and (FIXTURES / "expected" / kind / f"{p.name}.ndjson").exists()
    if _gives_a_bundle(p)
)


@pytest.fixture(scope="module")
def context() -> Context:
    return Context.from_settings(example_settings())


def test_every_golden_bundle_reads_back_to_its_bytes() -> None:
    """``loads_exact`` then ``dumps`` gives every reviewed Bundle's bytes back, decimals too."""
    bundles = [
        line
        for path in GOLDENS
        for line in path.read_bytes().splitlines()
        if line.startswith(_BUNDLE_LINE)
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
    outcomes = [process(message, context) for message in split_input(path.read_bytes())]
    built = [o for o in outcomes if o.bundle is not None and o.bundle_json is not None]
    assert built, "its golden holds a Bundle"
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


def test_token_words_encode_percent_and_every_white_space_and_nothing_else() -> None:
    """A value without "%" or white space is its own word; the others percent-encode them (the
    check that skips the encoding must agree with the encoding's pattern, for every character)."""
    assert token_word("code", "85319-2") == "code:85319-2"
    assert token_word("code", "a b%c") == "code:a%20b%25c"
    for character in map(chr, range(0x110000)):
        if "\ud800" <= character <= "\udfff":
            continue
        encoded = fhir_index._SEPARATORS.sub(fhir_index._percent, character)
        assert token_word("p", f"x{character}") == f"p:x{encoded}", hex(ord(character))


def test_the_index_rows_are_the_same_with_the_token_words_remembered_or_not(
    context: Context,
) -> None:
    """Token words are remembered across messages (codes repeat); the rows do not change."""
    bundles = [
        outcome.bundle
        for path in FILES
        for message in split_input(path.read_bytes())
        if (outcome := process(message, context)).bundle is not None
    ]
    cold = []
    for bundle in bundles:
        fhir_index._WORDS.clear()
        cold.append(resource_rows(bundle))
    warm = [resource_rows(bundle) for bundle in bundles]
    assert cold == warm
    assert fhir_index._WORDS  # and they were remembered
