"""``worklist.html`` in real Chromium, opened from a file with the network cut off: it must work
with no server and no external asset, sort by any column, filter to "due this month", print
without its controls, show hostile names as text, and pass axe's WCAG A/AA checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route
from worklist.helpers import INDEX, write_ndjson  # tests/worklist (tests/ is on sys.path)

from smart_app.cli import main

from .conftest import AXE, watch_console

pytestmark = pytest.mark.browser

HOSTILE = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">Eve'


@pytest.fixture
def worklist_file(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    write_ndjson(tmp_path / "in")
    with (tmp_path / "in" / "Patient.ndjson").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"resourceType": "Patient", "id": "hostile",
                             "name": [{"text": HOSTILE}],
                             "identifier": [{"type": {"text": "MRN"}, "value": "<b>M1</b>"}]})
                 + "\n")
    out = tmp_path / "out"
    assert main(["worklist", "--from-ndjson", str(tmp_path / "in"), "--out", str(out),
                 "--at", "2026-11-25"]) == 0
    data = json.loads((out / "worklist.json").read_text(encoding="utf-8"))
    return out / "worklist.html", data


def _open(page: Page, path: Path) -> list[str]:
    requested: list[str] = []

    def block(route: Route) -> None:
        requested.append(route.request.url)
        route.abort()

    page.route("http*://**", block)
    page.goto(path.as_uri())
    return requested


def _column(page: Page, n: int) -> list[str]:
    values: list[str] = page.eval_on_selector_all(
        "#worklist tbody tr:not([hidden])",
        f"rows => rows.map(r => r.cells[{n}].getAttribute('data-sort'))")
    return values


def test_sort_filter_print_offline(page: Page, worklist_file: tuple[Path, dict[str, Any]]) -> None:
    path, data = worklist_file
    errors = watch_console(page)
    requested = _open(page, path)
    rows = page.locator("#worklist tbody tr")
    assert rows.count() == len(INDEX) + 1
    page.get_by_role("button", name="Per 1,000").click()
    figures = [float(v) if v else float("-inf") for v in _column(page, 2)]
    assert figures == sorted(figures)
    assert page.locator("th[aria-sort=ascending]").inner_text().startswith("Per 1,000")
    page.get_by_role("button", name="Per 1,000").click()
    assert [float(v) if v else float("-inf") for v in _column(page, 2)] == sorted(
        figures, reverse=True)
    page.get_by_role("button", name="Infusions").click()
    infusions = [int(v) for v in _column(page, 4)]
    assert infusions == sorted(infusions)

    due = [r for r in data["rows"] if r["retest"] in ("overdue", "due this month")
           or r["mri"] in ("overdue", "due this month")]
    page.get_by_label("Due this month").check()
    assert page.locator("#worklist tbody tr:not([hidden])").count() == len(due) > 0
    assert page.locator("#shown").inner_text() == f"{len(due)} of {len(INDEX) + 1} patients shown"
    shown_mrns = set(page.eval_on_selector_all(
        "#worklist tbody tr:not([hidden]) td:first-child .small",
        "cells => cells.map(c => c.textContent.replace('MRN ', ''))"))
    assert shown_mrns == {r["mrn"] or "—" for r in due}
    page.get_by_label("Due this month").uncheck()
    assert page.locator("#worklist tbody tr:not([hidden])").count() == len(INDEX) + 1

    page.emulate_media(media="print")
    assert not page.locator(".controls").is_visible()
    assert page.locator("#worklist").is_visible()
    page.emulate_media(media="screen")

    assert page.evaluate("window.__xss") is None
    assert page.get_by_text(HOSTILE).count() == 1
    assert page.get_by_text("MRN <b>M1</b>").count() == 1
    assert requested == [] and errors == []


def test_worklist_page_is_accessible(page: Page,
                                     worklist_file: tuple[Path, dict[str, Any]]) -> None:
    path, _ = worklist_file
    _open(page, path)
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }""")
    assert [v for v in result if v["impact"] in ("serious", "critical")] == []
