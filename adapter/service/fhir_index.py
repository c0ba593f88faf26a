"""What the FHIR facade indexes of a Bundle: every resource, with references made resolvable.

In the transaction Bundle, entries refer to each other by ``urn:uuid:<id>`` fullUrls, which mean
nothing outside it. Indexed resources have them rewritten to ``Type/<id>``, the form a client
resolves against the facade (``GET /fhir/Type/<id>``). Each resource also gets the tokens, the
patient and the moment its searches use (``adapter.service.fhir_facade.SEARCH_PARAMETERS``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

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
        entry["fullUrl"]: f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
        for entry in entries
        if "fullUrl" in entry and "resource" in entry
    }
    rows: list[ResourceIndexRow] = []
    for entry in entries:
        resource = _resolvable(entry.get("resource", {}), located)
        kind = resource.get("resourceType")
        if kind not in TOKEN_ELEMENTS:
            continue
        rows.append(
            ResourceIndexRow(
                resource_type=kind,
                resource_id=resource["id"],
                patient=_patient(resource),
                tokens=tokens(kind, resource),
                moment=_moment(kind, resource),
                body=dumps(resource),
            )
        )
    return rows


def token_word(parameter: str, value: str) -> str:
    """One indexed word: ``parameter:value``, the value percent-encoded (no spaces inside)."""
    return f"{parameter}:{quote(value, safe=':/|')}"


def tokens(kind: str, resource: JsonDict) -> str:
    words: list[str] = []
    for parameter, elements in TOKEN_ELEMENTS[kind].items():
        for element in elements:
            for system, code in _tokens_of(resource.get(element)):
                # a token matches as code, |code (no system), or system|code
                for form in (code, f"{system}|{code}" if system else f"|{code}"):
                    word = token_word(parameter, form)
                    if word not in words:
                        words.append(word)
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


def _resolvable(node: Any, located: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {key: _resolvable(value, located) for key, value in node.items()}
        reference = out.get("reference")
        if isinstance(reference, str) and reference in located:
            out["reference"] = located[reference]
        return out
    if isinstance(node, list):
        return [_resolvable(item, located) for item in node]
    return node


def _patient(resource: JsonDict) -> str:
    reference = resource.get("subject", {}).get("reference", "")
    return reference if reference.startswith("Patient/") else ""


def _moment(kind: str, resource: JsonDict) -> str:
    for element in MOMENT_ELEMENTS.get(kind, ()):
        text = resource.get(element)
        if isinstance(text, str) and (moment := utc_moment(text)):
            return moment
    return ""
