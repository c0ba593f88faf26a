"""``her2-adapter mappings suggest``: what a lab's messages hold that the mappings cannot place.

Each message runs through the same ``pipeline.process`` as ``convert``; every result that was
read but not used (a code no table maps, a value no wording reads, a code whose display names
another test) becomes one item, counted over all messages, with a TOML snippet ready to edit
into a sender file. The snippets quote codes, displays and values as the lab sent them: this is
a tool an analyst runs on a lab's sample files, and its output goes to their terminal only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from adapter.errors import NothingToClassify
from adapter.mapping import MappingSet
from adapter.model import Analyte, Coding, UnusedResult
from adapter.pipeline import Outcome

ANALYTES = ", ".join(analyte.value for analyte in Analyte)
_CODED_TYPES = frozenset({"CWE", "CE", "CNE", "CF", "valueCodeableConcept"})


@dataclass
class Item:
    """One thing to add to a mapping file, with where it was seen."""

    kind: str  # "code", "value" or "display"
    title: str
    snippet: str
    seen: list[str] = field(default_factory=list)


@dataclass
class Suggestions:
    items: dict[tuple[str, ...], Item] = field(default_factory=dict)

    def add(self, outcome: Outcome, where: str, mapping: MappingSet) -> None:
        for unused in _unused(outcome):
            found = _item(unused, mapping)
            if found is None:
                continue
            key, item = found
            known = self.items.setdefault(key, item)
            known.seen.append(f"{where} {unused.provenance.locator}")

    def render(self) -> str:
        if not self.items:
            return "# nothing to add: every result code and value was placed\n"
        parts = [
            "# Paste what fits into mappings/senders/<lab>.toml (with its [sender] table), then\n"
            "# run `her2-adapter mappings check` and `her2-adapter convert` on the files again.\n"
            f"# Analytes: {ANALYTES}.\n"
        ]
        for item in self.items.values():
            places = ", ".join(item.seen[:3]) + (" ..." if len(item.seen) > 3 else "")
            parts.append(
                f"# {item.kind}: {item.title}\n# seen {len(item.seen)}x: {places}\n{item.snippet}"
            )
        return "\n".join(parts)


def _unused(outcome: Outcome) -> Iterable[UnusedResult]:
    for record in outcome.records:
        yield from record.unused
    if isinstance(outcome.error, NothingToClassify):
        yield from getattr(outcome.error, "unused", ())


def _item(unused: UnusedResult, mapping: MappingSet) -> tuple[tuple[str, ...], Item] | None:
    provenance = unused.provenance
    code = provenance.code or Coding()
    if unused.reason.startswith("not classified:"):
        return None  # excluded on purpose (serum HER2)
    if unused.analyte is None:
        return _code_item(code, mapping)
    if "display names" in unused.reason:
        return _display_item(code, unused.analyte)
    if unused.not_understood:
        return _value_item(unused, mapping)
    return None


def _q(text: str | None) -> str:
    """A TOML basic string."""
    escaped = (text or "").replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _code_item(code: Coding, mapping: MappingSet) -> tuple[tuple[str, ...], Item]:
    title = f"result code {code.code} ({code.system}) {code.display or ''}".rstrip()
    key = ("code", code.system or "", code.code or "")
    markers, _ = mapping.named_in_display(code.display or "")
    ours = {marker for check in mapping.display_checks.values() for marker in check.markers}
    if markers and not markers & ours:
        named = ", ".join(sorted(markers))
        note = f"# its display names {named}: not a HER2, ER or PgR result, nothing to add\n"
        return key, Item("other test", title, note)
    guess, found = mapping.infer_from_display(code.display)
    analyte = (
        f"analyte = {_q(guess.value)}  # from the display ({found}): check it"
        if guess is not None
        else 'analyte = "?"  # one of the analytes above, if it is a HER2, ER or PgR result'
    )
    snippet = "\n".join(
        [
            "[[codes]]",
            f"system = {_q(code.system)}",
            f"code = {_q(code.code)}",
            analyte,
            f"display = {_q(code.display)}",
            '# tissue = "breast"  # when the code itself says so',
            "",
        ]
    )
    return key, Item("code", title, snippet)


def _display_item(code: Coding, analyte: Analyte) -> tuple[tuple[str, ...], Item]:
    snippet = (
        f"# {code.code} is mapped to {analyte}, but the lab's display {_q(code.display)} names\n"
        "# another test: ask the lab to send the right code. Until then its results under this\n"
        "# code are not used (flag code-display-mismatch).\n"
    )
    title = f"code {code.code} sent with the display {_q(code.display)}"
    return ("display", code.code or "", code.display or ""), Item("display", title, snippet)


def _value_item(unused: UnusedResult, mapping: MappingSet) -> tuple[tuple[str, ...], Item]:
    provenance = unused.provenance
    sent = provenance.value_text or ""
    analyte = unused.analyte.value if unused.analyte else "?"
    meaning = _meaning_hint(unused.analyte)
    parts = sent.split("^") if provenance.value_type in _CODED_TYPES else []
    system = mapping.system_uri(parts[2]) if len(parts) > 2 and parts[2] else None
    if system is not None and not mapping.is_local(system):
        lines = ["[[answers]]", f"system = {_q(system)}", f"code = {_q(parts[0])}"]
        label = f"{parts[0]} {parts[1] if len(parts) > 1 else ''}".strip()
    elif parts:
        # a local answer code (HL7 "L") is read through its text
        label = parts[1] if len(parts) > 1 and parts[1] else parts[0]
        lines = ["[[answers]]", f"text = {_q(label)}"]
    else:
        lines = ["[[answers]]", f"text = {_q(sent)}"]
        label = sent
    snippet = "\n".join([*lines, meaning, ""])
    title = f"{analyte} value {_q(label)}"
    return ("value", analyte, sent), Item("value", title, snippet)


def _meaning_hint(analyte: Analyte | None) -> str:
    if analyte in (Analyte.ER_RESULT, Analyte.PGR_RESULT):
        return '# stated = "positive"  # or "negative", "low-positive"'
    if analyte in (Analyte.HER2_IHC, Analyte.HER2_IHC0_SUBTYPE):
        return '# score = "1+"  # and/or ihc0_subtype = "ultralow", stated = "negative"'
    if analyte in (Analyte.HER2_ISH, Analyte.HER2_INTERPRETATION):
        return '# stated = "negative"  # or "positive", "equivocal", "indeterminate"'
    return "# a number is expected here: check the value type the lab sends (OBX-2)"


__all__ = ["Suggestions"]
