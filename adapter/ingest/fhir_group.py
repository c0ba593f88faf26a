"""Which incoming Observations belong to one AssayRecord.

Observations listed by one DiagnosticReport, linked as one panel (``hasMember``, ``derivedFrom``)
or taken from one Specimen of one patient form one group. Observations with none of these links
are grouped by patient. Groups come out in order of their first resource in the input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from adapter.ingest.fhir_document import Incoming
from adapter.ingest.fhir_elements import obj, objects, reference, text


@dataclass
class Group:
    observations: list[Incoming] = field(default_factory=list)
    reports: list[Incoming] = field(default_factory=list)


class References:
    """Resolves references as sent: ``Type/id``, absolute URLs, ``urn:uuid:`` fullUrls, ``#id``."""

    def __init__(self, resources: Iterable[Incoming]) -> None:
        self._by_key: dict[str, Incoming] = {}
        for incoming in resources:
            if incoming.container is not None:
                self._by_key.setdefault(f"{incoming.container}|#{incoming.id}", incoming)
                continue
            if incoming.id:
                self._by_key.setdefault(f"{incoming.kind}/{incoming.id}", incoming)
            if incoming.full_url:
                self._by_key.setdefault(incoming.full_url, incoming)

    def resolve(self, sent: str | None, within: Incoming) -> Incoming | None:
        if not sent:
            return None
        if sent.startswith("#"):
            return self._by_key.get(f"{within.container or within.locator}|{sent}")
        found = self._by_key.get(sent)
        if found is not None:
            return found
        path = sent.split("/_history/", 1)[0].rstrip("/").split("/")
        return self._by_key.get("/".join(path[-2:])) if len(path) >= 2 else None


def group_observations(resources: list[Incoming], refs: References) -> list[Group]:
    observations = [r for r in resources if r.kind == "Observation"]
    reports = [r for r in resources if r.kind == "DiagnosticReport"]
    order = {incoming.locator: index for index, incoming in enumerate(resources)}
    links = _UnionFind()
    anchored: set[str] = set()
    for report in reports:
        links.add(report.locator)
        for item in objects(report.resource.get("result")):
            member = refs.resolve(reference(item), report)
            if member is not None and member.kind == "Observation":
                links.union(report.locator, member.locator)
                anchored.add(member.locator)
    for observation in observations:
        links.add(observation.locator)
        for name in ("hasMember", "derivedFrom"):
            for item in objects(observation.resource.get(name)):
                other = refs.resolve(reference(item), observation)
                if other is not None and other.kind == "Observation":
                    links.union(observation.locator, other.locator)
                    anchored.update((observation.locator, other.locator))
        specimen = specimen_key(observation, refs)
        if specimen is not None:
            links.union(
                observation.locator, f"specimen|{patient_key(observation, refs)}|{specimen}"
            )
            anchored.add(observation.locator)
    for observation in observations:
        if observation.locator not in anchored:
            links.union(observation.locator, f"patient|{patient_key(observation, refs)}")
    groups: dict[str, Group] = {}
    for incoming in sorted((*observations, *reports), key=lambda r: order[r.locator]):
        group = groups.setdefault(links.find(incoming.locator), Group())
        (group.observations if incoming.kind == "Observation" else group.reports).append(incoming)
    # A report with no results of its own may still carry them in its text (conclusion).
    return [group for group in groups.values() if group.observations or group.reports]


def patient_key(resource: Incoming, refs: References) -> str | None:
    subject = obj(resource.resource.get("subject"))
    found = refs.resolve(reference(subject), resource)
    if found is not None:
        return found.locator
    identifier = obj(subject.get("identifier"))
    if text(identifier.get("value")):
        return f"{identifier.get('system')}|{identifier.get('value')}"
    return reference(subject)


def specimen_key(resource: Incoming, refs: References) -> str | None:
    sent = reference(resource.resource.get("specimen"))
    found = refs.resolve(sent, resource)
    return found.locator if found is not None else sent


class _UnionFind:
    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def add(self, item: str) -> None:
        self._parent.setdefault(item, item)

    def find(self, item: str) -> str:
        self.add(item)
        root = item
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[item] != root:
            self._parent[item], item = root, self._parent[item]
        return root

    def union(self, first: str, second: str) -> None:
        a, b = self.find(first), self.find(second)
        if a != b:
            self._parent[b] = a
