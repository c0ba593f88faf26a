"""Reading a request body within the size limit, and the media types each endpoint takes."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

PREFIX_BYTES = 64 * 1024
"""How much of an oversized body is kept: enough for the MSH or the JSON ids to be read."""

HL7_MEDIA_TYPES = frozenset({"text/plain", "x-application/hl7-v2+er7", "application/hl7-v2"})
FHIR_MEDIA_TYPES = frozenset(
    {
        "application/fhir+json",
        "application/json",
        "application/json+fhir",
        "application/x-ndjson",
        "application/fhir+ndjson",
        "application/ndjson",
    }
)


class BadContentLength(ValueError):
    """A Content-Length header that is not a non-negative integer."""


@dataclass(frozen=True)
class Body:
    data: bytes  # the whole body, or only its first PREFIX_BYTES when oversized
    size: int  # bytes declared or read; for an oversized chunked body, a lower bound
    oversized: bool


def media_type(request: Request) -> str:
    """The request's media type without parameters (``charset`` is ignored: MSH-18 rules)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> Body:
    """The body, refused by its declared length before reading, or once it grows past ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadContentLength(declared)
        if int(declared) > limit:
            return Body(await _read_prefix(request), int(declared), oversized=True)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            return Body(bytes(data[:PREFIX_BYTES]), len(data), oversized=True)
    return Body(bytes(data), len(data), oversized=False)


async def _read_prefix(request: Request) -> bytes:
    prefix = bytearray()
    async for chunk in request.stream():
        prefix += chunk
        if len(prefix) >= PREFIX_BYTES:
            break
    return bytes(prefix[:PREFIX_BYTES])
