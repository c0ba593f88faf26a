"""The audit over the adapter's own output: its Bundles, or what a receiver holds after taking
them (a FHIR server's NDJSON export, a searchset), read without the messages that made them.

A registry or receiver that holds only our Bundles audits what they say: each case's
DiagnosticReport and its HER2 summary Observation (category, tissue, official result, ISH
group, flags and rules, the notes naming results not used and ingest warnings), and the
reported Observations it lists. Resources are taken in the order given, each version replacing
the one before under its type and id, as a server that PUTs every entry holds them: a case
report that lists results an earlier Bundle brought (``Observation/<id>``) finds them.

What the Bundle does not say outright is read from it the way the rules did:

- the IHC score from the rule that read it (``HER2-IHC-0`` ... ``HER2-IHC-3``, ``GEA-IHC-2``,
  ``GEA-IHC-3``); gastroesophageal 0 and 1+ share ``GEA-IHC-01``, so there the reported IHC
  Observation is read with the mappings to tell them apart;
- the lab's own overall call and each result's analyte, from the reported Observations read
  with the mappings (``fhir_observation``, the FHIR reader's own code);
- the IHC→ISH time as ``facts.turnaround`` takes it: results of one issue time as one order
  (the emitter writes each order's OBR-22 on its results), each result at the issue time of
  the first version given (an export that holds only a later correction gives that one's).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any

import orjson

from adapter.audit.facts import (
    ReportFacts,
    TimedResult,
    UnusedKind,
    ihc_class_of,
    turnaround,
    unused_kind,
)
from adapter.cases.book import Arrival
from adapter.emit.codes import MAPPINGS_VERSION_SYSTEM
from adapter.errors import InvalidResource
from adapter.ingest.assemble import ReadValue, assemble
from adapter.ingest.fhir_observation import read_observation
from adapter.mapping import MappingSet
from adapter.model import IhcScore

_BOM = b"\xef\xbb\xbf"
_RULE_SCORE = {
    "HER2-IHC-0": IhcScore.ZERO,
    "HER2-IHC-1": IhcScore.ONE,
    "HER2-IHC-2": IhcScore.TWO,
    "HER2-IHC-3": IhcScore.THREE,
    "GEA-IHC-2": IhcScore.TWO,
    "GEA-IHC-3": IhcScore.THREE,
}
_GASTRIC_0_OR_1 = "GEA-IHC-01"
_ISH_RULES = ("HER2-ISH-", "GEA-ISH-")
# The summary's notes in the emitter's own forms (emit/wording.py): "<where> (<system> <code>)
# not used: <reason>" and "Warning <CODE>: <message>". Only an adapter locator and an adapter
# warning code are taken, so a lab's own note of a like shape adds nothing to the audit.
_UNUSED_NOTE = re.compile(
    r"(?:OBX\[\d+\](?:\.\d+)?|[A-Z][A-Za-z]+(?:\[\d+\]|/[A-Za-z0-9.-]{1,64})"
    r"(?:#[A-Za-z0-9.-]{1,64})?(?:\.component\[\d+\])?)"
    r"(?: \((?P<code>[^()]*)\))? not used: (?P<reason>.+)",
    re.DOTALL,
)
_WARNING_NOTE = re.compile(r"Warning (?P<code>[A-Z0-9]+(?:-[A-Z0-9]+)+): ")
_NO_PERFORMER = "(no performer named)"
_MALFORMED = (AttributeError, TypeError, ValueError, KeyError, IndexError, ArithmeticError)
"""What reading a resource of another shape than the emitter's raises."""

Key = tuple[str, str]  # (resource type, id)


def documents(data: bytes) -> list[Any] | None:
    """The JSON documents of a file (one JSON value, or NDJSON), None when it is not JSON.
    Decimals stay exact, as the FHIR reader reads them (its Observation reader wants them)."""
    try:
        text = data.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return [json.loads(text, parse_float=Decimal)]
    except ValueError:
        pass
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            found.append(json.loads(line, parse_float=Decimal))
        except ValueError:
            return None
    return found or None


def is_output(items: Iterable[Any], codesystem: str) -> bool:
    """Whether the documents hold one of the adapter's own case reports or summaries."""
    return any(_is_own_report(r, codesystem) for r, _ in _resources(items))


@dataclass(frozen=True, slots=True)
class OutputReport:
    """One case report of the output: its sender and facts (None when its case had every
    result withdrawn, so it carries no classification), or why it could not be read."""

    sender: str
    facts: ReportFacts | None
    error_code: str | None = None


@dataclass
class _Held:
    resource: dict[str, Any]  # the latest version, as given
    refs: dict[str, Key]  # its references the audit follows, resolved
    full_urls: dict[str, Key]  # its Bundle's fullUrls (shared by the Bundle's resources)
    first_issued: datetime | None  # the issue time of the first version given


class OutputReader:
    """Resources of the adapter's output in the order given; ``facts`` of each case report."""

    def __init__(self, mapping: MappingSet, codesystem: str, zone: tzinfo) -> None:
        self._mapping = mapping
        self._codesystem = codesystem
        self._zone = zone
        self._held: dict[Key, _Held] = {}

    def add(self, items: Iterable[Any]) -> None:
        """Each document (a Bundle of any type, or one resource) in turn."""
        for resource, full_urls in _resources(items):
            key = _key_of(resource)
            if key is None:
                continue
            earlier = self._held.get(key)
            first = (
                self._moment(resource.get("issued")) if earlier is None else earlier.first_issued
            )
            refs = _references(resource, full_urls)
            self._held[key] = _Held(resource, refs, full_urls, first)

    def reports(self) -> Iterator[OutputReport]:
        """Every adapter case report held, in id order."""
        for key in sorted(self._held):
            held = self._held[key]
            if key[0] != "DiagnosticReport" or not self._own(held):
                continue
            try:
                report = OutputReport(self._sender(held), self._facts(held))
            except _MALFORMED:
                # Not the emitter's shapes (the file was edited, or is not ours after all):
                # counted as the FHIR reader counts a resource R4 refuses, never guessed at.
                report = OutputReport(_NO_PERFORMER, None, InvalidResource.code)
            yield report

    def foreign_reports(self) -> Iterator[bytes]:
        """Every other DiagnosticReport held, as NDJSON of it and the resources it names (its
        results, subject, specimens, performers): a message for the FHIR reader to classify."""
        for key in sorted(self._held):
            held = self._held[key]
            if key[0] != "DiagnosticReport" or self._own(held):
                continue
            named = [found for ref in held.refs.values() if (found := self._get(ref))]
            unique = {id(found): found for found in (held, *named)}.values()
            yield b"".join(
                orjson.dumps(_as_held(found.resource, found.full_urls), default=_exact) + b"\n"
                for found in unique
            )

    def _own(self, report: _Held) -> bool:
        if _is_own_report(report.resource, self._codesystem):
            return True
        return any(
            (found := self._get(key)) is not None and _components(found.resource, self._codesystem)
            for name, key in report.refs.items()
            if name.startswith("result[")
        )

    def _get(self, key: Key | None) -> _Held | None:
        return None if key is None else self._held.get(key)

    def _sender(self, report: _Held) -> str:
        for index, _ in enumerate(report.resource.get("performer", [])):
            found = self._get(report.refs.get(f"performer[{index}]"))
            if found is None:
                continue
            name = found.resource.get("name")
            if isinstance(name, str) and name:
                return name
            for identifier in found.resource.get("identifier", []):
                value = identifier.get("value") if isinstance(identifier, dict) else None
                if isinstance(value, str) and value:
                    return value
        return _NO_PERFORMER

    def _facts(self, report: _Held) -> ReportFacts | None:
        results = [
            found
            for index in range(len(report.resource.get("result", [])))
            if (found := self._get(report.refs.get(f"result[{index}]"))) is not None
        ]
        summaries = [r for r in results if _components(r.resource, self._codesystem)]
        parts = _components(summaries[0].resource, self._codesystem) if summaries else {}
        category = _first_code(parts.get("her2-category", []))
        tissue = _first_code(parts.get("tissue", []))
        if category is None or tissue is None:
            if report.resource.get("status") == "entered-in-error":
                return None  # every result withdrawn: the emitter writes no classification
            raise ValueError("a case report without its summary's category and tissue")
        summary = summaries[0].resource
        rules = tuple(dict.fromkeys(c for p in parts.get("rule", []) if (c := _code(p))))
        flags = tuple(dict.fromkeys(c for p in parts.get("flag", []) if (c := _code(p))))
        group = next((p.get("valueInteger") for p in parts.get("ish-group", [])), None)
        reported = [r for r in results if "derivedFrom" not in r.resource]
        values, timed = self._read(reported)
        assembled = assemble(values, self._mapping, ())
        score = next((_RULE_SCORE[r] for r in rules if r in _RULE_SCORE), None)
        if score is None and _GASTRIC_0_OR_1 in rules and assembled.her2_ihc is not None:
            score = assembled.her2_ihc.score
        lab = assembled.lab_interpretation
        unused, warnings = self._notes(summary)
        moment = self._day(report.resource)
        return ReportFacts(
            tissue=tissue,
            category=category,
            official=self._official(summary),
            ihc=ihc_class_of(score, category),
            ish_reported=any(r.startswith(_ISH_RULES) for r in rules)
            or assembled.her2_ish is not None,
            ish_group=group if isinstance(group, int) else None,
            flags=flags,
            rules=rules,
            unused=unused,
            warnings=warnings,
            lab_stated=lab.stated.value if lab is not None and lab.stated is not None else None,
            reported_on=moment,
            ihc_to_ish_hours=turnaround(timed),
        )

    def _read(self, reported: list[_Held]) -> tuple[list[ReadValue], list[TimedResult]]:
        values: list[ReadValue] = []
        timed: list[TimedResult] = []
        for held in reported:
            key = _key_of(held.resource)
            locator = f"Observation/{key[1]}" if key else "Observation"
            read = read_observation(held.resource, locator, self._mapping, self._zone)
            values.extend(read.values)
            # Results of one issue time stand for one order (a Bundle names no order, and an
            # export no Bundle): the emitter writes each order's OBR-22 on every result of it.
            issued = held.first_issued
            arrival = Arrival(0, (issued.isoformat() if issued else "",), issued)
            timed.extend((v.analyte, v.observation.effective, arrival) for v in read.values)
        return values, timed

    def _official(self, summary: dict[str, Any]) -> str:
        concept = summary.get("valueCodeableConcept")
        codings = concept.get("coding", []) if isinstance(concept, dict) else []
        own = [c.get("code") for c in codings if c.get("system") == self._codesystem]
        return str(own[0]) if own and own[0] else "none"

    def _notes(
        self, summary: dict[str, Any]
    ) -> tuple[tuple[tuple[UnusedKind, str], ...], tuple[str, ...]]:
        unused: list[tuple[UnusedKind, str]] = []
        warnings: list[str] = []
        for note in summary.get("note", []):
            text = note.get("text") if isinstance(note, dict) else None
            if not isinstance(text, str):
                continue
            if found := _UNUSED_NOTE.fullmatch(text):
                code = found["code"]
                unused.append((unused_kind(found["reason"]), _label(code)))
            elif found := _WARNING_NOTE.match(text):
                warnings.append(found["code"])
        return tuple(unused), tuple(warnings)

    def _day(self, report: dict[str, Any]) -> date | None:
        """The issue day (else the effective day) as the lab wrote it, in its own offset."""
        for element in ("issued", "effectiveDateTime"):
            moment = self._moment(report.get(element))
            if moment is not None:
                return moment.date()
        return None

    def _moment(self, value: Any) -> datetime | None:
        if not isinstance(value, str):
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self._zone)


def _resources(items: Iterable[Any]) -> Iterator[tuple[dict[str, Any], dict[str, Key]]]:
    """(resource, its document's fullUrl -> key) for every resource of the documents."""
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("resourceType") != "Bundle":
            yield item, {}
            continue
        entries = [e for e in _list(item.get("entry")) if isinstance(e, dict)]
        full_urls: dict[str, Key] = {}
        for entry in entries:
            resource = entry.get("resource")
            key = _key_of(resource) if isinstance(resource, dict) else None
            url = entry.get("fullUrl")
            if key is not None and isinstance(url, str):
                full_urls[url] = key
        for entry in entries:
            resource = entry.get("resource")
            if isinstance(resource, dict):
                yield resource, full_urls


def _key_of(resource: Any) -> Key | None:
    kind, rid = resource.get("resourceType"), resource.get("id")
    return (kind, rid) if isinstance(kind, str) and isinstance(rid, str) and rid else None


def _exact(value: object) -> orjson.Fragment:
    """A Decimal as read (``documents`` keeps them exact), digit for digit."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _as_held(resource: dict[str, Any], full_urls: dict[str, Key]) -> dict[str, Any]:
    """The resource with every reference to a fullUrl of its Bundle as ``Type/id``, as a
    server rewrites them on commit (a copy; the resource itself is left as given)."""
    if not full_urls:
        return resource

    def rewritten(value: Any) -> Any:
        if isinstance(value, dict):
            found = {k: rewritten(v) for k, v in value.items()}
            reference = found.get("reference")
            if isinstance(reference, str) and reference in full_urls:
                found["reference"] = "/".join(full_urls[reference])
            return found
        if isinstance(value, list):
            return [rewritten(item) for item in value]
        return value

    result: dict[str, Any] = rewritten(resource)
    return result


def _references(resource: dict[str, Any], full_urls: dict[str, Key]) -> dict[str, Key]:
    """The references the audit follows (``result[i]``, ``performer[i]``, ``specimen[i]``,
    ``subject``), resolved: a fullUrl of the same Bundle, ``Type/id``, or an absolute URL
    ending in ``Type/id`` (any ``_history`` part dropped)."""
    found: dict[str, Key] = {}
    for element in ("result", "performer", "specimen", "subject"):
        items = resource.get(element)
        listed = items if isinstance(items, list) else [items] if items else []
        for index, item in enumerate(listed):
            reference = item.get("reference") if isinstance(item, dict) else None
            if isinstance(reference, str) and (key := _resolve(reference, full_urls)):
                name = element if element == "subject" else f"{element}[{index}]"
                found[name] = key
    return found


def _resolve(reference: str, full_urls: dict[str, Key]) -> Key | None:
    if reference in full_urls:
        return full_urls[reference]
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2], parts[-1]
    return None


def _is_own_report(resource: dict[str, Any], codesystem: str) -> bool:
    """The adapter's case report (tagged with the mappings version), or its HER2 summary."""
    if resource.get("resourceType") == "DiagnosticReport":
        tags = _list(_dict(resource.get("meta")).get("tag"))
        return any(isinstance(t, dict) and t.get("system") == MAPPINGS_VERSION_SYSTEM for t in tags)
    return resource.get("resourceType") == "Observation" and bool(_components(resource, codesystem))


def _components(resource: dict[str, Any], codesystem: str) -> dict[str, list[dict[str, Any]]]:
    """The summary's components by their code in the adapter's CodeSystem."""
    found: dict[str, list[dict[str, Any]]] = {}
    for component in _list(resource.get("component")):
        if not isinstance(component, dict):
            continue
        for coding in _list(_dict(component.get("code")).get("coding")):
            if not isinstance(coding, dict) or coding.get("system") != codesystem:
                continue
            if isinstance(coding.get("code"), str):
                found.setdefault(coding["code"], []).append(component)
    return found


def _list(value: Any) -> list[Any]:
    """A JSON array as given, else nothing (an element of another shape is not read)."""
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _code(component: dict[str, Any]) -> str | None:
    concept = component.get("valueCodeableConcept")
    for coding in concept.get("coding", []) if isinstance(concept, dict) else []:
        if isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def _first_code(components: list[dict[str, Any]]) -> str | None:
    return next((c for component in components if (c := _code(component))), None)


def _label(code: str | None) -> str:
    """``system code`` as the note writes it, as ``system|code`` (facts.code_label)."""
    if not code:
        return "(no code)"
    system, _, value = code.rpartition(" ")
    return f"{system}|{value}" if system else value
