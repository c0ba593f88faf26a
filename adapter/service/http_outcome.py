"""FHIR OperationOutcome answers: every HTTP error carries the adapter's stable error code.

``issue.code`` is the FHIR issue type (what kind of problem), ``issue.details.coding.code`` the
adapter code from ``docs/errors.md`` (which problem exactly), ``diagnostics`` the reason and
``expression``/``location`` where in the message it was found.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

from adapter.errors import (
    AdapterError,
    EncodingError,
    InvalidJson,
    InvalidResource,
    MalformedMessage,
    MessageTooLarge,
    NotFhir,
    NothingToClassify,
    TransientError,
    UnsupportedMessage,
    UnsupportedResource,
    all_error_classes,
)

ERROR_CODE_SYSTEM = "urn:her2-adapter:error-code"
FHIR_JSON = "application/fhir+json"

# Checked in order: the first class an error is an instance of gives its FHIR issue type.
_ISSUE_TYPES: tuple[tuple[type[AdapterError], str], ...] = (
    (MalformedMessage, "structure"),
    (EncodingError, "structure"),
    (InvalidJson, "structure"),
    (NotFhir, "structure"),
    (UnsupportedMessage, "not-supported"),
    (UnsupportedResource, "not-supported"),
    (MessageTooLarge, "too-costly"),
    (InvalidResource, "invalid"),
    (NothingToClassify, "invalid"),
    (TransientError, "transient"),
)


def issue_type(error: type[AdapterError]) -> str:
    """The FHIR issue type of an adapter error; ``exception`` for the adapter's own faults."""
    for cls, code in _ISSUE_TYPES:
        if issubclass(error, cls):
            return code
    return "exception"


_ERRORS_BY_CODE = {cls.code: cls for cls in all_error_classes()}


def operation_outcome(
    code: str, issue: str, diagnostics: str, location: str | None = None
) -> dict[str, Any]:
    """One error issue; ``location`` goes to both ``expression`` and the older ``location``."""
    entry: dict[str, Any] = {
        "severity": "error",
        "code": issue,
        "details": {"coding": [{"system": ERROR_CODE_SYSTEM, "code": code}], "text": code},
        "diagnostics": diagnostics,
    }
    if location:
        entry["expression"] = [location]
        entry["location"] = [location]
    return {"resourceType": "OperationOutcome", "issue": [entry]}


def outcome_response(
    status: int,
    code: str,
    issue: str,
    diagnostics: str,
    location: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = orjson.dumps(operation_outcome(code, issue, diagnostics, location))
    return Response(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def error_response(error: AdapterError, headers: dict[str, str] | None = None) -> Response:
    """The answer to an adapter error: its HTTP status, issue type, code, reason and location."""
    return outcome_response(
        error.http_status,
        error.code,
        issue_type(type(error)),
        error.reason,
        error.location,
        headers,
    )


def outcome_for_code(code: str, reason: str, headers: dict[str, str] | None = None) -> Response:
    """The answer to a stored error code (a duplicate's first outcome); unknown codes give 500."""
    error = _ERRORS_BY_CODE.get(code, AdapterError)
    return outcome_response(error.http_status, code, issue_type(error), reason, None, headers)
