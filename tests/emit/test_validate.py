"""validate_bundle: the fhir.resources check behind OutputInvalid, imported only when used."""

from __future__ import annotations

import subprocess
import sys

import pytest
from bundle_support import build_bundle

from adapter.config import Settings
from adapter.emit.validate import element_path, validate_bundle
from adapter.errors import OutputInvalid
from adapter.model import AssayRecord, Classification


def test_emitted_bundle_passes(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """A Bundle from build_bundle validates without error."""
    validate_bundle(build_bundle("M", [(record, classification)], settings))


def test_invalid_element_is_reported_with_its_path(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """A broken element raises OutputInvalid naming the element, not the value."""
    bundle = build_bundle("M", [(record, classification)], settings)
    report = bundle["entry"][-1]["resource"]
    report["issued"] = "6 March 2024 MRN-42"
    with pytest.raises(OutputInvalid) as caught:
        validate_bundle(bundle)
    index = len(bundle["entry"]) - 1
    assert caught.value.location == f"Bundle.entry[{index}].resource.issued"
    assert caught.value.code == "OUTPUT-INVALID"
    assert "MRN-42" not in str(caught.value)


def test_element_path_format() -> None:
    """pydantic locations read as FHIR element paths."""
    assert element_path(("entry", 3, "resource", "status")) == "Bundle.entry[3].resource.status"


def test_hot_path_does_not_import_fhir_resources() -> None:
    """Importing adapter.emit (bundle, ack, validate) leaves fhir.resources unloaded."""
    code = (
        "import sys, adapter.emit; "
        "sys.exit(1 if any(m.startswith('fhir.resources') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
