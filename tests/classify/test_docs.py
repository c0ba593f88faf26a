"""docs/rules.md is the rendering of the decision table."""

from __future__ import annotations

from pathlib import Path

from adapter.classify.docs import REGENERATE, render_rules_markdown
from adapter.classify.table import RULES

RULES_MD = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def test_rules_md_is_up_to_date() -> None:
    """docs/rules.md equals the text rendered from table.py."""
    assert RULES_MD.read_text(encoding="utf-8") == render_rules_markdown(), (
        f"docs/rules.md is out of date; regenerate it with `{REGENERATE}`"
    )


def test_every_rule_is_documented() -> None:
    """Every rule id appears in the rendered rules table."""
    rendered = render_rules_markdown()
    missing = [rule.id for rule in RULES if f"| `{rule.id}` |" not in rendered]
    assert missing == []
