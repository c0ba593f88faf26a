"""Prometheus metrics for `GET /metrics`. Labels carry outcomes and codes, never patient data."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES = Counter(
    "her2_messages_total",
    "Messages handled, by transport and outcome (processed, rejected, failed, duplicate, unstored)",
    ["transport", "outcome"],
    registry=REGISTRY,
)
ACKS = Counter(
    "her2_acks_total", "HL7 v2 acknowledgements sent, by MSA-1 code", ["code"], registry=REGISTRY
)
LATENCY = Histogram(
    "her2_message_seconds",
    "Time from a message fully received to its answer being sent",
    ["transport"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
FORWARDS = Counter(
    "her2_forward_total",
    "Bundles forwarded to the FHIR server, by result (sent, retry, dead)",
    ["result"],
    registry=REGISTRY,
)


def observe(transport: str, outcome: str, seconds: float, ack_code: str | None = None) -> None:
    """Count one handled message (and its ACK), and its latency."""
    MESSAGES.labels(transport=transport, outcome=outcome).inc()
    LATENCY.labels(transport=transport).observe(seconds)
    if ack_code is not None:
        ACKS.labels(code=ack_code).inc()
