"""Settings, read from arguments, environment variables (``HER2_`` prefix) or a config file.

Everything that changes output (CodeSystem URL, site time zone, mappings) is here, so a replay can
state exactly what it ran with.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CODESYSTEM = "http://her2-adapter.org/fhir/CodeSystem/her2-adapter"
"""The adapter's own CodeSystem (categories, flags, rule ids, the ISH group component)."""

PROJECT_MAPPINGS = Path(__file__).resolve().parent.parent / "mappings"
INSTALLED_MAPPINGS = Path(__file__).resolve().parent / "_mappings"


def default_mappings_dir() -> Path:
    """The shipped mappings: the checkout's ``mappings/`` or, when installed, the packaged copy."""
    return PROJECT_MAPPINGS if PROJECT_MAPPINGS.is_dir() else INSTALLED_MAPPINGS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HER2_", frozen=True, extra="forbid")

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


class ServiceSettings(Settings):
    """``her2-adapter serve``: flags, ``HER2_*`` environment variables, or a config file."""

    host: str = Field("127.0.0.1", description="Bind address (loopback unless told otherwise)")
    mllp_port: int = Field(2575, ge=0, le=65535, description="MLLP port (0: do not listen)")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP API port (0: do not listen)")
    store: str = Field(
        "sqlite:///./her2-adapter.db", description="sqlite:///... or postgresql://..."
    )
    fhir_base: str | None = Field(None, description="Forward each Bundle to this FHIR server")
    api_token: str | None = Field(None, description="Bearer token required by the HTTP API")
    forward_max_attempts: int = Field(10, ge=1, description="Forwarding attempts before giving up")
    workers: int | None = Field(
        None,
        ge=0,
        description="Worker processes running the pipeline (0: in the service process;"
        " default: one per CPU but one, for the event loop and the store writer)",
    )

    @property
    def worker_count(self) -> int:
        """``workers``, or the default for the CPUs this process may use (0 with one CPU)."""
        if self.workers is not None:
            return self.workers
        return len(os.sched_getaffinity(0)) - 1
