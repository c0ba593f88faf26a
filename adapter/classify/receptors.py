"""ER, PgR and hormone-receptor status (ASCO/CAP 2020, section 6)."""

from __future__ import annotations

from dataclasses import dataclass

from adapter.classify.table import (
    ER_LOW_POSITIVE_COMMENT,
    ER_TABLE,
    PGR_TABLE,
    ReceptorTable,
)
from adapter.classify.trace import Trace, place, show
from adapter.model import FlagCode, HrStatus, Interpretation, ReceptorCall, ReceptorResult


@dataclass(frozen=True)
class Receptors:
    er: ReceptorCall | None
    pgr: ReceptorCall | None
    hr: HrStatus | None
    reported: bool


def classify_receptors(
    er: ReceptorResult | None, pgr: ReceptorResult | None, trace: Trace
) -> Receptors:
    er_call = _read(er, ER_TABLE, trace)
    if er_call is ReceptorCall.LOW_POSITIVE:
        trace.flag(FlagCode.ER_LOW_POSITIVE, ER_LOW_POSITIVE_COMMENT)
    pgr_call = _read(pgr, PGR_TABLE, trace)
    hr = _hr_status(er, er_call, pgr, pgr_call, trace)
    return Receptors(er_call, pgr_call, hr, reported=er is not None or pgr is not None)


def _read(result: ReceptorResult | None, table: ReceptorTable, trace: Trace) -> ReceptorCall | None:
    if result is None:
        return None
    if result.conflict is not None:
        # Not picked from, and not a lab failure: the order says two things about this receptor.
        trace.flag(FlagCode.DISCORDANCE, f"{result.conflict}; {table.name} not used")
        return _undetermined(table, result.conflict, trace)
    if result.indeterminate_reason is not None or result.stated is Interpretation.INDETERMINATE:
        return _undetermined(
            table,
            f"the lab could not determine {table.name} "
            f"({result.indeterminate_reason or 'stated indeterminate'})",
            trace,
        )
    if result.percent is None:
        return _read_stated(result.stated, table, trace)
    percent = result.percent
    band = place(percent, tuple(band for band, _ in table.bands))
    if band is None:
        bands = " / ".join(band.text for band, _ in table.bands)
        reason = f"{table.name} {show(percent)} straddles the bands {bands}"
        trace.flag(FlagCode.UNDECIDABLE_VALUE, reason)
        return _undetermined(table, reason, trace)
    call = next(call for held, call in table.bands if held is band)
    stated = result.stated
    if stated is not None and call not in table.compatible.get(stated, frozenset()):
        reason = f"{table.name} text '{stated.value}' contradicts {show(percent)} ({call.value})"
        trace.flag(FlagCode.DISCORDANCE, f"{reason}; {table.name} not used")
        return _undetermined(table, reason, trace)
    trace.fire(table.rule_for[call], f"{table.name} {show(percent)} {band.text}: {call.value}")
    return call


def _read_stated(
    stated: Interpretation | None, table: ReceptorTable, trace: Trace
) -> ReceptorCall | None:
    if stated is None:
        return _undetermined(
            table, f"{table.name} reported without a percentage or a result", trace
        )
    meaning = table.stated_alone.get(stated)
    if meaning is None:
        return _undetermined(
            table,
            f"{table.name} stated '{stated.value}' without a percentage decides no category",
            trace,
        )
    call = meaning.call
    trace.fire(meaning.rule_id, f"{table.name} stated '{stated.value}': {call.value}")
    if meaning.open_question is not None:
        trace.flag(*meaning.open_question)
    return call


def _undetermined(table: ReceptorTable, reason: str, trace: Trace) -> ReceptorCall | None:
    """Record why there is no call; always ``None``, so callers can return it."""
    trace.fire(table.undetermined_rule, reason)
    trace.flag(FlagCode.RECEPTOR_UNDETERMINED, reason)
    return None


def _hr_status(
    er: ReceptorResult | None,
    er_call: ReceptorCall | None,
    pgr: ReceptorResult | None,
    pgr_call: ReceptorCall | None,
    trace: Trace,
) -> HrStatus | None:
    if er is None and pgr is None:
        return None
    calls = f"ER {_describe(er, er_call)}, PgR {_describe(pgr, pgr_call)}"
    if ReceptorCall.POSITIVE in (er_call, pgr_call):
        trace.fire("HR-POSITIVE", f"{calls}: HR-positive")
        return HrStatus.POSITIVE
    pgr_negative_or_absent = pgr is None or pgr_call is ReceptorCall.NEGATIVE
    if er_call is ReceptorCall.LOW_POSITIVE and pgr_negative_or_absent:
        trace.fire("HR-LOW-POSITIVE", f"{calls}: HR-low-positive")
        return HrStatus.LOW_POSITIVE
    if er_call is ReceptorCall.NEGATIVE and pgr_call is ReceptorCall.NEGATIVE:
        trace.fire("HR-NEGATIVE", f"{calls}: HR-negative")
        return HrStatus.NEGATIVE
    reason = f"{calls}: no HR status defined for this combination"
    trace.fire("HR-UNDETERMINED", reason)
    trace.flag(FlagCode.RECEPTOR_UNDETERMINED, reason)
    return None


def _describe(result: ReceptorResult | None, call: ReceptorCall | None) -> str:
    if result is None:
        return "not reported"
    return "undetermined" if call is None else call.value
