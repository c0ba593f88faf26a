"""Every relative link in the user docs resolves: the file exists and, for a Markdown file, the
heading its ``#fragment`` names does too (GitHub's anchor rule). A renamed heading or file
otherwise leaves users at a dead link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md", ROOT / "CHANGELOG.md"]
_FENCED = re.compile(r"```.*?```", re.S)
_HEADING = re.compile(r"^#{1,6} (.+)$", re.M)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _text(path: Path) -> str:
    return _FENCED.sub("", path.read_text(encoding="utf-8"))


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in _HEADING.findall(_text(path)):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_the_anchor_rule_is_githubs() -> None:
    assert _anchors(ROOT / "docs" / "mapping-files.md") >= {
        "5-the-value-grammar",
        "7-her2-adapter-mappings-check",
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(_text(doc)):
        if re.match(r"[a-z]+:", target):  # https:, mailto: - not ours to check offline
            continue
        path, _, fragment = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved):
            broken.append(f"{target}: no such heading")
    assert broken == []
