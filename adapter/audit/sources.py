"""Where the audit's inputs come from: a store's report index, or message files run through the
pipeline (the same ``case_facts`` the service indexes with).

A report's day is its issue day (else its effective day), so an audit of a backfilled store or
of files counts reports in the month the lab issued them; a report that names neither counts on
the day the store received it (files: "undated").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adapter.audit.facts import ReportFacts, case_facts
from adapter.audit.figures import AuditInput, UnprocessedInput
from adapter.errors import AdapterError
from adapter.store import Store


@dataclass
class AuditData:
    reports: list[AuditInput] = field(default_factory=list)
    unprocessed: list[UnprocessedInput] = field(default_factory=list)


def from_store(store: Store, *, sender: str | None = None) -> AuditData:
    data = AuditData()
    for row in store.audit_rows(sender=sender):
        facts = ReportFacts.from_json(row.audit) if row.audit is not None else None
        day = facts.reported_on if facts is not None and facts.reported_on else None
        data.reports.append(AuditInput(row.sender, day or row.received_at.date(), facts))
    for message in store.unprocessed_rows(sender=sender):
        data.unprocessed.append(
            UnprocessedInput(
                message.sender, message.received_at.date(), message.error_code or "UNKNOWN"
            )
        )
    return data


def from_files(sources: Sequence[str], mappings_dir: Path | None = None) -> AuditData:
    """Every message of every file (folders, globs and compressed files as ``convert`` takes
    them), classified with the given (or shipped) mappings. Raises InputFileError for a name
    that cannot be read.

    The messages form cases in the order read, as one ``convert`` run does, and each case
    counts once, as it last stands: the store's rule (the latest version of each report), so a
    reflex ISH in a later file completes its IHC's report instead of counting as another.
    A file of the adapter's own output (``output.is_output``) is audited as it stands, and
    another system's reports among it are classified as messages.
    """
    from adapter.audit.output import OutputReader, documents, is_output
    from adapter.cases import PriorMessage
    from adapter.cases.log import CaseLog
    from adapter.config import Settings
    from adapter.ingest.values import site_zone
    from adapter.inputs import expand_paths, read_input
    from adapter.model import SourceFormat
    from adapter.pipeline import Context, RawMessage, identify, process, split_input

    settings = Settings(mappings_dir=mappings_dir) if mappings_dir else Settings()
    context = Context.from_settings(settings)
    codesystem = settings.codesystem_url
    output = OutputReader(context.mappings.default, codesystem, site_zone(settings.site_timezone))
    cases = CaseLog()
    latest: dict[str, AuditInput] = {}  # report id -> its case as it last stood
    data = AuditData()

    def take(message: RawMessage) -> None:
        sender = identify(message.data, message.format).sender or "(unknown sender)"
        outcome = process(message, context, cases.prior)
        if outcome.error is not None:
            data.unprocessed.append(UnprocessedInput(sender, None, outcome.error.code))
        if outcome.application is None or outcome.bundle is None:
            return
        # A message with a value not understood is rejected and still carries its report,
        # as in the store: both count.
        cases.add(PriorMessage(message.data, message.format), outcome.application)
        for view in outcome.application.cases:
            facts = case_facts(view)
            latest[view.report_id] = AuditInput(sender, facts.reported_on, facts)

    for source in list(expand_paths(sources)):
        try:
            raw = read_input(source)
            found = documents(raw)
            if found is not None and is_output(found, codesystem):
                output.add(found)  # the adapter's own Bundles, or a receiver's copy of them
                continue
            messages = split_input(raw)
        except AdapterError as error:
            name = Path(source).name
            data.unprocessed.append(UnprocessedInput(f"(file {name})", None, error.code))
            continue
        for message in messages:
            take(message)
    # Another system's reports among our output (a registry's export holds both) are input.
    for foreign in output.foreign_reports():
        take(RawMessage(foreign, SourceFormat.FHIR))
    data.reports.extend(latest.values())
    for report in output.reports():
        if report.error_code is not None:
            data.unprocessed.append(UnprocessedInput(report.sender, None, report.error_code))
            continue
        day = report.facts.reported_on if report.facts else None
        data.reports.append(AuditInput(report.sender, day, report.facts))
    return data
