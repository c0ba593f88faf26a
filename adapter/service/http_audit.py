"""``GET /audit`` (the lab QA page) and ``GET /audit.json`` (its figures), behind the API token.

Each request reads the store on a connection of its own, off the event loop: the audit reads
every indexed report, and doing so on the service's shared connection would hold its lock, and
so the store writer, for as long as the read takes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from adapter.audit.figures import MAX_MIN_REPORTS, AuditOptions, Period, build_audit
from adapter.audit.render_html import render_html
from adapter.audit.sources import from_store
from adapter.errors import StoreUnavailable
from adapter.service.http_outcome import outcome_response
from adapter.store import open_store

if TYPE_CHECKING:
    from adapter.service.server import Runtime

_PERIOD = Query(Period.MONTH, description="Count by ISO week or by month")
_SENDER = Query(None, max_length=200, description="Only this sender (MSH-3^MSH-4)")
_SINCE = Query(None, description="Reports of this day or later")
_UNTIL = Query(None, description="Reports before this day")
_MIN = Query(
    None,
    ge=1,
    le=MAX_MIN_REPORTS,
    description="Shares only from this many reports (default: settings)",
)


@dataclass(frozen=True)
class _AuditQuery:
    period: Period
    sender: str | None
    since: date | None
    until: date | None
    min_reports: int | None


def _audit_query(
    period: Period = _PERIOD,
    sender: str | None = _SENDER,
    since: date | None = _SINCE,
    until: date | None = _UNTIL,
    min_reports: int | None = _MIN,
) -> _AuditQuery:
    """The query parameters both endpoints take."""
    return _AuditQuery(period, sender, since, until, min_reports)


AuditQuery = Annotated[_AuditQuery, Depends(_audit_query)]


def install_audit(app: FastAPI, runtime: Runtime) -> None:
    settings = runtime.settings

    def figures(query: _AuditQuery) -> dict[str, Any]:
        options = AuditOptions(
            query.period,
            query.min_reports or settings.audit_min_reports,
            sender=query.sender,
            since=query.since,
            until=query.until,
        )
        with open_store(settings.store) as store:
            data = from_store(store, sender=query.sender)
        return build_audit(data.reports, data.unprocessed, options)

    async def answer(query: _AuditQuery, *, html: bool) -> Response:
        try:
            audit = await asyncio.to_thread(figures, query)
        except StoreUnavailable as error:
            return outcome_response(
                503, error.code, "transient", "the store is unavailable; retry later"
            )
        return HTMLResponse(render_html(audit)) if html else JSONResponse(audit)

    @app.get("/audit", response_class=HTMLResponse, responses={503: {}})
    async def audit_page(query: AuditQuery) -> Response:
        """The lab QA audit as a page: charts with their tables and CSV downloads."""
        return await answer(query, html=True)

    @app.get("/audit.json", responses={503: {}})
    async def audit_json(query: AuditQuery) -> Response:
        """The lab QA audit's figures as JSON (as `her2-adapter audit --json`)."""
        return await answer(query, html=False)
