"""Fixtures shared by every test folder, and the guard of the compiled build."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import compiled
import pytest
from fhir_validation import assert_valid_r4

# `make test-compiled` sets it: the listed modules must then run as their extensions. Unset, the
# tests are of the pure-Python path, and an extension left by `make compiled` (built from the
# sources as they were then) would stand in for the .py files the tests mean to test.
_COMPILED = os.environ.get("HER2_COMPILED") == "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    if _COMPILED:
        if missing := compiled.not_compiled():
            listed = len(compiled.module_names())
            pytest.exit(
                f"HER2_COMPILED=1, but {len(missing)} of {listed} listed modules are not"
                f" compiled ({missing[0]}, ...): run `make compiled`",
                returncode=3,
            )
    elif found := compiled.extensions():
        pytest.exit(
            f"compiled modules present ({found[0].name}, ...): run `make clean-compiled` to test"
            " the pure-Python path, or `make test-compiled`",
            returncode=3,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _COMPILED and (imported := compiled.imported_from_source()):
        pytest.exit(f"imported from their .py files: {', '.join(imported)}", returncode=3)


@pytest.fixture(scope="session")
def valid_r4() -> Callable[[Any], None]:
    """``valid_r4(bundle_or_bytes)`` asserts FHIR R4 validity (JSON schema and fhir.resources)."""
    return assert_valid_r4
