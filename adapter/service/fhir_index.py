"""What the FHIR facade indexes of a Bundle, and how it serves the resources it finds.

Each resource is indexed by the tokens, the patient and the moment its searches use
(``adapter.service.fhir_facade.SEARCH_PARAMETERS``); its body is not copied into the index but
read from the message's stored Bundle when served (``served``). In the transaction Bundle,
entries refer to each other by ``urn:uuid:<id>`` fullUrls, which mean nothing outside it: served
resources have them rewritten to ``Type/<id>``, the form a client resolves against the facade
(``GET /fhir/Type/<id>``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

from adapter.emit.bundle import dumps, loads_exact
from adapter.store import ResourceIndexRow, StoredResource

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
    """What the index finds each resource of a Bundle by; the body stays in the Bundle."""
    entries = bundle.get("entry", [])
    located = _located(entries)
    rows: list[ResourceIndexRow] = []
    for entry in entries:
        resource = entry.get("resource", {})
        kind = resource.get("resourceType")
        if kind not in TOKEN_ELEMENTS:
            continue
        subject = located.get(resource.get("subject", {}).get("reference", "").encode(), b"")
        patient = subject.strip(b'"').decode()
        rows.append(
            ResourceIndexRow(
                resource_type=kind,
                resource_id=resource["id"],
                patient=patient if patient.startswith("Patient/") else "",
                tokens=tokens(kind, resource),
                moment=_moment(kind, resource),
            )
        )
    return rows


def served(found: Sequence[StoredResource]) -> list[bytes]:
    """The bodies of resources the index found, as the facade serves them, in order.

    Read from the stored Bundle that carries each (each Bundle parsed once), serialised as the
    emitter serialised it, with every ``urn:uuid:`` reference to another entry rewritten.
    """
    bundles: dict[bytes, dict[tuple[str, str], bytes]] = {}
    bodies = []
    for resource in found:
        if (bodies_of := bundles.get(resource.bundle)) is None:
            bodies_of = bundles[resource.bundle] = _bodies(loads_exact(resource.bundle))
        bodies.append(bodies_of[resource.resource_type, resource.resource_id])
    return bodies


def _bodies(bundle: JsonDict) -> dict[tuple[str, str], bytes]:
    entries = bundle.get("entry", [])
    located = _located(entries)

    def local(found: re.Match[bytes]) -> bytes:
        return located.get(found.group(1), found.group(0))

    # one pass over each serialised resource: every quoted urn:uuid reference of the Bundle
    return {
        (resource["resourceType"], resource["id"]): _URN_REFERENCE.sub(local, dumps(resource))
        for entry in entries
        if (resource := entry.get("resource", {})).get("resourceType") in TOKEN_ELEMENTS
    }


def _located(entries: list[JsonDict]) -> dict[bytes, bytes]:
    """Each entry's fullUrl (bytes) -> its quoted ``"Type/id"`` reference."""
    return {
        entry["fullUrl"].encode(): (
            f'"{entry["resource"]["resourceType"]}/{entry["resource"]["id"]}"'.encode()
        )
        for entry in entries
        if "fullUrl" in entry and "resource" in entry
    }


_URN_REFERENCE: Final = re.compile(rb'"(urn:uuid:[0-9a-f-]{36})"')


def token_word(parameter: str, value: str) -> str:
    """One indexed word: ``parameter:value``, with "%" and white space percent-encoded so that
    words stay apart (the same spelling on both sides, index and search, is all that matters)."""
    if "%" in value or " " in value or not value.isprintable():  # else nothing to encode
        value = _SEPARATORS.sub(_percent, value)
    return f"{parameter}:{value}"


_SEPARATORS: Final = re.compile(r"[%\s]")


def _percent(found: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in found.group(0).encode())


def tokens(kind: str, resource: JsonDict) -> str:
    words: dict[str, None] = {}
    for parameter, elements in TOKEN_ELEMENTS[kind].items():
        for element in elements:
            value = resource.get(element)
            if value is None:  # most elements are absent from most resources
                continue
            for system, code in _tokens_of(value):
                key = (parameter, system, code)
                if (pair := _WORDS.get(key)) is None:
                    pair = _token_pair(key)
                words[pair[0]] = None
                words[pair[1]] = None
    return " " + " ".join(words) + " " if words else ""


def _token_pair(key: tuple[str, str | None, str]) -> tuple[str, str]:
    """A token's two words: it matches as code, and as system|code (|code with no system)."""
    parameter, system, code = key
    pair = (
        token_word(parameter, code),
        token_word(parameter, f"{system}|{code}" if system else f"|{code}"),
    )
    if len(_WORDS) >= _WORDS_KEPT:
        _WORDS.clear()  # identifiers are new in every message: keep the codes, not all of them
    _WORDS[key] = pair
    return pair


_WORDS: Final[dict[tuple[str, str | None, str], tuple[str, str]]] = {}
"""Words of the tokens seen lately: codes, systems and statuses repeat in every message."""
_WORDS_KEPT: Final = 4096


# Remembered: a message gives each of its results and reports the same few times.
@lru_cache(maxsize=1024)
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
