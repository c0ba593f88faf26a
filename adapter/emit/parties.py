"""The people and organisations of a Bundle: Patient, the performing lab, result interpreters.

Each is written so that a receiving server links to the resource it already has instead of
creating a copy: an entry whose identifier has a system is a conditional create
(``POST`` with ``ifNoneExist`` on that identifier), which never overwrites the receiver's own
record; one without (nothing to match on safely) is a ``PUT`` to its derived id, as before.

What a Patient carries is the deployment's choice (``Settings.patient_details``, docs/output.md):
``full`` adds name, sex and birth date to the identifiers and claims US Core Patient when the
sender gave what that profile requires; ``minimal`` sends identifiers only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import quote

from adapter.emit import datatypes as dt
from adapter.emit.ids import resource_id
from adapter.emit.profiles import US_CORE_PATIENT, meta
from adapter.model import (
    AdministrativeGender,
    Identifier,
    Organization,
    PatientRef,
    PersonName,
    Practitioner,
)

JsonDict = dt.JsonDict
PatientDetails = Literal["full", "minimal"]

URI_IDENTIFIER_SYSTEM: Final = "urn:ietf:rfc:3986"
"""Identifier.system of an identifier whose value is itself a URI (an organisation's OID)."""


@dataclass
class PatientParts:
    """What the records of one message say about one patient, merged in message order."""

    identifiers: list[Identifier] = field(default_factory=list)
    name: PersonName | None = None
    gender: AdministrativeGender | None = None
    birth_date: str | None = None

    def add(self, patient: PatientRef) -> None:
        self.identifiers.extend(i for i in patient.identifiers if i not in self.identifiers)
        self.name = self.name or patient.name
        self.gender = self.gender or patient.gender
        self.birth_date = self.birth_date or patient.birth_date


def patient(patient_id: str, parts: PatientParts, details: PatientDetails) -> JsonDict:
    resource: JsonDict = {"resourceType": "Patient", "id": patient_id}
    identifiers = [
        dt.identifier(each, f"Patient.identifier[{index}]")
        for index, each in enumerate(parts.identifiers)
    ]
    if details == "full":
        name = _human_name(parts.name)
        if identifiers and name and parts.gender and all(i.system for i in parts.identifiers):
            resource["meta"] = meta(US_CORE_PATIENT)
        if identifiers:
            resource["identifier"] = identifiers
        if name:
            resource["name"] = [name]
        if parts.gender:
            resource["gender"] = parts.gender.value
        if parts.birth_date:
            resource["birthDate"] = parts.birth_date
    elif identifiers:
        resource["identifier"] = identifiers
    return resource


def organization_id(organization: Organization) -> str:
    # The same lab performs a sender's every result: its id is made once (bounded).
    key = (organization.uri, organization.name)
    found = _organization_ids.get(key)
    if found is None:
        found = resource_id("Organization", organization.uri, organization.name)
        if len(_organization_ids) >= _IDS_LIMIT:
            _organization_ids.clear()
        _organization_ids[key] = found
    return found


_organization_ids: dict[tuple[str | None, str | None], str] = {}
_IDS_LIMIT: Final = 1024


def is_writable(organization: Organization) -> bool:
    """FHIR's org-1: an Organization has a name or an identifier; a blank name alone has neither."""
    return bool(organization.uri or dt.text(organization.name))


def organization(organization: Organization) -> JsonDict:
    resource: JsonDict = {"resourceType": "Organization", "id": organization_id(organization)}
    if organization.uri:
        value = dt.identifier_value(organization.uri, "Organization.identifier.value")
        resource["identifier"] = [{"system": URI_IDENTIFIER_SYSTEM, "value": value}]
    name = dt.text(organization.name)
    if name:
        resource["name"] = name
    return resource


def practitioner_id(person: Practitioner) -> str:
    if person.identifier is not None:
        return resource_id(
            "Practitioner", "identifier", person.identifier.system, person.identifier.value
        )
    name = person.name or PersonName()
    return resource_id("Practitioner", "name", name.family, *name.given)


def practitioner(person: Practitioner) -> JsonDict:
    resource: JsonDict = {"resourceType": "Practitioner", "id": practitioner_id(person)}
    if person.identifier is not None:
        resource["identifier"] = [dt.identifier(person.identifier, "Practitioner.identifier")]
    name = _human_name(person.name)
    if name:
        resource["name"] = [name]
    return resource


def request(resource: JsonDict) -> JsonDict:
    """Conditional create on the first identifier with a system; else a PUT to the derived id."""
    kind = resource["resourceType"]
    for identifier in resource.get("identifier", ()):
        system = identifier.get("system")
        if system:
            token = f"{system}|{_escaped(identifier['value'])}"
            return {
                "method": "POST",
                "url": kind,
                "ifNoneExist": "identifier=" + quote(token, safe=":/|"),
            }
    return {"method": "PUT", "url": f"{kind}/{resource['id']}"}


def _escaped(value: str) -> str:
    # FHIR search escaping: "," "$" "|" and "\" separate or qualify values unless escaped
    for special in ("\\", ",", "$", "|"):
        value = value.replace(special, "\\" + special)
    return value


def _human_name(name: PersonName | None) -> JsonDict | None:
    if name is None:
        return None
    out: JsonDict = {}
    family = dt.text(name.family)
    if family:
        out["family"] = family
    given = [part for part in (dt.text(one) for one in name.given) if part]
    if given:
        out["given"] = given
    return out or None
