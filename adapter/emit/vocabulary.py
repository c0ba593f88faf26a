"""The adapter's own vocabulary as FHIR resources: one CodeSystem and a ValueSet per kind of code.

Generated, never written by hand: categories, official results, receptor calls, HR statuses and
tissues from their enums in ``adapter.model``, flags from ``FlagCode``, rule ids (with condition,
result and citation) from the decision table ``adapter.classify.table.RULES``, and the summary's
component codes from ``adapter.emit.codes``. A code added to any of them is in the next CodeSystem.

The CodeSystem's canonical URL is ``Settings.codesystem_url`` (default
``urn:her2-adapter:codesystem``, a URN since the project owns no web domain); the ValueSet of a
kind is ``<codesystem_url>/vs/<kind>``.
The service serves them at ``/fhir/CodeSystem/her2-adapter`` and ``/fhir/ValueSet/<id>``;
``docs/vocabulary.md`` is their rendering (``python -m adapter.emit.vocabulary``).

A code may belong to several kinds (``positive`` is an official HER2 result and an ER/PgR call):
it is one concept with one ``kind`` property per kind, and in each kind's ValueSet.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from adapter import __version__
from adapter.classify.table import RULES
from adapter.emit.codes import SUMMARY_COMPONENTS
from adapter.emit.datatypes import JsonDict
from adapter.emit.wording import CATEGORY_EXPLANATIONS, OFFICIAL_RESULT_WORDS, RECEPTOR_WORDS
from adapter.model import Category, FlagCode, HrStatus, OfficialResult, ReceptorCall, Tissue

CODESYSTEM_ID: Final = "her2-adapter"
KIND_PROPERTY: Final = "kind"


class Kind(StrEnum):
    """The kinds of code, one ValueSet each."""

    CATEGORY = "category"
    OFFICIAL_RESULT = "official-result"
    RECEPTOR_CALL = "receptor-call"
    HR_STATUS = "hr-status"
    TISSUE = "tissue"
    FLAG = "flag"
    RULE = "rule"
    COMPONENT = "component"


KIND_TITLES: Final[dict[Kind, str]] = {
    Kind.CATEGORY: "HER2 categories (therapy-relevant labels, not all official ASCO/CAP results)",
    Kind.OFFICIAL_RESULT: "Official ASCO/CAP HER2 results",
    Kind.RECEPTOR_CALL: "ER / PgR calls (ASCO/CAP 2020)",
    Kind.HR_STATUS: "Hormone receptor statuses",
    Kind.TISSUE: "Tissues the HER2 rules are applied for",
    Kind.FLAG: "Flags for review",
    Kind.RULE: "Classification rules (decision table rule ids)",
    Kind.COMPONENT: "Components of the HER2 summary Observation",
}


@dataclass
class Concept:
    code: str
    display: str
    definition: str | None = None
    kinds: list[Kind] = field(default_factory=list)


def concepts() -> list[Concept]:
    """Every code, in a fixed order: kinds as ``Kind`` lists them, codes as their sources do."""
    found: dict[str, Concept] = {}

    def add(kind: Kind, items: Iterable[tuple[str, str, str | None]]) -> None:
        for code, display, definition in items:
            concept = found.setdefault(code, Concept(code, display, definition))
            if definition and not concept.definition:
                concept.definition = definition
            concept.kinds.append(kind)

    add(
        Kind.CATEGORY,
        ((c.value, c.value, CATEGORY_EXPLANATIONS.get(c) or None) for c in Category),
    )
    add(
        Kind.OFFICIAL_RESULT,
        ((r.value, OFFICIAL_RESULT_WORDS[r], None) for r in OfficialResult),
    )
    add(
        Kind.RECEPTOR_CALL,
        ((c.value, RECEPTOR_WORDS[c].capitalize(), None) for c in ReceptorCall),
    )
    add(Kind.HR_STATUS, ((s.value, s.value, None) for s in HrStatus))
    add(Kind.TISSUE, ((t.value, t.value.capitalize(), None) for t in Tissue))
    add(Kind.FLAG, ((f.value, _words(f.value), None) for f in FlagCode))
    add(
        Kind.RULE,
        (
            (rule.id, rule.id, f"{rule.condition}: {rule.result} [{rule.citation}]")
            for rule in RULES
        ),
    )
    add(Kind.COMPONENT, ((code, display, None) for code, display in SUMMARY_COMPONENTS.items()))
    return list(found.values())


def value_set_url(codesystem_url: str, kind: Kind) -> str:
    return f"{codesystem_url}/vs/{kind.value}"


def value_set_id(kind: Kind) -> str:
    return f"{CODESYSTEM_ID}-{kind.value}"


def code_system(codesystem_url: str) -> JsonDict:
    listed = concepts()
    return {
        "resourceType": "CodeSystem",
        "id": CODESYSTEM_ID,
        "url": codesystem_url,
        "version": __version__,
        "name": "Her2AdapterConcepts",
        "title": "her2-adapter concepts: HER2 categories, flags, rule ids and summary components",
        "status": "active",
        "experimental": False,
        "publisher": "her2-adapter",
        "description": (
            "Codes the her2-adapter writes in its DiagnosticReports and HER2 summary "
            "Observations, generated from its decision table. Each concept's 'kind' property "
            "says which ValueSet(s) it belongs to."
        ),
        "caseSensitive": True,
        "content": "complete",
        "count": len(listed),
        "property": [
            {
                "code": KIND_PROPERTY,
                "description": "The kind of code: " + ", ".join(k.value for k in Kind),
                "type": "code",
            }
        ],
        "concept": [_concept(c) for c in listed],
    }


def value_sets(codesystem_url: str) -> list[JsonDict]:
    listed = concepts()
    return [_value_set(codesystem_url, kind, listed) for kind in Kind]


def _concept(concept: Concept) -> JsonDict:
    out: JsonDict = {"code": concept.code, "display": concept.display}
    if concept.definition:
        out["definition"] = concept.definition
    out["property"] = [{"code": KIND_PROPERTY, "valueCode": k.value} for k in concept.kinds]
    return out


def _value_set(codesystem_url: str, kind: Kind, listed: list[Concept]) -> JsonDict:
    members = [c for c in listed if kind in c.kinds]
    return {
        "resourceType": "ValueSet",
        "id": value_set_id(kind),
        "url": value_set_url(codesystem_url, kind),
        "version": __version__,
        "name": "Her2Adapter" + "".join(p.capitalize() for p in kind.value.split("-")),
        "title": KIND_TITLES[kind],
        "status": "active",
        "experimental": False,
        "publisher": "her2-adapter",
        "compose": {
            "include": [
                {
                    "system": codesystem_url,
                    "version": __version__,
                    "concept": [{"code": c.code, "display": c.display} for c in members],
                }
            ]
        },
    }


def _words(code: str) -> str:
    return code.replace("-", " ").capitalize()


# --------------------------------------------------------------------------------------------
# docs/vocabulary.md
# --------------------------------------------------------------------------------------------

REGENERATE: Final = "python -m adapter.emit.vocabulary > docs/vocabulary.md"


def render_markdown(codesystem_url: str) -> str:
    listed = concepts()
    parts = [
        "# The adapter's vocabulary\n",
        f"<!-- generated from the decision table: `{REGENERATE}` -->\n",
        "Every code the adapter writes in its own CodeSystem, generated from the decision table "
        "(`adapter/classify/table.py`) and the enums it decides over. A running service serves "
        "the resources: `GET /fhir/CodeSystem/her2-adapter` and `GET /fhir/ValueSet/<id>`.\n",
        "| resource | canonical URL | id |",
        "|---|---|---|",
        f"| CodeSystem | `{codesystem_url}` | `{CODESYSTEM_ID}` |",
        *(
            f"| ValueSet: {KIND_TITLES[k]} | `{value_set_url(codesystem_url, k)}` | "
            f"`{value_set_id(k)}` |"
            for k in Kind
        ),
        "",
        f"The canonical URL is `Settings.codesystem_url` (`HER2_CODESYSTEM_URL`); the default, "
        f"`{codesystem_url}`, is a URN because the project owns no web domain. A deployment "
        "that has one may set its own before the first Bundle is stored; every ValueSet URL "
        "follows it.\n",
    ]
    for kind in Kind:
        rows = [c for c in listed if kind in c.kinds]
        parts.append(f"## {KIND_TITLES[kind]}\n")
        parts.append("| code | display | definition |")
        parts.append("|---|---|---|")
        parts.extend(
            f"| `{c.code}` | {_cell(c.display)} | {_cell(c.definition or '')} |" for c in rows
        )
        parts.append("")
    return "\n".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    from adapter.config import DEFAULT_CODESYSTEM

    sys.stdout.write(render_markdown(DEFAULT_CODESYSTEM))
