"""Settings, read from arguments, environment variables (``HER2_`` prefix) or a config file.

Everything that changes output (CodeSystem URL, site time zone, mappings) is here, so a replay can
state exactly what it ran with.

``Settings`` (what ``convert`` and the pipeline need) reads its ``HER2_*`` variables itself, as
pydantic-settings would: importing pydantic-settings costs about a third of ``convert``'s start.
``ServiceSettings`` (``serve``, ``reprocess``: ports, store, a TOML file) is a pydantic-settings
class in ``adapter/service/settings.py``, loaded only when asked for; tests/test_config.py holds the
two to reading the environment alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENV_PREFIX = "HER2_"
"""Environment variables ``HER2_<FIELD>`` set a field (the name in any case)."""

DEFAULT_CODESYSTEM = "urn:her2-adapter:codesystem"
"""The adapter's own CodeSystem (categories, flags, rule ids, components): a documented URN, since
the project owns no web domain; ``GET /fhir/CodeSystem/her2-adapter`` serves the resource."""

PROJECT_MAPPINGS = Path(__file__).resolve().parent.parent / "mappings"
INSTALLED_MAPPINGS = Path(__file__).resolve().parent / "_mappings"


def default_mappings_dir() -> Path:
    """The shipped mappings: the checkout's ``mappings/`` or, when installed, the packaged copy."""
    return PROJECT_MAPPINGS if PROJECT_MAPPINGS.is_dir() else INSTALLED_MAPPINGS


class Settings(BaseModel):
    """Arguments over ``HER2_*`` environment variables over defaults."""

    # validate_default as pydantic-settings has it, so both classes check the same values.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    reads_environment: ClassVar[bool] = True
    """False in a pydantic-settings subclass, which reads the environment itself."""

    codesystem_url: str = Field(
        DEFAULT_CODESYSTEM, description="Canonical URL of the adapter's CodeSystem"
    )
    site_timezone: str = Field(
        "UTC", description="IANA zone given to HL7 timestamps sent without an offset"
    )
    mappings_dir: Path = Field(default_factory=default_mappings_dir)
    fallback_charset: str = Field(
        "latin-1", description="Used when MSH-18 is empty and the bytes are not valid UTF-8"
    )
    max_message_bytes: int = Field(1024 * 1024, ge=1024, description="Larger messages are rejected")
    patient_details: Literal["full", "minimal"] = Field(
        "full",
        description="What a Patient carries: 'full' (identifiers, name, sex, birth date: an EHR"
        " feed) or 'minimal' (identifiers only: a registry or trial matcher); docs/output.md",
    )

    @model_validator(mode="before")
    @classmethod
    def _environment_under_arguments(cls, given: Any) -> Any:
        if not cls.reads_environment or not isinstance(given, dict):
            return given
        return {**_environment_values(cls.model_fields), **given}


def _environment_values(fields: Iterable[str]) -> dict[str, str]:
    """The ``HER2_<FIELD>`` variables of these fields, read as pydantic-settings reads them.

    Names match in any case (of two spellings, the one ``os.environ`` lists last wins); values are
    passed on as given, an empty one included, for the fields to validate.
    """
    variables = {name.lower(): value for name, value in os.environ.items()}
    found = {field: variables.get(f"{ENV_PREFIX}{field}".lower()) for field in fields}
    return {field: value for field, value in found.items() if value is not None}
