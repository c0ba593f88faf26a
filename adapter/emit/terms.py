"""The adapter's own concepts as a Bundle writes them, built once per CodeSystem URL.

A category, an HR status, a receptor call, an official result and the summary's component codes
are words of the adapter, never of the input: the same for every message, so each is made once
(per ``Settings.codesystem_url``) and the same dict is placed in every Bundle that names it, as
``LAB_OBSERVATION_CATEGORY`` always was. The Bundle is therefore read-only for whoever holds
it: a caller that edits one works on a copy (``copy.deepcopy``, or ``loads_exact(dumps(...))``).
Nothing the input says is shared this way, and no ``meta`` either (servers add to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from adapter.emit.codes import (
    DATA_ABSENT_REASON,
    HER2_ABSENT_REASON,
    HER2_INTERPRETATION,
    RECEPTOR_STATUS_CODES,
    SNOMED,
    SNOMED_QUALIFIERS,
    SUMMARY_COMPONENTS,
)
from adapter.emit.datatypes import JsonDict
from adapter.emit.wording import ABSENT_HER2_WORDS, OFFICIAL_RESULT_WORDS, RECEPTOR_WORDS
from adapter.model import Category, HrStatus, OfficialResult, ReceptorCall, Tissue


def _loinc_concept(code: tuple[str, str, str]) -> JsonDict:
    system, value, display = code
    return {"coding": [{"system": system, "code": value, "display": display}], "text": display}


HER2_CONCEPT: Final = _loinc_concept(HER2_INTERPRETATION)
"""The summary Observation's code, and the DiagnosticReport's when the order has no code."""
RECEPTOR_STATUS_CONCEPTS: Final = {
    receptor: _loinc_concept(code) for receptor, code in RECEPTOR_STATUS_CODES.items()
}


@dataclass(frozen=True, slots=True)
class Terms:
    """Every concept of the adapter's CodeSystem a Bundle names, for one CodeSystem URL."""

    codesystem: str
    component_codes: dict[str, JsonDict]  # Observation.component.code, by component code
    categories: dict[Category, JsonDict]  # coded and worded as the category itself
    hr_statuses: dict[HrStatus, JsonDict]
    tissues: dict[Tissue, JsonDict]  # coded only
    receptor_calls: dict[ReceptorCall, JsonDict]  # SNOMED CT where one exists, then ours
    official_results: dict[OfficialResult, JsonDict]  # SNOMED CT, then ours, with the words
    absent_her2: dict[Category, JsonDict]  # summary dataAbsentReason without an official result


@lru_cache(maxsize=8)
def terms(codesystem: str) -> Terms:
    """The concepts for ``codesystem``; a deployment has one URL, tests a few."""

    def own(code: str, text: str | None = None) -> JsonDict:
        concept: JsonDict = {"coding": [{"system": codesystem, "code": code}]}
        if text:
            concept["text"] = text
        return concept

    def snomed_first(value: str, words: str, display: str | None = None) -> JsonDict:
        ours: JsonDict = {"system": codesystem, "code": value}
        if display:
            ours["display"] = display
        found = SNOMED_QUALIFIERS.get(value)
        codings = (
            [ours]
            if found is None
            else [{"system": SNOMED, "code": found[0], "display": found[1]}, ours]
        )
        return {"coding": codings, "text": words}

    absent: dict[Category, JsonDict] = {}
    for category, words in ABSENT_HER2_WORDS.items():
        code, display = HER2_ABSENT_REASON[category.value]
        absent[category] = {
            "coding": [{"system": DATA_ABSENT_REASON, "code": code, "display": display}],
            "text": words,
        }
    return Terms(
        codesystem=codesystem,
        component_codes={
            code: {"coding": [{"system": codesystem, "code": code, "display": display}]}
            for code, display in SUMMARY_COMPONENTS.items()
        },
        categories={category: own(category.value, category.value) for category in Category},
        hr_statuses={status: own(status.value, status.value) for status in HrStatus},
        tissues={tissue: own(tissue.value) for tissue in Tissue},
        receptor_calls={
            call: snomed_first(call.value, RECEPTOR_WORDS[call]) for call in ReceptorCall
        },
        official_results={
            result: snomed_first(result.value, words, words)
            for result, words in OFFICIAL_RESULT_WORDS.items()
        },
        absent_her2=absent,
    )
