"""Round trip: every HL7 v2 fixture's output, fed back as FHIR input, classifies the same.

This is what a FHIR-speaking receiver re-sending our own Bundles, or a registry forwarding them,
relies on: the Observations we emit carry everything the classification was made from.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from mapping_support import example_settings

from adapter.model import Classification, SourceFormat
from adapter.pipeline import Context, RawMessage, process, split_input

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hl7v2"
EXPECTATIONS = tomllib.loads((FIXTURES / "expectations.toml").read_text(encoding="utf-8"))
EXAMPLE_LAB_SOURCE = "https://lis.example-pathology.org/fhir"
GERMAN_LAB_SOURCE = "https://lis.pathologie-beispiel.de/fhir"
# Results read from report text are emitted as Observations with no code (the lab coded none) and
# the Bundle's conclusion is the adapter's own, so read back they are not results: a receiver
# that resends our Bundle resends what was read, not the text to read again. Not round-tripped.
FROM_REPORT_TEXT = ("report-text-",)
CONVERTIBLE = sorted(
    name
    for name, spec in EXPECTATIONS.items()
    if "error" not in spec and not name.startswith(FROM_REPORT_TEXT)
)


def _summary(classification: Classification) -> tuple[object, ...]:
    return (
        classification.official_result,
        classification.category,
        classification.ish_group,
        classification.er_result,
        classification.pgr_result,
        classification.hr_status,
        classification.tissue,
        sorted(flag.code for flag in classification.flags),
    )


@pytest.fixture(scope="module")
def context() -> Context:
    return Context.from_settings(example_settings())


@pytest.mark.parametrize("name", CONVERTIBLE)
def test_hl7v2_output_read_back_as_fhir_classifies_the_same(name: str, context: Context) -> None:
    """The emitted Bundle, read by the FHIR reader, gives the same classification per report."""
    source = EXAMPLE_LAB_SOURCE if name.startswith("exlab-") else None
    if name.startswith("wording-german"):
        source = GERMAN_LAB_SOURCE
    back_context = Context(context.settings, context.mappings, fhir_source=source)
    for message in split_input((FIXTURES / name).read_bytes()):
        first = process(message, context)
        assert first.bundle_json is not None, first.error
        again = process(RawMessage(first.bundle_json, SourceFormat.FHIR), back_context)
        assert again.error is None, again.error
        assert sorted(map(_summary, again.classifications), key=repr) == sorted(
            map(_summary, first.classifications), key=repr
        )
