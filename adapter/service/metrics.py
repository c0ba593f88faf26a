"""Prometheus metrics for `GET /metrics`. Labels carry outcomes and codes, never patient data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from adapter.audit.facts import ReportFacts

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


_Metric = TypeVar("_Metric", Counter, Histogram)


class Children(Generic[_Metric]):
    """A metric's child for each set of label values (in the order the metric names them).

    Found again in a dict: ``labels`` checks its arguments and takes a lock each time, and the
    event loop asks for a few children per message. Label sets are bounded (see below), and
    a child once made stays in its metric, so the dict holds what the metric holds.
    """

    def __init__(self, metric: _Metric) -> None:
        self._metric: _Metric = metric
        self._made: dict[tuple[str, ...], _Metric] = {}

    def __call__(self, *values: str) -> _Metric:
        child = self._made.get(values)
        if child is None:
            child = self._made[values] = self._metric.labels(*values)
        return child


_messages = Children(MESSAGES)
acks = Children(ACKS)
_latency = Children(LATENCY)


def observe(transport: str, outcome: str, seconds: float, ack_code: str | None = None) -> None:
    """Count one handled message (and its ACK), and its latency."""
    _messages(transport, outcome).inc()
    _latency(transport).observe(seconds)
    if ack_code is not None:
        acks(ack_code).inc()


# --------------------------------------------------------------------------------------------
# What the traffic says (the audit's signals, for a hospital's Grafana): per sender and category,
# per flag, per IHC class, per result code not used. Label sets are bounded: categories, tissues,
# flags, IHC classes and unused kinds are enums; senders and (sender, result code) pairs keep
# their own label up to a cap (settings metrics_max_senders, metrics_max_codes) and count as
# "other" beyond it, so a misconfigured feed cannot grow the series without end. No label ever
# holds patient data.
# --------------------------------------------------------------------------------------------

OTHER = "other"

REPORTS = Counter(
    "her2_reports_total",
    "Reports classified, by sender, tissue and HER2 category",
    ["sender", "tissue", "category"],
    registry=REGISTRY,
)
IHC_SCORES = Counter(
    "her2_ihc_scores_total",
    "Reports with an IHC score, by sender, tissue and IHC class (0 null / ultralow / unknown"
    " sub-type, 1+, 2+, 3+)",
    ["sender", "tissue", "ihc"],
    registry=REGISTRY,
)
FLAGS = Counter(
    "her2_report_flags_total",
    "Flags raised on classified reports, by sender and flag",
    ["sender", "flag"],
    registry=REGISTRY,
)
UNUSED = Counter(
    "her2_unused_results_total",
    "Reported results not used, by sender, why (unmapped-code, value-not-understood ...) and"
    " result code",
    ["sender", "kind", "code"],
    registry=REGISTRY,
)


class BoundedLabel:
    """The first ``limit`` distinct values keep their own label; every later one is "other".

    Used from the event loop only (the handler), so it needs no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._known: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._known:
            return value
        if len(self._known) < self.limit:
            self._known.add(value)
            return value
        return OTHER


_senders = BoundedLabel(50)
_codes = BoundedLabel(200)


def bound_labels(max_senders: int, max_codes: int) -> None:
    """Sets the caps (at service start, from the settings); values already seen keep theirs."""
    _senders.limit = max_senders
    _codes.limit = max_codes


_reports = Children(REPORTS)
_ihc_scores = Children(IHC_SCORES)
_flags = Children(FLAGS)
_unused = Children(UNUSED)


def count_reports(sender: str, reports: Iterable[ReportFacts]) -> None:
    """Count one processed message's reports."""
    label = _senders(sender or "(none)")
    for facts in reports:
        _reports(label, facts.tissue, facts.category).inc()
        if facts.ihc is not None:
            _ihc_scores(label, facts.tissue, facts.ihc.value).inc()
        for flag in facts.flags:
            _flags(label, flag).inc()
        for kind, code in facts.unused:
            # The cap counts (sender, code) pairs, so the series stay bounded whatever mix of
            # senders sends which codes.
            code_label = code if _codes(f"{label}\x1f{code}") != OTHER else OTHER
            _unused(label, kind.value, code_label).inc()
