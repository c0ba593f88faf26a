"""Integrity of the decision table itself."""

from __future__ import annotations

import pytest

from adapter.classify.table import (
    ASCO_CAP_2018,
    ASCO_CAP_2020_ER_PGR,
    ASCO_CAP_2023,
    CAP_2009_HETEROGENEITY,
    CAP_GEA_2016,
    DESTINY_BREAST,
    GROUP_WORKUP,
    INCOMPLETE_ISH_WORKUP,
    RULES,
    RULES_BY_ID,
    SINGLE_PROBE_WORKUP,
    Rule,
)

GUIDELINES = (
    ASCO_CAP_2018,
    ASCO_CAP_2023,
    ASCO_CAP_2020_ER_PGR,
    CAP_GEA_2016,
    DESTINY_BREAST,
    CAP_2009_HETEROGENEITY,
)


def test_rule_ids_are_unique() -> None:
    """No two rules share an id."""
    assert len(RULES_BY_ID) == len(RULES)


@pytest.mark.parametrize("rule", RULES, ids=[rule.id for rule in RULES])
def test_rule_cites_a_guideline_and_section(rule: Rule) -> None:
    """Each rule's citation names a guideline and its section in docs/rules.md."""
    assert any(guideline in rule.citation for guideline in GUIDELINES)
    assert f"docs/rules.md §{rule.section}" in rule.citation


def test_work_up_tables_name_only_known_rules() -> None:
    """Every rule id the work-up tables point to exists in RULES."""
    cells = [*GROUP_WORKUP.values(), *SINGLE_PROBE_WORKUP.values(), *INCOMPLETE_ISH_WORKUP.values()]
    assert {rule_id for _, rule_id, _ in cells} <= set(RULES_BY_ID)
