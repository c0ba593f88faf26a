"""The HTTP API of ``her2-adapter serve``: ingest, report queries, message status, health, metrics.

Every answer that is not a success is a FHIR OperationOutcome carrying the adapter's error code
(``http_outcome``). Ingest follows the service's order: the body is size-checked, then stored
and processed, then answered; a store fault answers 503 with Retry-After and no result.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from adapter import __version__
from adapter.emit.ack import batch_header_of
from adapter.errors import MappingFileError, StoreUnavailable
from adapter.model import SourceFormat
from adapter.pipeline import split_frame
from adapter.service import fhir_facade, http_read
from adapter.service.handler import Handled
from adapter.service.http_audit import install_audit
from adapter.service.http_body import (
    FHIR_MEDIA_TYPES,
    HL7_MEDIA_TYPES,
    BadContentLength,
    media_type,
    read_body,
)
from adapter.service.http_outcome import (
    FHIR_JSON,
    error_response,
    outcome_for_code,
    outcome_response,
)
from adapter.service.metrics import REGISTRY, observe
from adapter.store import MessageStatus, Store, Transport

if TYPE_CHECKING:  # adapter.service.server imports this module to build the app
    from adapter.service.server import Runtime

log = logging.getLogger("her2_adapter.http")

RETRY_AFTER_SECONDS = "5"
PUBLIC_PATHS = frozenset({"/healthz"})

_HL7_BODY = {"schema": {"type": "string"}}
_HL7_REQUEST = {
    "requestBody": {
        "required": True,
        "description": "HL7 v2 ORU^R01 in ER7: one message (answered with its Bundle), or"
        " several or an FHS/BHS batch (a batch-response Bundle, one entry per message)",
        "content": dict.fromkeys(sorted(HL7_MEDIA_TYPES), _HL7_BODY),
    }
}
_FHIR_REQUEST = {
    "requestBody": {
        "required": True,
        "description": "An Observation, a Bundle, or NDJSON of resources",
        "content": {
            "application/fhir+json": {"schema": {"type": "object"}},
            "application/json": {"schema": {"type": "object"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/fhir+ndjson": {"schema": {"type": "string"}},
        },
    }
}
_OUTCOME = {"description": "OperationOutcome", "content": {FHIR_JSON: {}}}
_INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The transaction Bundle", "content": {FHIR_JSON: {}}},
    400: _OUTCOME,
    401: _OUTCOME,
    413: _OUTCOME,
    415: _OUTCOME,
    422: _OUTCOME,
    503: _OUTCOME,
}


def create_app(runtime: Runtime) -> FastAPI:
    """The FastAPI application over one running service (its store, committer and service)."""
    app = FastAPI(
        title="her2-adapter",
        version=__version__,
        description="HL7 v2 / FHIR HER2 results in, guideline-classified FHIR R4 reports out.",
    )
    _install_auth(app, runtime.settings.api_token)
    _install_error_handlers(app)
    store = runtime.store

    @app.post("/hl7v2", openapi_extra=_HL7_REQUEST, responses=_INGEST_RESPONSES)
    async def post_hl7v2(request: Request) -> Response:
        """Classify one HL7 v2 ORU^R01 message; answers the FHIR transaction Bundle."""
        if media_type(request) not in HL7_MEDIA_TYPES:
            return _unsupported_media(request, HL7_MEDIA_TYPES)
        return await _ingest(request, runtime, SourceFormat.HL7V2, None)

    @app.post("/fhir", openapi_extra=_FHIR_REQUEST, responses=_INGEST_RESPONSES)
    async def post_fhir(
        request: Request,
        source: str | None = Query(None, max_length=200, description="The sender's identity"),
        x_her2_source: str | None = Header(None, max_length=200),
    ) -> Response:
        """Classify FHIR Observations (one, a Bundle, or NDJSON); answers the Bundle."""
        if media_type(request) not in FHIR_MEDIA_TYPES:
            return _unsupported_media(request, FHIR_MEDIA_TYPES)
        sender = (source or x_her2_source or "").strip() or None
        return await _ingest(request, runtime, SourceFormat.FHIR, sender)

    codesystem_url = runtime.settings.codesystem_url

    @app.get("/fhir/metadata", responses={406: _OUTCOME})
    async def fhir_metadata(request: Request) -> Response:
        """The CapabilityStatement: exactly what this FHIR facade supports."""
        refused = _not_acceptable(request)
        if refused is not None:
            return refused
        return fhir_facade.capability_statement(_fhir_base(request))

    @app.get(
        "/fhir/{resource_type}/{resource_id}",
        responses={404: _OUTCOME, 406: _OUTCOME, 503: _OUTCOME},
    )
    async def fhir_read(request: Request, resource_type: str, resource_id: str) -> Response:
        """The latest version of one resource (references resolve here as Type/<id>)."""
        refused = _not_acceptable(request)
        if refused is not None:
            return refused
        return await _read(
            lambda: fhir_facade.read(store, resource_type, resource_id, codesystem_url)
        )

    @app.get("/fhir/{resource_type}", responses={400: _OUTCOME, 406: _OUTCOME, 503: _OUTCOME})
    async def fhir_search(request: Request, resource_type: str) -> Response:
        """A searchset Bundle, paged by _count; unsupported parameters are refused (400)."""
        refused = _not_acceptable(request)
        if refused is not None:
            return refused
        params = request.query_params.multi_items()
        lenient = "handling=lenient" in request.headers.get("prefer", "").replace(" ", "")
        base = _fhir_base(request)
        return await _read(
            lambda: fhir_facade.search(
                store,
                resource_type,
                base,
                params,
                lenient=lenient,
                codesystem_url=codesystem_url,
            )
        )

    @app.get("/cases/{case_id}", responses={404: _OUTCOME, 503: _OUTCOME})
    async def get_case(case_id: str) -> Response:
        """One case over time: each version, the message that brought it, what changed."""
        return await _read(lambda: http_read.case(store, case_id))

    @app.get("/cases", responses={400: _OUTCOME, 503: _OUTCOME})
    async def find_cases(
        number: str | None = Query(None, description="An order or specimen number, as sent"),
        message: str | None = Query(None, description="A message control id"),
    ) -> Response:
        """The ids of the cases holding a number, or touched by a message."""
        return await _read(lambda: http_read.cases(store, number, message))

    @app.get("/messages/{message_id:path}", responses={404: _OUTCOME, 503: _OUTCOME})
    async def get_message(
        message_id: str, sender: str | None = Query(None, description="Only this sender's")
    ) -> Response:
        """What became of a message: status, error, versions, forwarding and the Bundle."""
        return await _read(lambda: http_read.message(store, message_id, sender))

    @app.get("/healthz", responses={503: _OUTCOME})
    async def healthz() -> Response:
        """200 when the store answers, 503 (with Retry-After) when it does not."""
        return await _read(lambda: _health(store))

    @app.post("/admin/mappings/reload", responses={403: _OUTCOME, 422: _OUTCOME})
    async def reload_mappings() -> Response:
        """Read the mapping files again without a restart (needs the API token set)."""
        if not runtime.settings.api_token:
            return outcome_response(
                403,
                "HTTP-FORBIDDEN",
                "forbidden",
                "reloading over HTTP needs an API token (HER2_API_TOKEN); or send SIGHUP",
            )
        try:
            mappings = await runtime.service.reload_mappings()
        except MappingFileError as error:
            return error_response(error)
        return JSONResponse({"mappings_version": mappings.version, "files": mappings.files})

    install_audit(app, runtime)

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app


def _fhir_base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _not_acceptable(request: Request) -> Response | None:
    return fhir_facade.not_acceptable(
        request.query_params.get("_format"), request.headers.get("accept")
    )


def _health(store: Store) -> Response:
    store.ping()
    return JSONResponse({"status": "ok", "store": store.backend_name})


async def _read(answer: Callable[[], Response]) -> Response:
    """Runs a store read off the event loop; a store fault answers 503."""
    try:
        return await asyncio.to_thread(answer)
    except StoreUnavailable as error:
        return _unavailable(error)


async def _ingest(
    request: Request, runtime: Runtime, kind: SourceFormat, source: str | None
) -> Response:
    try:
        body = await read_body(request, runtime.settings.max_message_bytes)
    except BadContentLength:
        return outcome_response(400, "HTTP-BAD-REQUEST", "structure", "invalid Content-Length")
    started = time.perf_counter()
    service = runtime.service
    # HL7 v2 bodies are cut as MLLP frames are: without a BOM, each message on its own.
    messages, batch = [body.data], False
    if kind is SourceFormat.HL7V2 and not body.oversized:
        messages = split_frame(body.data)
        batch = len(messages) > 1 or batch_header_of(body.data) is not None
    try:
        if body.oversized:
            handled = await service.reject_oversized(
                body.data, body.size, Transport.HTTP, format_hint=kind
            )
        elif batch:
            return await _ingest_several(runtime, messages, started)
        else:
            handled = await service.handle(
                messages[0], Transport.HTTP, format_hint=kind, fhir_source=source
            )
        response = await _answer(runtime.store, handled)
    except StoreUnavailable as error:
        observe("http", "unstored", time.perf_counter() - started)
        log.warning("message not stored", extra={"error_code": error.code})
        return _unavailable(error)
    outcome = "duplicate" if handled.duplicate else handled.status.value
    observe("http", outcome, time.perf_counter() - started)
    return response


async def _ingest_several(runtime: Runtime, messages: list[bytes], started: float) -> Response:
    """Several HL7 v2 messages in one body (a batch): each stored and answered, in order.

    The answer is a FHIR ``batch-response`` Bundle with one entry per message: its Bundle, or its
    OperationOutcome, and the HTTP status it would have had alone. A store fault answers 503 for
    the whole body: the messages stored before it are recognised as copies when it is resent.
    """
    entries: list[dict[str, Any]] = []
    for message in messages:
        handled = await runtime.service.handle(
            message, Transport.HTTP, format_hint=SourceFormat.HL7V2
        )
        answer = await _answer(runtime.store, handled)
        observe("http", "duplicate" if handled.duplicate else handled.status.value, 0.0)
        entries.append(
            {
                "resource": orjson.loads(answer.body),
                "response": {"status": f"{answer.status_code} {_REASONS[answer.status_code]}"},
            }
        )
    observe("http", "batch", time.perf_counter() - started)
    bundle = {"resourceType": "Bundle", "type": "batch-response", "entry": entries}
    return Response(orjson.dumps(bundle), media_type=FHIR_JSON)


_REASONS = {status.value: status.phrase for status in HTTPStatus}


async def _answer(store: Store, handled: Handled) -> Response:
    """The Bundle or the OperationOutcome; a duplicate is answered as its first copy was."""
    if handled.duplicate:
        headers = {"X-HER2-Duplicate": "true"}
        if handled.bundle_json is not None:
            # A copy of a message still in flight: its outcome may not be stored yet.
            return Response(handled.bundle_json, media_type=FHIR_JSON, headers=headers)
        if handled.status is MessageStatus.PROCESSED:
            row = await asyncio.to_thread(store.get_message_row, handled.receipt.row_id)
            if row is not None and row.bundle is not None:
                return Response(row.bundle, media_type=FHIR_JSON, headers=headers)
        return outcome_for_code(
            handled.error_code or "INTERNAL", handled.receipt.error_text or "", headers
        )
    if handled.error is not None:
        return error_response(handled.error)
    return Response(handled.bundle_json, media_type=FHIR_JSON)


def _unavailable(error: StoreUnavailable) -> Response:
    # The store's reason may name the database file or host: it stays in the server log.
    log.warning("store unavailable", extra={"error_code": error.code})
    return outcome_response(
        503,
        error.code,
        "transient",
        "the store is unavailable: nothing was stored or processed; retry later",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def _unsupported_media(request: Request, accepted: frozenset[str]) -> Response:
    given = media_type(request) or "none"
    return outcome_response(
        415,
        "HTTP-MEDIA-TYPE",
        "not-supported",
        f"Content-Type {given[:100]} is not taken here; use one of {', '.join(sorted(accepted))}",
    )


def _install_auth(app: FastAPI, token: str | None) -> None:
    """With a token set, every path but /healthz needs ``Authorization: Bearer <token>``."""
    if not token:
        return
    expected = f"Bearer {token}".encode()

    @app.middleware("http")
    async def require_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path in PUBLIC_PATHS:
            return await call_next(request)
        given = request.headers.get("authorization", "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, expected):
            return outcome_response(
                401,
                "HTTP-UNAUTHORIZED",
                "login",
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await call_next(request)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: ("HTTP-NOT-FOUND", "not-found"), 405: ("HTTP-METHOD", "not-supported")}
        code, issue = codes.get(exc.status_code, ("HTTP-BAD-REQUEST", "invalid"))
        return outcome_response(exc.status_code, code, issue, str(exc.detail)[:200])

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in exc.errors()
        )
        return outcome_response(400, "HTTP-BAD-REQUEST", "invalid", problems[:500])

    @app.middleware("http")
    async def internal(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Caught here, inside Starlette's own error middleware, so that nothing re-raises the
        # exception to uvicorn, which would log its text: it may quote message content.
        try:
            return await call_next(request)
        except ClientDisconnect:
            log.info("client disconnected at %s", request.url.path)
            return Response(status_code=400)
        except Exception as exc:  # noqa: BLE001 - answered as a 500 OperationOutcome
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("internal error %s at %s\n%s", type(exc).__name__, request.url.path, frames)
            return outcome_response(
                500, "INTERNAL", "exception", "internal error; the details are in the server log"
            )
