"""Settings: one class, read from arguments, ``HER2_*`` environment variables and a TOML file.

Everything that changes output (CodeSystem URL, site time zone, mappings) is here, so a replay can
state exactly what it ran with; so is everything ``serve`` and ``reprocess`` need (ports, store,
TLS, workers), so that one class is configured, documented and pickled to worker processes.

Precedence, strongest first: arguments, ``HER2_*`` variables, the TOML file given to
:meth:`Settings.load`, defaults. This is what pydantic-settings does with its init, environment
and TOML sources, and ``tests/test_config.py`` holds this class to a pydantic-settings class with
the same fields on both. It does not use pydantic-settings itself: importing it and building a
``BaseSettings`` class cost ``convert`` about 30 ms of CPU at every start (0.21 s against 0.18 s,
median of 15, docs/performance.md), for reading a few variables.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from adapter.service.admission import Limits

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
    """Arguments over ``HER2_*`` environment variables over a TOML file over defaults."""

    # validate_default as pydantic-settings has it, so a bad default would show at once.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    # -- what output depends on ------------------------------------------------------------
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

    # -- the service (serve, reprocess) ----------------------------------------------------
    host: str = Field("127.0.0.1", description="Bind address (loopback unless told otherwise)")
    mllp_port: int = Field(2575, ge=0, le=65535, description="MLLP port (0: do not listen)")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP API port (0: do not listen)")
    store: str = Field(
        "sqlite:///./her2-adapter.db", description="sqlite:///... or postgresql://..."
    )
    fhir_base: str | None = Field(None, description="Forward each Bundle to this FHIR server")
    api_token: str | None = Field(
        None,
        description="Bearer token required by the HTTP API (from HER2_API_TOKEN or the config"
        " file: a command line is readable by every user in /proc)",
    )
    api_token_file: Path | None = Field(
        None, description="A file holding the bearer token (mode 0600), instead of api_token"
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description="Delete finished messages (and their reports and Bundles) received more than"
        " this many days ago, hourly; unfinished or still forwarding ones, and those of a case with"
        " a newer message, are kept (default: keep everything)",
    )
    forward_max_attempts: int = Field(10, ge=1, description="Forwarding attempts before giving up")
    workers: int | None = Field(
        None,
        ge=0,
        description="Worker processes running the pipeline (0: in the service process;"
        " default: one per CPU but one, for the event loop and the store writer)",
    )
    pin_cpus: bool = Field(
        True,
        description="Give the service and each worker process CPUs of their own, when there"
        " are enough (Linux); false leaves their placement to the operating system",
    )
    mllp_max_connections: int = Field(
        256, ge=1, description="MLLP connections served at once; more are refused at connect"
    )
    mllp_max_per_source: int = Field(
        32, ge=1, description="MLLP connections one source address may hold (below the cap)"
    )
    mllp_frame_timeout: float = Field(
        60.0, gt=0, description="Seconds an MLLP frame may take from its first byte to its end"
    )
    mllp_idle_timeout: float = Field(
        3600.0, gt=0, description="Seconds an MLLP connection may wait after its last message"
    )
    http_max_connections: int = Field(
        256, ge=1, description="HTTP connections served at once; more are refused at connect"
    )
    http_max_per_source: int = Field(
        32, ge=1, description="HTTP connections one source address may hold (below the cap)"
    )
    http_header_timeout: float = Field(
        10.0, gt=0, description="Seconds a request's headers may take from its first byte"
    )
    http_body_timeout: float = Field(
        60.0, gt=0, description="Seconds a request's body may take once its headers are in"
    )
    http_idle_timeout: int = Field(
        5, ge=1, description="Seconds a kept-alive HTTP connection may wait for its next request"
    )
    audit_min_reports: int = Field(
        10,
        ge=1,
        le=1_000_000,
        description="The audit (/audit, `audit`) shows shares for a sender and period only from"
        " this many reports; fewer show the count alone",
    )
    metrics_max_senders: int = Field(
        50,
        ge=1,
        description="Senders named in the per-sender metrics; later ones count as 'other'",
    )
    metrics_max_codes: int = Field(
        200,
        ge=1,
        description="(sender, result code) pairs named in her2_unused_results_total; later"
        " ones count as 'other'",
    )
    mllp_tls_cert: Path | None = Field(
        None, description="PEM certificate chain: MLLP over TLS (with mllp_tls_key)"
    )
    mllp_tls_key: Path | None = Field(None, description="PEM private key of mllp_tls_cert")
    mllp_tls_client_ca: Path | None = Field(
        None, description="PEM CA file: MLLP clients must present a certificate it signed"
    )
    original_mode_senders: tuple[str, ...] = Field(
        (),
        description="Senders (MSH-3, or MSH-3^MSH-4) answered in original mode, one AA/AE/AR"
        " per message, whatever MSH-15/MSH-16 ask",
    )

    @model_validator(mode="before")
    @classmethod
    def _environment_under_arguments(cls, given: Any) -> Any:
        if not isinstance(given, dict):
            return given
        return {**_environment_values(cls.model_fields), **given}

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.mllp_tls_cert is None) != (self.mllp_tls_key is None):
            raise ValueError("mllp_tls_cert and mllp_tls_key are given together")
        if self.mllp_tls_client_ca is not None and self.mllp_tls_cert is None:
            raise ValueError("mllp_tls_client_ca needs mllp_tls_cert and mllp_tls_key")
        return self

    @model_validator(mode="after")
    def _caps_in_order(self) -> Settings:
        for transport in ("mllp", "http"):
            if getattr(self, f"{transport}_max_per_source") > getattr(
                self, f"{transport}_max_connections"
            ):
                raise ValueError(f"{transport}_max_per_source exceeds {transport}_max_connections")
        return self

    @property
    def bearer_token(self) -> str | None:
        """The HTTP API's token: ``api_token``, or the first line of ``api_token_file``."""
        if self.api_token or self.api_token_file is None:
            return self.api_token
        from adapter.errors import ConfigError

        try:
            lines = self.api_token_file.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ConfigError(
                f"api_token_file cannot be read ({error.strerror})", location="api_token_file"
            ) from error
        token = lines[0].strip() if lines else ""
        if not token:
            raise ConfigError("api_token_file is empty", location="api_token_file")
        return token

    @property
    def mllp_limits(self) -> Limits:
        from adapter.service.admission import Limits

        return Limits(
            self.mllp_max_connections,
            self.mllp_max_per_source,
            frame_timeout=self.mllp_frame_timeout,
            idle_timeout=self.mllp_idle_timeout,
        )

    @property
    def http_limits(self) -> Limits:
        """Caps, with the header deadline as the 'frame' and keep-alive as the idle time."""
        from adapter.service.admission import Limits

        return Limits(
            self.http_max_connections,
            self.http_max_per_source,
            frame_timeout=self.http_header_timeout,
            idle_timeout=self.http_idle_timeout,
        )

    @classmethod
    def load(cls, config_file: Path | None = None, **given: Any) -> Settings:
        """Arguments over ``HER2_*`` variables over ``config_file`` (TOML) over defaults.

        The file takes the same keys as the settings (``mllp_port = 2575``); an unknown key is
        an error, so a misspelt setting is not silently ignored. Raises ValidationError, and
        OSError or ``tomllib.TOMLDecodeError`` for a file that cannot be read.
        """
        if config_file is None:
            return cls(**given)
        import tomllib  # only with a file: convert never needs it

        with config_file.open("rb") as file:
            from_file = tomllib.load(file)
        # The variables go between the file and the arguments (the validator adds them again
        # under the arguments, which changes nothing).
        return cls(**{**from_file, **_environment_values(cls.model_fields), **given})

    @property
    def worker_count(self) -> int:
        """``workers``, or the default for the CPUs this process may use (0 with one CPU)."""
        if self.workers is not None:
            return self.workers
        from adapter.service.affinity import available_cpus

        return len(available_cpus()) - 1

    @property
    def mllp_tls(self) -> bool:
        return self.mllp_tls_cert is not None


def _environment_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The ``HER2_<FIELD>`` variables of these fields, read as pydantic-settings reads them.

    Names match in any case (of two spellings, the one ``os.environ`` lists last wins); values are
    passed on as given, an empty one included, for the fields to validate. A field holding a
    collection takes JSON (``HER2_ORIGINAL_MODE_SENDERS='["LAB"]'``), as pydantic-settings has it.
    """
    variables = {name.lower(): value for name, value in os.environ.items()}
    found: dict[str, Any] = {}
    for name, info in fields.items():
        value = variables.get(f"{ENV_PREFIX}{name}".lower())
        if value is None:
            continue
        if get_origin(info.annotation) in (tuple, list, set, frozenset, dict):
            try:
                found[name] = json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(f"{ENV_PREFIX}{name.upper()} must be JSON: {error}") from None
            continue
        found[name] = value
    return found
