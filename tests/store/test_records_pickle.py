"""The rows a worker process sends the service survive pickling field for field."""

from __future__ import annotations

import pickle

from adapter.store import CaseEventRow, ReportIndexRow, ResourceIndexRow


def test_index_and_case_rows_round_trip_through_pickle() -> None:
    rows = [
        ReportIndexRow("R1", "Patient/P1", "HER2-low", "final", '{"v": 1}'),
        ReportIndexRow("R2", "Patient/P1", "", "preliminary"),  # no audit facts
        ResourceIndexRow("Observation", "O1", "Patient/P1", " code:A ", "2024-03-05T14:30:16Z"),
        CaseEventRow("C1", "LAB", None, ("filler:F1", "placer:P1"), "R1", "", "", "final", "{}"),
    ]
    for row in rows:
        again = pickle.loads(pickle.dumps(row, pickle.HIGHEST_PROTOCOL))
        assert again == row
        assert type(again) is type(row)
