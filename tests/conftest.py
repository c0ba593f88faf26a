"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fhir_validation import assert_valid_r4


@pytest.fixture(scope="session")
def valid_r4() -> Callable[[Any], None]:
    """``valid_r4(bundle_or_bytes)`` asserts FHIR R4 validity (JSON schema and fhir.resources)."""
    return assert_valid_r4
