"""Settings read ``HER2_*`` variables as pydantic-settings does, without convert importing it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from adapter.config import Settings, default_mappings_dir
from adapter.service.settings import ServiceSettings

FIELDS = list(Settings.model_fields)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ``HER2_*`` variable from the caller's environment."""
    for name in list(os.environ):
        if name.upper().startswith("HER2_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _read(settings_class: type[BaseModel], given: dict[str, Any]) -> dict[str, Any]:
    """The ``Settings`` fields one class makes of ``given`` and the environment, or its errors."""
    try:
        made = settings_class(**given)
    except ValidationError as error:
        return {"errors": [(e["loc"], e["type"], e["input"]) for e in error.errors()]}
    return {name: getattr(made, name) for name in FIELDS}


ENVIRONMENTS = [
    pytest.param({}, {}, id="nothing-set-gives-defaults"),
    pytest.param({"HER2_SITE_TIMEZONE": "Europe/Berlin"}, {}, id="variable-sets-field"),
    pytest.param({"her2_site_timezone": "Europe/Berlin"}, {}, id="lower-case-name"),
    pytest.param({"Her2_Fallback_Charset": "cp1252"}, {}, id="mixed-case-name"),
    pytest.param({"HER2_MAX_MESSAGE_BYTES": " 2048 "}, {}, id="number-with-spaces"),
    pytest.param({"HER2_MAX_MESSAGE_BYTES": "1024"}, {}, id="limit-at-minimum"),
    pytest.param({"HER2_MAX_MESSAGE_BYTES": "1023"}, {}, id="limit-below-minimum-is-an-error"),
    pytest.param({"HER2_MAX_MESSAGE_BYTES": ""}, {}, id="empty-number-is-an-error"),
    pytest.param({"HER2_SITE_TIMEZONE": ""}, {}, id="empty-text-is-a-value"),
    pytest.param({"HER2_MAPPINGS_DIR": "/srv/mappings"}, {}, id="directory-from-variable"),
    pytest.param({"HER2_CODESYSTEM_URL": "urn:x"}, {}, id="codesystem-url"),
    pytest.param({"HER2_NO_SUCH_SETTING": "1"}, {}, id="unknown-variable-ignored"),
    pytest.param({"SITE_TIMEZONE": "Europe/Berlin"}, {}, id="no-prefix-ignored"),
    pytest.param({"HER2_SITE_TIMEZONE": "UTC"}, {}, id="variable-equal-to-default"),
    pytest.param(
        {"HER2_SITE_TIMEZONE": "Europe/Berlin", "her2_site_timezone": "Asia/Tokyo"},
        {},
        id="two-spellings-of-one-name",
    ),
    pytest.param(
        {"HER2_MAX_MESSAGE_BYTES": "4096"},
        {"max_message_bytes": 2048},
        id="argument-beats-variable",
    ),
    pytest.param(
        {"HER2_MAX_MESSAGE_BYTES": "bad"},
        {"max_message_bytes": 2048},
        id="argument-hides-bad-variable",
    ),
    pytest.param({}, {"mappings_dir": Path("/srv/other")}, id="argument-only"),
    pytest.param({}, {"max_message_bytes": 10}, id="bad-argument-is-an-error"),
]


@pytest.mark.parametrize(("variables", "given"), ENVIRONMENTS)
def test_settings_read_the_environment_as_pydantic_settings_does(
    environment: pytest.MonkeyPatch, variables: dict[str, str], given: dict[str, Any]
) -> None:
    """Settings() gives the values or errors that ServiceSettings (pydantic-settings) gives."""
    for name, value in variables.items():
        environment.setenv(name, value)
    assert _read(Settings, given) == _read(ServiceSettings, given)


def test_variable_sets_a_field_and_an_argument_beats_it(environment: pytest.MonkeyPatch) -> None:
    """HER2_SITE_TIMEZONE (any case) sets site_timezone unless an argument gives it."""
    environment.setenv("her2_Site_Timezone", "Europe/Berlin")
    assert Settings().site_timezone == "Europe/Berlin"
    assert Settings(site_timezone="Asia/Tokyo").site_timezone == "Asia/Tokyo"


def test_settings_defaults(environment: pytest.MonkeyPatch) -> None:
    """With nothing set, the shipped mappings, UTC, latin-1 and a 1 MiB limit."""
    settings = Settings()
    assert settings.mappings_dir == default_mappings_dir()
    assert (settings.site_timezone, settings.fallback_charset) == ("UTC", "latin-1")
    assert settings.max_message_bytes == 1024 * 1024


def test_settings_are_frozen_and_strict_about_names() -> None:
    """An unknown argument is an error, and settings cannot be changed once made."""
    with pytest.raises(ValidationError):
        Settings(site_time_zone="UTC")
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.site_timezone = "Europe/Berlin"


def test_service_settings_are_settings() -> None:
    """ServiceSettings is a Settings the pipeline takes, with the same fields first."""
    assert issubclass(ServiceSettings, Settings)
    assert list(ServiceSettings.model_fields)[: len(FIELDS)] == FIELDS


HEAVY = ("pydantic_settings", "hl7apy", "fhir.resources")


@pytest.mark.parametrize("module", ["adapter.config", "adapter.pipeline"])
def test_hot_path_imports_no_heavy_library(module: str) -> None:
    """Importing the pipeline loads neither pydantic-settings nor hl7apy nor fhir.resources."""
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, {module}; print(*sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert [name for name in loaded if name.startswith(HEAVY)] == []
    assert module in loaded
