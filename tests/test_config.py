"""Settings read arguments, ``HER2_*`` variables and a TOML file as pydantic-settings does.

``Oracle`` is a pydantic-settings class with the same fields and its init, environment and TOML
sources in the same order: whatever it makes of an environment and a file, Settings must make
too, values and errors alike. (Settings does not import pydantic-settings: convert's start.)
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError, create_model
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from adapter.config import Settings, default_mappings_dir

FIELDS = list(Settings.model_fields)


class _OracleBase(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HER2_", frozen=True, extra="forbid")
    toml_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if cls.toml_file is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, cls.toml_file))


# The same fields on pydantic-settings alone (Settings' own validators left out: they are what
# is being checked).
Oracle: type[_OracleBase] = create_model(
    "Oracle",
    __base__=_OracleBase,
    **{name: (info.annotation, info) for name, info in Settings.model_fields.items()},  # type: ignore[call-overload]
)


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
    """Settings() gives the values or errors that pydantic-settings gives."""
    for name, value in variables.items():
        environment.setenv(name, value)
    assert _read(Settings, given) == _read(Oracle, given)


FILES = [
    pytest.param("", {}, {}, id="empty-file"),
    pytest.param("mllp_port = 3001\n", {}, {}, id="file-sets-field"),
    pytest.param("mllp_port = 3001\n", {"HER2_MLLP_PORT": "4001"}, {}, id="variable-beats-file"),
    pytest.param(
        "mllp_port = 3001\n", {"HER2_MLLP_PORT": "4001"}, {"mllp_port": 5001}, id="argument-first"
    ),
    pytest.param('workers = 1\nstore = "sqlite:///x.db"\n', {}, {}, id="service-keys"),
    pytest.param("max_message_bytes = 10\n", {}, {}, id="bad-value-in-file"),
    pytest.param('pin_cpus = "no"\n', {}, {}, id="bool-from-text"),
    pytest.param("mlp_port = 1\n", {}, {}, id="unknown-key-is-an-error"),
    pytest.param('original_mode_senders = ["COPATH"]\n', {}, {}, id="list-in-file"),
    pytest.param(
        'original_mode_senders = ["COPATH"]\n',
        {"HER2_ORIGINAL_MODE_SENDERS": '["LAB^SITE", "X"]'},
        {},
        id="list-from-variable-as-json",
    ),
]


@pytest.mark.parametrize(("text", "variables", "given"), FILES)
def test_settings_read_a_toml_file_as_pydantic_settings_does(
    environment: pytest.MonkeyPatch,
    tmp_path: Path,
    text: str,
    variables: dict[str, str],
    given: dict[str, Any],
) -> None:
    """Settings.load(file) gives what pydantic-settings' TOML source under HER2_* gives."""
    config = tmp_path / "her2.toml"
    config.write_text(text)
    for name, value in variables.items():
        environment.setenv(name, value)
    environment.setattr(Oracle, "toml_file", config)

    def ours(**arguments: Any) -> Settings:
        return Settings.load(config, **arguments)

    assert _read(ours, given) == _read(Oracle, given)  # type: ignore[arg-type]


def test_settings_pickle_when_read_from_a_file(tmp_path: Path) -> None:
    """Worker processes get the settings pickled: a file-made Settings pickles as any other."""
    config = tmp_path / "her2.toml"
    config.write_text("workers = 1\nmllp_port = 0\n")
    settings = Settings.load(config)
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert type(settings) is Settings


def test_tls_settings_come_in_pairs(tmp_path: Path) -> None:
    """A certificate without its key (or a client CA without both) is a settings error."""
    with pytest.raises(ValidationError, match="together"):
        Settings(mllp_tls_cert=tmp_path / "cert.pem")
    with pytest.raises(ValidationError, match="needs"):
        Settings(mllp_tls_client_ca=tmp_path / "ca.pem")


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
