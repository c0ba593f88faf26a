"""``ServiceSettings``: what ``serve`` and ``reprocess`` add to ``Settings``, via pydantic-settings.

Flags over ``HER2_*`` environment variables over a TOML file
(``adapter.service.server.load_settings``) over defaults. It lives apart from ``Settings`` so that
``convert``, which needs only ``Settings``, does not import pydantic-settings.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapter.config import ENV_PREFIX, Settings
from adapter.service.admission import Limits
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

    @model_validator(mode="after")
    def _caps_in_order(self) -> ServiceSettings:
        for transport in ("mllp", "http"):
            if getattr(self, f"{transport}_max_per_source") > getattr(
                self, f"{transport}_max_connections"
            ):
                raise ValueError(f"{transport}_max_per_source exceeds {transport}_max_connections")
        return self

    @property
    def mllp_limits(self) -> Limits:
        return Limits(
            self.mllp_max_connections,
            self.mllp_max_per_source,
            frame_timeout=self.mllp_frame_timeout,
            idle_timeout=self.mllp_idle_timeout,
        )

    @property
    def http_limits(self) -> Limits:
        """Caps, with the header deadline as the 'frame' and keep-alive as the idle time."""
        return Limits(
            self.http_max_connections,
            self.http_max_per_source,
            frame_timeout=self.http_header_timeout,
            idle_timeout=self.http_idle_timeout,
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
