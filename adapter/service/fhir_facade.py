"""The FHIR R4 facade a client library can use: metadata, reads and searches over the store.

``GET /fhir/metadata`` states exactly what is supported (``capability_statement``): reads of every
resource type the Bundles carry (the latest version of each, from the resource index, with the
Bundle's ``urn:uuid:`` references rewritten to ``Type/<id>`` so they resolve here), searches with
the parameters in ``SEARCH_PARAMETERS``, ``_count`` with ``first`` / ``previous`` / ``next``
links, and the adapter's CodeSystem and ValueSets. Searches are strict, as FHIR's
``handling=strict``: an unknown parameter or modifier is a 400 OperationOutcome, never silently
ignored (``Prefer: handling=lenient`` ignores unknown parameters and says so). JSON only: a
request for XML is answered 406.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import urlencode

import orjson
from fastapi.responses import Response

from adapter import __version__
from adapter.emit.profiles import (
    MCODE_TUMOR_MARKER_TEST,
    US_CORE_DIAGNOSTIC_REPORT_LAB,
    US_CORE_PATIENT,
)
from adapter.emit.vocabulary import code_system, value_sets
from adapter.service.fhir_index import TOKEN_ELEMENTS, served, token_word, utc_moment
from adapter.service.http_outcome import FHIR_JSON, operation_outcome, outcome_response
from adapter.store import ResourceSearch, Store

STORED_TYPES: Final = (
    "DiagnosticReport",
    "Observation",
    "Patient",
    "Specimen",
    "Organization",
    "Practitioner",
)
VOCABULARY_TYPES: Final = ("CodeSystem", "ValueSet")
DEFAULT_COUNT: Final = 100
MAX_COUNT: Final = 1000
CAPABILITY_DATE: Final = "2026-12-03"
"""When what the CapabilityStatement says last changed (a fixed date: no clock in content)."""

_PROFILES: Final[dict[str, tuple[str, ...]]] = {
    "DiagnosticReport": (US_CORE_DIAGNOSTIC_REPORT_LAB,),
    "Observation": (MCODE_TUMOR_MARKER_TEST,),
    "Patient": (US_CORE_PATIENT,),
}
_JSON_TYPES: Final = frozenset(
    {"json", "application/json", "application/fhir+json", "*/*", "application/*"}
)


@dataclass(frozen=True)
class SearchParameter:
    name: str
    type: str  # token | reference | date
    documentation: str


def _parameters(kind: str) -> tuple[SearchParameter, ...]:
    found = [SearchParameter("_id", "token", "The logical id")]
    for name, elements in TOKEN_ELEMENTS.get(kind, {}).items():
        found.append(
            SearchParameter(name, "token", f"code, |code or system|code in {', '.join(elements)}")
        )
    if kind in ("DiagnosticReport", "Observation", "Specimen"):
        found.append(SearchParameter("patient", "reference", "Patient/<id> or the bare id"))
        found.append(SearchParameter("subject", "reference", "Patient/<id> (patients only)"))
    if kind in ("DiagnosticReport", "Observation"):
        found.append(
            SearchParameter(
                "date",
                "date",
                "effectiveDateTime (else issued); prefixes eq, lt, le, gt, ge; a date without a"
                " zone is taken in UTC",
            )
        )
    if kind in VOCABULARY_TYPES:
        found.append(SearchParameter("url", "uri", "The canonical URL"))
    return tuple(found)


SEARCH_PARAMETERS: Final = {kind: _parameters(kind) for kind in (*STORED_TYPES, *VOCABULARY_TYPES)}
_CONTROL_PARAMETERS: Final = frozenset({"_count", "_offset", "_format"})


class SearchRefused(Exception):
    """A search the facade does not support; answered 400 with an OperationOutcome."""

    def __init__(self, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics


# --------------------------------------------------------------------------------------------
# Content negotiation
# --------------------------------------------------------------------------------------------


def not_acceptable(format_param: str | None, accept: str | None) -> Response | None:
    """406 when the client asks only for something other than JSON (XML, say)."""
    if format_param is not None:
        wanted = {format_param.split(";")[0].strip().lower()}
    elif accept:
        wanted = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    else:
        return None
    if wanted & _JSON_TYPES:
        return None
    return outcome_response(
        406,
        "HTTP-NOT-ACCEPTABLE",
        "not-supported",
        f"only JSON ({FHIR_JSON}) is served; {sorted(wanted)[0][:60]} is not",
    )


# --------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------


def capability_statement(base: str) -> Response:
    resources = []
    for kind in (*STORED_TYPES, *VOCABULARY_TYPES):
        entry: dict[str, object] = {"type": kind}
        if kind in _PROFILES:
            entry["supportedProfile"] = list(_PROFILES[kind])
        entry["interaction"] = [{"code": "read"}, {"code": "search-type"}]
        entry["searchParam"] = [
            {"name": p.name, "type": p.type, "documentation": p.documentation}
            for p in SEARCH_PARAMETERS[kind]
        ]
        resources.append(entry)
    statement = {
        "resourceType": "CapabilityStatement",
        "id": "her2-adapter",
        "version": __version__,
        "name": "Her2AdapterFhirFacade",
        "title": "her2-adapter FHIR read facade",
        "status": "active",
        "experimental": False,
        "date": CAPABILITY_DATE,
        "publisher": "her2-adapter",
        "kind": "instance",
        "software": {"name": "her2-adapter", "version": __version__},
        "implementation": {"description": "her2-adapter FHIR read facade", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Reads and searches of the latest version of every resource the adapter "
                    "emitted; searches are strict (an unsupported parameter is a 400), _count "
                    f"(default {DEFAULT_COUNT}, at most {MAX_COUNT}) pages with next/previous "
                    "links. Results are posted to POST /fhir (not a FHIR interaction: it "
                    "classifies, see docs/http-api.md)."
                ),
                "resource": resources,
            }
        ],
    }
    return Response(orjson.dumps(statement), media_type=FHIR_JSON)


# --------------------------------------------------------------------------------------------
# read
# --------------------------------------------------------------------------------------------


def read(store: Store, kind: str, resource_id: str, codesystem_url: str) -> Response:
    if kind in VOCABULARY_TYPES:
        found = next((r for r in _vocabulary(kind, codesystem_url) if r["id"] == resource_id), None)
        body = None if found is None else orjson.dumps(found)
    elif kind in STORED_TYPES:
        stored = store.get_resource(kind, resource_id)
        body = None if stored is None else served([stored])[0]
    else:
        return unknown_type(kind)
    if body is None:
        return outcome_response(
            404, "HTTP-NOT-FOUND", "not-found", f"no {kind} with id {resource_id[:100]}"
        )
    return Response(body, media_type=FHIR_JSON)


def unknown_type(kind: str) -> Response:
    return outcome_response(
        404,
        "HTTP-NOT-FOUND",
        "not-supported",
        f"{kind[:60]} is not a resource type served here (see /fhir/metadata)",
    )


# --------------------------------------------------------------------------------------------
# search
# --------------------------------------------------------------------------------------------


def search(
    store: Store,
    kind: str,
    base: str,
    params: Sequence[tuple[str, str]],
    *,
    lenient: bool,
    codesystem_url: str,
) -> Response:
    if kind not in SEARCH_PARAMETERS:
        return unknown_type(kind)
    try:
        query, ignored = _parse(kind, params, lenient=lenient)
    except SearchRefused as refused:
        return outcome_response(
            400, "HTTP-SEARCH-UNSUPPORTED", "not-supported", refused.diagnostics
        )
    if kind in VOCABULARY_TYPES:
        total, page = _search_vocabulary(kind, codesystem_url, query, params)
    else:
        total, hits = store.find_resources(query)
        page = list(zip((hit.resource_id for hit in hits), served(hits), strict=True))
    links = _links(f"{base}/{kind}", params, query, total)
    head: dict[str, object] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
    }
    entries = b",".join(
        b'{"fullUrl":'
        + orjson.dumps(f"{base}/{kind}/{resource_id}")
        + b',"resource":'
        + body
        + b',"search":{"mode":"match"}}'
        for resource_id, body in page
    )
    if ignored:
        entries_outcome = orjson.dumps(
            {
                "fullUrl": "urn:her2-adapter:search-outcome",
                "resource": {
                    **operation_outcome(
                        "HTTP-SEARCH-IGNORED",
                        "not-supported",
                        f"ignored (Prefer: handling=lenient): {', '.join(sorted(ignored))[:200]}",
                    ),
                },
                "search": {"mode": "outcome"},
            }
        )
        # an outcome entry's issue is a warning, not an error: the search itself succeeded
        entries_outcome = entries_outcome.replace(b'"severity":"error"', b'"severity":"warning"')
        entries = entries + (b"," if entries else b"") + entries_outcome
    body = orjson.dumps(head)[:-1] + b',"entry":[' + entries + b"]}"
    return Response(body, media_type=FHIR_JSON)


def _parse(
    kind: str, params: Sequence[tuple[str, str]], *, lenient: bool
) -> tuple[ResourceSearch, list[str]]:
    known = {p.name: p for p in SEARCH_PARAMETERS[kind]}
    count, offset = DEFAULT_COUNT, 0
    resource_id: str | None = None
    patient: str | None = None
    tokens: list[tuple[str, ...]] = []
    moments: list[tuple[str, str]] = []
    ignored: list[str] = []
    for name, value in params:
        if name == "_count":
            count = _integer(name, value, 0, MAX_COUNT)
            continue
        if name == "_offset":
            offset = _integer(name, value, 0, 10**9)
            continue
        if name == "_format":
            continue  # negotiated before the search
        base_name, _, modifier = name.partition(":")
        parameter = known.get(base_name)
        if parameter is None:
            if lenient:
                ignored.append(name)
                continue
            supported = ", ".join(sorted({*known, *_CONTROL_PARAMETERS}))
            raise SearchRefused(
                f"search parameter {name[:60]!r} is not supported for {kind};"
                f" supported: {supported}"
            )
        if modifier:
            raise SearchRefused(f"modifier :{modifier[:30]} is not supported ({name[:60]})")
        if not value:
            raise SearchRefused(f"{name[:60]} has no value")
        if base_name == "_id":
            resource_id = _single(name, value)
        elif parameter.type == "reference":
            patient = _patient(name, _single(name, value))
        elif parameter.type == "date":
            moments.extend(_date_filter(value))
        elif parameter.type == "uri":
            continue  # the vocabulary's url, matched by _search_vocabulary
        else:
            tokens.append(tuple(_token(base_name, v) for v in value.split(",")))
    query = ResourceSearch(
        resource_type=kind,
        resource_id=resource_id,
        patient=patient,
        tokens=tuple(tokens),
        moments=tuple(moments),
        count=count,
        offset=offset,
    )
    return query, ignored


def _integer(name: str, value: str, low: int, high: int) -> int:
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise SearchRefused(f"{name} must be a whole number from {low} to {high}")
    return int(value)


def _single(name: str, value: str) -> str:
    if "," in value:
        raise SearchRefused(f"{name[:60]} takes one value here, not a list")
    return value


def _patient(name: str, value: str) -> str:
    kind, _, rest = value.rpartition("/")
    if kind and kind != "Patient":
        raise SearchRefused(f"{name} refers to patients only (Patient/<id>)")
    return f"Patient/{rest}"


def _token(name: str, value: str) -> str:
    if value.endswith("|"):
        raise SearchRefused(f"{name}: a system without a code ({value[:60]!r}) is not supported")
    return token_word(name, value)


_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?$")
_OPERATORS: Final = {"eq": None, "lt": "lt", "le": "le", "gt": "gt", "ge": "ge"}


def _date_filter(text: str) -> list[tuple[str, str]]:
    """The comparisons a ``date`` value asks for, over [start, end) of its precision."""
    prefix = text[:2] if text[:2].isalpha() else "eq"
    value = text[2:] if text[:2].isalpha() else text
    if prefix not in _OPERATORS:
        raise SearchRefused(f"date prefix {prefix!r} is not supported (eq, lt, le, gt, ge)")
    start, end = _bounds(value)
    if prefix == "eq":
        return [(">=", start), ("<", end)]
    return {
        "lt": [("<", start)],
        "le": [("<", end)],
        "gt": [(">=", end)],
        "ge": [(">=", start)],
    }[prefix]


def _bounds(value: str) -> tuple[str, str]:
    if _DATE.match(value):
        parts = [int(p) for p in value.split("-")]
        year, month, day = (*parts, 1, 1)[:3]
        try:
            start = datetime(year, month, day)
        except ValueError as error:
            raise SearchRefused(f"date {value[:40]!r} is not a date") from error
        if len(parts) == 1:
            end = start.replace(year=start.year + 1)
        elif len(parts) == 2:
            end = (start + timedelta(days=32)).replace(day=1)
        else:
            end = start + timedelta(days=1)
        return _text(start.replace(tzinfo=UTC)), _text(end.replace(tzinfo=UTC))
    moment = utc_moment(value.replace("Z", "+00:00"))
    if moment is None:
        raise SearchRefused(f"date {value[:40]!r} is not a FHIR date or a dateTime with a zone")
    exact = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment, _text(exact + timedelta(seconds=1))


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _links(
    url: str, params: Sequence[tuple[str, str]], query: ResourceSearch, total: int
) -> list[dict[str, str]]:
    kept = [(n, v) for n, v in params if n not in ("_count", "_offset")]

    def at(offset: int) -> str:
        return f"{url}?{urlencode([*kept, ('_count', str(query.count)), ('_offset', str(offset))])}"

    links = [{"relation": "self", "url": at(query.offset)}, {"relation": "first", "url": at(0)}]
    if query.offset > 0:
        links.append({"relation": "previous", "url": at(max(0, query.offset - query.count))})
    if query.count and query.offset + query.count < total:
        links.append({"relation": "next", "url": at(query.offset + query.count)})
    return links


# --------------------------------------------------------------------------------------------
# the vocabulary
# --------------------------------------------------------------------------------------------


def _vocabulary(kind: str, codesystem_url: str) -> list[dict[str, object]]:
    return [code_system(codesystem_url)] if kind == "CodeSystem" else value_sets(codesystem_url)


def _search_vocabulary(
    kind: str, codesystem_url: str, query: ResourceSearch, params: Sequence[tuple[str, str]]
) -> tuple[int, list[tuple[str, bytes]]]:
    urls = {value for name, value in params if name == "url"}
    found = [
        r
        for r in _vocabulary(kind, codesystem_url)
        if (query.resource_id is None or r["id"] == query.resource_id)
        and (not urls or r["url"] in urls)
    ]
    page = found[query.offset : query.offset + query.count]
    return len(found), [(str(r["id"]), orjson.dumps(r)) for r in page]
