"""The display text of a result code, checked against what the code is mapped to.

Codes are matched on code and system (codes.md); the display is a check. A mapped code whose
display names only another marker (Ki-67 under ER's LOINC code) or another method is not used.
A local code that no sender file maps is recognised only when its display names exactly one
known marker and method (``code-inferred``). The words live in ``mappings/display-words.toml``.
Both readers (HL7 v2 and FHIR) call this, so a code means the same in either format.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapter.mapping import CodeEntry, MappingSet
from adapter.model import Coding, IngestWarning

CODE_DISPLAY_MISMATCH = "CODE-DISPLAY-MISMATCH"
CODE_INFERRED = "CODE-INFERRED"


@dataclass(frozen=True)
class CodeCheck:
    """The entry to use (or ``None``), why not, and what to warn about."""

    entry: CodeEntry | None
    unused_reason: str | None = None
    warning: IngestWarning | None = None


def check_code(
    code: Coding | None, entry: CodeEntry | None, mapping: MappingSet, locator: str
) -> CodeCheck:
    display = code.display if code is not None else None
    if entry is not None:
        conflict = mapping.display_conflict(entry.analyte, display)
        if conflict is None:
            return CodeCheck(entry)
        reason = f"code {entry.code} is mapped to {entry.analyte} but {conflict}: not used"
        return CodeCheck(
            None, reason, IngestWarning(code=CODE_DISPLAY_MISMATCH, message=reason, locator=locator)
        )
    if code is None or not code.code or mapping.is_standard(code.system):
        return CodeCheck(None, "result code not in the mappings")
    if mapping.has_sender_file:
        return CodeCheck(None, f"result code not in the mappings (sender {mapping.name})")
    if not code.system:
        # A code without its coding system names nothing a sender file could confirm.
        return CodeCheck(None, "local code without a coding system, not in the mappings")
    analyte, found = mapping.infer_from_display(display)
    if analyte is None:
        return CodeCheck(
            None,
            "local code not in the mappings, and its display names no single known marker and "
            f"method ({found})",
        )
    inferred = CodeEntry(system=code.system, code=code.code, analyte=analyte)
    message = (
        f"local code {code.code} is not in the mappings; its display names one marker and one "
        f"method ({found}): read as {analyte}; add it to a sender file to confirm"
    )
    return CodeCheck(
        inferred, warning=IngestWarning(code=CODE_INFERRED, message=message, locator=locator)
    )
