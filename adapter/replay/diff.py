"""Semantic comparison of two FHIR documents (Bundles or single resources), for people to read.

Equality is canonical: key order and whitespace never count, and an ignore list drops volatile
paths first. A difference is named by resource and a readable path rather than by byte offset::

    DiagnosticReport.conclusionCode: HER2-negative -> HER2-low
    Observation[48676-1].component[rule]: B-IHC-0 -> B-IHC-1
    Observation[85319-2]: added

Bundle entries are matched by resource type and id (ids derive from message identity, so the
same message gives the same ids). Lists of codes, codings and references are compared as sets of
their labels (their order carries no meaning in the adapter's output); the summary Observation's
components are matched by component code. Other lists are compared item by item.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import orjson

JsonDict = dict[str, Any]

DEFAULT_IGNORE: Final = (
    "meta.lastUpdated",
    "meta.versionId",
    "Bundle.timestamp",
    "DiagnosticReport.meta.tag",
)
"""Paths that change on every write of the same content (server-assigned), and the mappings
version tag, which any mapping change changes on every report (replay shows what it changes)."""

SUMMARY_CODE: Final = "48676-1"
RULE_COMPONENT: Final = "rule"
_ABSENT: Final = "(absent)"
_LONGEST_LABEL: Final = 120


@dataclass(frozen=True)
class Change:
    """One difference: ``path`` names the resource and element; values are rendered labels."""

    path: str
    before: str
    after: str

    def __str__(self) -> str:
        if self.before == _ABSENT and self.after == "added":
            return f"{self.path}: added"
        if self.before == "present" and self.after == "removed":
            return f"{self.path}: removed"
        return f"{self.path}: {self.before} -> {self.after}"


@dataclass(frozen=True)
class RuleChange:
    """The rule ids behind a changed DiagnosticReport, from its HER2 summary Observation."""

    report: str
    before: tuple[str, ...]
    after: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.report} rules: {_joined(self.before)} -> {_joined(self.after)}"


@dataclass(frozen=True)
class JsonDiff:
    changes: tuple[Change, ...] = ()
    rules: tuple[RuleChange, ...] = field(default=())

    @property
    def same(self) -> bool:
        return not self.changes

    def lines(self) -> list[str]:
        return [*map(str, self.changes), *map(str, self.rules)]


# --------------------------------------------------------------------------------------------
# Canonical form
# --------------------------------------------------------------------------------------------


class ExactNumber(Decimal):
    """A JSON number compared digit for digit: a change from ``2.30`` to ``2.3`` is reported."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decimal) and str(self) == str(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(str(self))


def load_json(data: bytes | str) -> Any:
    """JSON with numbers kept exactly as written (never through float)."""
    return json.loads(data, parse_float=ExactNumber)


def dump_json(document: Any, *, pretty: bool = False) -> bytes:
    """JSON bytes; numbers loaded by :func:`load_json` are written digit for digit."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(document, default=_number_fragment, option=option)


def _number_fragment(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot serialise {type(value).__name__}")


def canonical(document: Any, ignore: Sequence[str] = DEFAULT_IGNORE) -> Any:
    """A copy without the ignored paths; ``Type.a.b`` applies to that type, ``a.b`` to all."""
    copied = copy.deepcopy(document)
    patterns = [pattern.split(".") for pattern in ignore if pattern]
    for resource in _resources(copied):
        for parts in patterns:
            if parts[0][:1].isupper():
                if len(parts) > 1 and resource.get("resourceType") == parts[0]:
                    _drop(resource, parts[1:])
            else:
                _drop(resource, parts)
    return copied


def _resources(document: Any) -> Iterator[JsonDict]:
    if not isinstance(document, dict):
        return
    yield document
    for entry in document.get("entry", ()) if document.get("resourceType") == "Bundle" else ():
        if isinstance(entry, dict):
            yield from _resources(entry.get("resource"))
    for contained in document.get("contained", ()):
        yield from _resources(contained)


def _drop(node: Any, parts: Sequence[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _drop(item, parts)
        return
    if not isinstance(node, dict) or parts[0] not in node:
        return
    if len(parts) == 1:
        del node[parts[0]]
    else:
        _drop(node[parts[0]], parts[1:])


# --------------------------------------------------------------------------------------------
# Differences
# --------------------------------------------------------------------------------------------


def diff_json(before: Any, after: Any, ignore: Sequence[str] = DEFAULT_IGNORE) -> JsonDiff:
    """Every difference between two FHIR documents, after dropping the ignored paths."""
    a, b = canonical(before, ignore), canonical(after, ignore)
    if a == b:
        return JsonDiff()
    changes: list[Change] = []
    if _is_bundle(a) and _is_bundle(b):
        labels = _labels([a, b])
        _diff_value("Bundle", _without_entries(a), _without_entries(b), changes)
        old, new = _entries(a), _entries(b)
        for key in _union(old, new):
            label = labels[key]
            if key not in old:
                changes.append(Change(label, _ABSENT, "added"))
            elif key not in new:
                changes.append(Change(label, "present", "removed"))
            else:
                _diff_value(label, old[key], new[key], changes)
        rules = _rule_changes(a, b, labels, changes)
    else:
        label = _label(b) if isinstance(b, dict) else "$"
        _diff_value(label, a, b, changes)
        rules = ()
    return JsonDiff(tuple(changes), rules)


def _is_bundle(document: Any) -> bool:
    return isinstance(document, dict) and document.get("resourceType") == "Bundle"


def _without_entries(bundle: JsonDict) -> JsonDict:
    return {k: v for k, v in bundle.items() if k != "entry"}


def _entries(bundle: JsonDict) -> dict[tuple[str, str], JsonDict]:
    found: dict[tuple[str, str], JsonDict] = {}
    for position, entry in enumerate(bundle.get("entry", ())):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        rid = str(resource.get("id") or f"#{position + 1}")
        found[(str(resource.get("resourceType", "?")), rid)] = resource
    return found


def _union(old: dict[Any, Any], new: dict[Any, Any]) -> list[Any]:
    return [*old, *(key for key in new if key not in old)]


def _label(resource: JsonDict) -> str:
    kind = str(resource.get("resourceType", "?"))
    if kind == "Observation":
        return f"Observation[{_concept_code(resource.get('code'))}]"
    return kind


def _labels(bundles: Iterable[JsonDict]) -> dict[tuple[str, str], str]:
    """Readable names; an id prefix is added where two resources would share a name."""
    resources: dict[tuple[str, str], JsonDict] = {}
    for bundle in bundles:
        resources.update(_entries(bundle))
    names = {key: _label(resource) for key, resource in resources.items()}
    counts = Counter(names.values())
    return {
        key: name if counts[name] == 1 else f"{name}/{key[1][:8]}" for key, name in names.items()
    }


def _diff_value(path: str, a: Any, b: Any, out: list[Change]) -> None:
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        if _is_leafy(a) and _is_leafy(b) and _render(a) != _render(b):
            out.append(Change(path, _render(a), _render(b)))
            return
        for key in _union(a, b):
            if key not in a:
                out.append(Change(f"{path}.{key}", _ABSENT, _render(b[key])))
            elif key not in b:
                out.append(Change(f"{path}.{key}", _render(a[key]), _ABSENT))
            else:
                _diff_value(f"{path}.{key}", a[key], b[key], out)
        return
    if isinstance(a, list) and isinstance(b, list):
        _diff_list(path, a, b, out)
        return
    out.append(Change(path, _render(a), _render(b)))


def _diff_list(path: str, a: list[Any], b: list[Any], out: list[Change]) -> None:
    if path.endswith(".component") and all(map(_is_component, [*a, *b])):
        _diff_components(path, a, b, out)
        return
    if all(map(_is_leafy, [*a, *b])):
        if Counter(map(_exact_text, a)) == Counter(map(_exact_text, b)):
            return  # the same items in another order: order carries no meaning here
        only_a, only_b = _multiset_difference(a, b)
        if only_a or only_b:
            out.append(Change(path, _joined(only_a), _joined(only_b)))
            return
        # same labels: the difference is in detail (or order) that the labels do not show
    if len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff_value(f"{path}[{index}]", x, y, out)
        return
    out.append(Change(path, _joined(map(_render, a)), _joined(map(_render, b))))


def _diff_components(path: str, a: list[JsonDict], b: list[JsonDict], out: list[Change]) -> None:
    old, new = _by_component_code(a), _by_component_code(b)
    for code in _union(old, new):
        xs, ys = old.get(code, []), new.get(code, [])
        only_a, only_b = _multiset_difference(xs, ys, _component_value)
        where = f"{path}[{code}]"
        if only_a or only_b:
            out.append(Change(where, _joined(only_a), _joined(only_b)))
        elif len(xs) == len(ys):
            for index, (x, y) in enumerate(zip(xs, ys, strict=True)):
                _diff_value(where if len(xs) == 1 else f"{where}[{index}]", x, y, out)


def _multiset_difference(
    a: list[Any], b: list[Any], render: Any = None
) -> tuple[list[str], list[str]]:
    show = render or _render
    left, right = Counter(map(show, a)), Counter(map(show, b))
    return sorted((left - right).elements()), sorted((right - left).elements())


# --------------------------------------------------------------------------------------------
# Rendering values as short labels
# --------------------------------------------------------------------------------------------

_CONCEPT_KEYS: Final = frozenset({"coding", "text"})
_CODING_KEYS: Final = frozenset({"system", "code", "display", "version", "userSelected"})
_REFERENCE_KEYS: Final = frozenset({"reference", "display", "type"})
_QUANTITY_KEYS: Final = frozenset({"value", "unit", "system", "code", "comparator"})


def _is_leafy(value: Any) -> bool:
    """Values shown whole by one label: scalars, concepts, codings, references, quantities."""
    if not isinstance(value, dict):
        return not isinstance(value, list)
    keys = value.keys()
    return bool(keys) and any(
        keys <= kind and required in keys
        for kind, required in (
            (_CONCEPT_KEYS, "coding"),
            (_CONCEPT_KEYS, "text"),
            (_CODING_KEYS, "code"),
            (_REFERENCE_KEYS, "reference"),
            (_QUANTITY_KEYS, "value"),
        )
    )


def _render(value: Any) -> str:
    if value is None:
        return _ABSENT
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "reference" in value:
            return str(value["reference"])
        if "text" in value and value.keys() <= _CONCEPT_KEYS:
            return str(value["text"])
        if "coding" in value and value.keys() <= _CONCEPT_KEYS:
            return _joined(_render(c) for c in value["coding"] if isinstance(c, dict))
        if "code" in value and value.keys() <= _CODING_KEYS:
            return str(value["code"])
        if "value" in value and value.keys() <= _QUANTITY_KEYS:
            return " ".join(str(value[k]) for k in ("comparator", "value", "unit") if k in value)
    if isinstance(value, bool | int | Decimal):
        return dump_json(value).decode()
    text = orjson.dumps(value, default=_number_fragment, option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= _LONGEST_LABEL else text[: _LONGEST_LABEL - 3] + "..."


def _exact_text(value: Any) -> bytes:
    return orjson.dumps(value, default=_number_fragment, option=orjson.OPT_SORT_KEYS)


def _joined(labels: Iterable[str]) -> str:
    return ", ".join(labels) or "(none)"


def _concept_code(concept: Any) -> str:
    if isinstance(concept, dict):
        for coding in concept.get("coding", ()):
            if isinstance(coding, dict) and coding.get("code"):
                return str(coding["code"])
        if concept.get("text"):
            return str(concept["text"])
    return "?"


def _is_component(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("code"), dict)


def _by_component_code(components: list[JsonDict]) -> dict[str, list[JsonDict]]:
    grouped: dict[str, list[JsonDict]] = {}
    for component in components:
        grouped.setdefault(_concept_code(component["code"]), []).append(component)
    return grouped


def _component_value(component: JsonDict) -> str:
    # Components are shown by their value's code (rule id, flag code, category), not its text:
    # the text of a rule or flag is a long reason, and the code is what a reviewer looks up.
    for key, value in component.items():
        if not key.startswith("value"):
            continue
        if key == "valueCodeableConcept" and isinstance(value, dict) and value.get("coding"):
            codes = [str(c.get("code")) for c in value["coding"] if isinstance(c, dict)]
            return codes[-1] if codes else _render(value)
        return _render(value)
    return _ABSENT


# --------------------------------------------------------------------------------------------
# Rule ids behind a changed DiagnosticReport
# --------------------------------------------------------------------------------------------


def _rule_changes(
    a: JsonDict, b: JsonDict, labels: dict[tuple[str, str], str], changes: list[Change]
) -> tuple[RuleChange, ...]:
    changed_paths = [change.path for change in changes]
    old, new = _entries(a), _entries(b)
    found: list[RuleChange] = []
    for key in _union(old, new):
        if key[0] != "DiagnosticReport":
            continue
        label = labels[key]
        if not any(p == label or p.startswith((f"{label}.", f"{label}[")) for p in changed_paths):
            continue
        before, after = _report_rules(old, key), _report_rules(new, key)
        if before or after:
            found.append(RuleChange(label, before, after))
    return tuple(found)


def _report_rules(
    resources: dict[tuple[str, str], JsonDict], key: tuple[str, str]
) -> tuple[str, ...]:
    report = resources.get(key)
    if report is None:
        return ()
    rules: list[str] = []
    for reference in report.get("result", ()):
        target = str(reference.get("reference", "")) if isinstance(reference, dict) else ""
        summary = resources.get(("Observation", target.removeprefix("urn:uuid:").split("/")[-1]))
        if summary is None or _concept_code(summary.get("code")) != SUMMARY_CODE:
            continue
        rules.extend(
            _component_value(component)
            for component in summary.get("component", ())
            if _is_component(component) and _concept_code(component["code"]) == RULE_COMPONENT
        )
    return tuple(rules)
