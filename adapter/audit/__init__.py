"""Lab QA audit: what the classified traffic says about each sender's HER2 testing.

``facts`` turns one classified record into a small, patient-free summary that the store indexes
with its report; ``figures`` aggregates those summaries per sender and period (counts, shares,
drift tests); ``sources`` reads them from a store or from files; ``render_text`` and
``render_html`` show them. Counts and rates only: no identifier, value or free text of a report
ever reaches the audit.
"""
