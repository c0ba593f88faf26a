"""``ServiceSettings``: what ``serve`` and ``reprocess`` add to ``Settings``, via pydantic-settings.

Flags over ``HER2_*`` environment variables over a TOML file
(``adapter.service.server.load_settings``) over defaults. It lives apart from ``Settings`` so that
``convert``, which needs only ``Settings``, does not import pydantic-settings.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapter.config import ENV_PREFIX, Settings
from adapter.service.affinity import available_cpus


class ServiceSettings(BaseSettings, Settings):
    """``her2-adapter serve``: flags, ``HER2_*`` environment variables, or a config file."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    reads_environment: ClassVar[bool] = False  # pydantic-settings does, with the file under it

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

    pin_cpus: bool = Field(
        True,
        description="Give the service and each worker process CPUs of their own, when there"
        " are enough (Linux); false leaves their placement to the operating system",
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

    @property
    def worker_count(self) -> int:
        """``workers``, or the default for the CPUs this process may use (0 with one CPU)."""
        if self.workers is not None:
            return self.workers
        return len(available_cpus()) - 1
