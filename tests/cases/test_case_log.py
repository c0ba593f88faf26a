"""``convert``'s case log keeps its older cases on disk: the same priors as if all were in memory.

The log holds its recent messages in memory and writes them to a temporary SQLite file every
``CaseLog._RECENT`` messages (adapter/cases/log.py). Here that is made every message, or every
other, so that each sequence's follow-ups meet cases on disk, half on disk, or in memory, and
every Bundle must be byte for byte the one of the log's memory part alone.
"""

from __future__ import annotations

import pytest
from cases.test_jobs import every_fixture_message
from cases.test_sequences import NAMES, messages

from adapter.cases import PriorMessage
from adapter.cases.log import CaseLog
from adapter.cases.route import route_numbers
from adapter.config import Settings
from adapter.pipeline import Context, RawMessage, process


@pytest.fixture(scope="module")
def context() -> Context:
    return Context.from_settings(Settings())


def bundles(sequence: list[RawMessage], context: Context) -> list[bytes | None]:
    log = CaseLog()
    out = []
    for message in sequence:
        outcome = process(message, context, log.prior)
        if outcome.application is not None:
            log.add(PriorMessage(message.data, message.format), outcome.application)
        out.append(outcome.bundle_json)
    log.close()
    return out


@pytest.mark.parametrize("recent", [1, 2, 3])
def test_cases_on_disk_give_the_same_bundles(
    recent: int, context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    sequences = [messages(name) for name in NAMES]
    sequences.append(every_fixture_message())  # one run: numbers and owners shared across files
    in_memory = [bundles(sequence, context) for sequence in sequences]
    monkeypatch.setattr(CaseLog, "_RECENT", recent)
    assert [bundles(sequence, context) for sequence in sequences] == in_memory


def test_the_memory_part_stays_bounded(context: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CaseLog, "_RECENT", 4)
    log = CaseLog()
    for message in every_fixture_message():
        outcome = process(message, context, log.prior)
        if outcome.application is not None:
            log.add(PriorMessage(message.data, message.format), outcome.application)
        assert len(log._messages) < 4
    assert len(log.prior(frozenset()).owners) > 4  # every owner is still known, from disk


def test_cases_taken_from_disk_are_handed_over(
    context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``take`` of cases written to disk, then ``merge``: the next message meets its case."""
    monkeypatch.setattr(CaseLog, "_RECENT", 1)
    first, second = messages("ihc2-then-ish-g5")
    alone, giver, taker = CaseLog(), CaseLog(), CaseLog()
    outcome = process(first, context, alone.prior)
    assert outcome.application is not None
    for log in (alone, giver):
        log.add(PriorMessage(first.data, first.format), outcome.application, 7)
    taker.merge(giver.take(route_numbers(first.data, first.format, context)))
    expected = process(second, context, alone.prior)
    assert process(second, context, taker.prior).bundle_json == expected.bundle_json
    assert process(second, context, giver.prior).bundle_json != expected.bundle_json
