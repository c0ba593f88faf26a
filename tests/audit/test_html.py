"""The HTML report: every chart drawn from the figures, with its table and its CSV, nothing
fetched, no patient data."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

import pytest
from audit_traffic import LAB_B, audit_of, cell

from adapter.audit.render_html import render_html


class _Page(HTMLParser):
    """Elements with their attributes, and each table's rows."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._text = []

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None:
            self._row.append("".join(self._text))
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None


@pytest.fixture(scope="module")
def page(traffic_store_url: str) -> tuple[str, _Page, dict[str, Any]]:
    audit = audit_of(traffic_store_url)
    html = render_html(audit)
    parsed = _Page()
    parsed.feed(html)
    return html, parsed, audit


def bars(parsed: _Page, **wanted: str) -> list[dict[str, str]]:
    return [
        attrs
        for tag, attrs in parsed.elements
        if tag == "rect" and all(attrs.get(f"data-{k}") == v for k, v in wanted.items())
    ]


def test_every_chart_is_there_with_a_table_and_a_download(page: Any) -> None:
    """Every chart has its figure, table and CSV link, and the page its JSON link."""
    _, parsed, _ = page
    figures = [attrs["id"] for tag, attrs in parsed.elements if tag == "figure"]
    for chart in (
        "ihc-lab-b-lab-b-pathology-breast",
        "workup",
        "disagreements",
        "quality-flags",
        "quality-codes",
    ):
        assert chart in figures
    assert "categories-lab-b-lab-b-pathology-breast" in figures
    downloads = [a for tag, a in parsed.elements if tag == "a" and "download" in a]
    assert len(downloads) == len(figures) + 1  # one per chart, and the whole audit as JSON


def figure(html: str, chart_id: str) -> str:
    start = html.index(f'<figure id="{chart_id}"')
    return html[start : html.index("</figure>", start)]


def test_the_bars_draw_the_figures(page: Any) -> None:
    """Bar heights and values are the figures: April's IHC 0 is 40% of its column."""
    html, _, audit = page
    ihc = _Page()
    ihc.feed(figure(html, "ihc-lab-b-lab-b-pathology-breast"))
    (jump,) = bars(ihc, period="2024-04", key="0 null")
    assert jump["data-value"] == "16"
    assert jump["data-total"] == "40"
    assert float(jump["height"]) == pytest.approx(160 * 16 / 40, abs=0.01)
    april = cell(audit, LAB_B, "2024-04")["categories"]["breast"]["counts"]
    chart = _Page()
    chart.feed(figure(html, "categories-lab-b-lab-b-pathology-breast"))
    drawn = {b["data-key"]: int(b["data-value"]) for b in bars(chart, period="2024-04")}
    assert drawn == {name: count for name, count in april.items() if count}


def test_a_sender_with_few_reports_is_drawn_as_a_count(page: Any) -> None:
    """LAB-C's month is a grey column with its count, and no bars of shares."""
    html, parsed, _ = page
    suppressed = [
        a for tag, a in parsed.elements if tag == "rect" and a.get("class") == "suppressed"
    ]
    assert {a["data-total"] for a in suppressed} == {"5"}
    assert {a["data-period"] for a in suppressed} == {"2024-03"}
    lab_c = _Page()
    lab_c.feed(figure(html, "ihc-lab-c-lab-c-pathology-breast"))
    assert not bars(lab_c, key="1+")


def test_the_drift_table_names_the_jump(page: Any) -> None:
    """The drift table lists LAB-B's April IHC 0, and its chart marks April."""
    html, parsed, audit = page
    (note,) = [a for tag, a in parsed.elements if a.get("id") == "drift-note"]
    assert int(note["data-flagged"]) == len(audit["drift"]["flagged"])
    rows = [row for table in parsed.tables for row in table]
    assert [LAB_B, "2024-04", "breast", "0 null", "own-earlier", "40.0% (16/40)"] in [
        row[:6] for row in rows
    ]
    marks = [a for tag, a in parsed.elements if a.get("class") == "drift-mark"]
    ihc = _Page()
    ihc.feed(figure(html, "ihc-lab-b-lab-b-pathology-breast"))
    assert [a["data-period"] for _, a in ihc.elements if a.get("class") == "drift-mark"] == [
        "2024-04"
    ]
    assert len(marks) >= 1


def test_the_csv_download_holds_the_table(page: Any) -> None:
    """The work-up chart's CSV link holds its table's rows."""
    html, _, _ = page
    match = re.search(r'download="workup.csv" href="data:text/csv;charset=utf-8,([^"]+)"', html)
    assert match is not None
    rows = list(csv.reader(io.StringIO(unquote(match.group(1)))))
    assert rows[0][:4] == ["sender", "reports", "IHC 2+", "with ISH"]
    assert rows[2][:5] == [LAB_B, "164", "32", "24", "75.0%"]


def test_nothing_is_fetched_and_no_patient_data_is_shown(page: Any) -> None:
    """No script, no external URL, every link a data: URL, no patient data."""
    html, parsed, _ = page
    assert "<script" not in html
    assert not [a for _, a in parsed.elements if "src" in a]
    links = [a["href"] for tag, a in parsed.elements if tag == "a"]
    assert all(link.startswith("data:") for link in links)
    assert "http://" not in html
    assert "https://" not in html
    for patient_detail in ("MRN", "TEST^PATIENT", "19600101", "ACC1"):
        assert patient_detail not in unquote(html)
