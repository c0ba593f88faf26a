"""What the FHIR facade indexes of a Bundle: every resource, with references made resolvable.

In the transaction Bundle, entries refer to each other by ``urn:uuid:<id>`` fullUrls, which mean
nothing outside it. Indexed resources have them rewritten to ``Type/<id>``, the form a client
resolves against the facade (``GET /fhir/Type/<id>``). Each resource also gets the tokens, the
patient and the moment its searches use (``adapter.service.fhir_facade.SEARCH_PARAMETERS``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from adapter.emit.bundle import dumps
from adapter.store import ResourceIndexRow

JsonDict = dict[str, Any]

# token search parameter -> the elements whose Codings / Identifiers / codes it matches
TOKEN_ELEMENTS: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "DiagnosticReport": {
        "code": ("code",),
        "status": ("status",),
        # the LAB category and, as this API has always had it, the adapter category
        "category": ("category", "conclusionCode"),
        "conclusion": ("conclusionCode",),
        "identifier": ("identifier",),
    },
    "Observation": {
        "code": ("code",),
        "status": ("status",),
        "category": ("category",),
        "value-concept": ("valueCodeableConcept",),
    },
    "Patient": {"identifier": ("identifier",), "gender": ("gender",)},
    "Specimen": {"identifier": ("identifier",), "type": ("type",)},
    "Organization": {"identifier": ("identifier",)},
    "Practitioner": {"identifier": ("identifier",)},
}
MOMENT_ELEMENTS: Final[dict[str, tuple[str, ...]]] = {
    "DiagnosticReport": ("effectiveDateTime", "issued"),
    "Observation": ("effectiveDateTime", "issued"),
}
"""The element whose time the ``date`` search compares: the first of these present."""


def resource_rows(bundle: JsonDict) -> list[ResourceIndexRow]:
    entries = bundle.get("entry", [])
    located = {
        entry["fullUrl"].encode(): (
            f'"{entry["resource"]["resourceType"]}/{entry["resource"]["id"]}"'.encode()
        )
        for entry in entries
        if "fullUrl" in entry and "resource" in entry
    }

    def local(found: re.Match[bytes]) -> bytes:
        return located.get(found.group(1), found.group(0))

    rows: list[ResourceIndexRow] = []
    for entry in entries:
        resource = entry.get("resource", {})
        kind = resource.get("resourceType")
        if kind not in TOKEN_ELEMENTS:
            continue
        # one pass over the serialised resource: every quoted urn:uuid reference of the Bundle
        body = _URN_REFERENCE.sub(local, dumps(resource))
        subject = located.get(resource.get("subject", {}).get("reference", "").encode(), b"")
        patient = subject.strip(b'"').decode()
        rows.append(
            ResourceIndexRow(
                resource_type=kind,
                resource_id=resource["id"],
                patient=patient if patient.startswith("Patient/") else "",
                tokens=tokens(kind, resource),
                moment=_moment(kind, resource),
                body=body,
            )
        )
    return rows


_URN_REFERENCE: Final = re.compile(rb'"(urn:uuid:[0-9a-f-]{36})"')


def token_word(parameter: str, value: str) -> str:
    """One indexed word: ``parameter:value``, with "%" and white space percent-encoded so that
    words stay apart (the same spelling on both sides, index and search, is all that matters)."""
    return f"{parameter}:{_SEPARATORS.sub(_percent, value)}"


_SEPARATORS: Final = re.compile(r"[%\s]")


def _percent(found: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in found.group(0).encode())


def tokens(kind: str, resource: JsonDict) -> str:
    words: dict[str, None] = {}
    for parameter, elements in TOKEN_ELEMENTS[kind].items():
        for element in elements:
            for system, code in _tokens_of(resource.get(element)):
                # a token matches as code, |code (no system), or system|code
                words[token_word(parameter, code)] = None
                words[token_word(parameter, f"{system}|{code}" if system else f"|{code}")] = None
    return " " + " ".join(words) + " " if words else ""


def utc_moment(text: str) -> str | None:
    """A FHIR dateTime / instant with an offset as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tokens_of(value: Any) -> list[tuple[str | None, str]]:
    if isinstance(value, str):
        return [(None, value)]
    if isinstance(value, list):
        return [token for item in value for token in _tokens_of(item)]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        return [(c.get("system"), c["code"]) for c in value["coding"] if c.get("code")]
    if "value" in value:  # an Identifier
        return [(value.get("system"), value["value"])]
    return []


def _moment(kind: str, resource: JsonDict) -> str:
    for element in MOMENT_ELEMENTS.get(kind, ()):
        text = resource.get(element)
        if isinstance(text, str) and (moment := utc_moment(text)):
            return moment
    return ""
