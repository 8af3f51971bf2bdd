"""Brain MRIs read through a real SMART launch against the sandbox EHR (loopback HTTP).

The last brain MRI comes from an imaging study, a radiology report or a procedure, searched in
the same wave as the rest of the chart; a source the grant withholds makes the MRI history
unknown, never "no brain MRI on record" (docs/clinical-basis.md §6).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from .conftest import Stack

pytestmark = pytest.mark.integration


def assessment(browser: requests.Session, page: str) -> dict[str, Any]:
    resp = browser.get(page + "/assessment", timeout=30)
    assert resp.status_code == 200, resp.text[:500]
    data: dict[str, Any] = resp.json()
    return data


def test_the_last_brain_mri_is_read_with_the_chart_in_one_wave(stack: Stack) -> None:
    browser = stack.browser()
    stack.clear_log()
    page = stack.launch(browser, "ex05-index-1-51-25-infusions")
    data = assessment(browser, page)
    mon = data["assessment"]["monitoring"] if "assessment" in data else data["monitoring"]
    assert mon["mriLast"] == "2026-06-30"
    assert mon["mriDue"] == "2026-09-30"  # every 3–4 months: due at 3
    assert mon["mriState"] == "overdue"
    assert mon["mriSources"] == ["ImagingStudy/ex05-index-1-51-25-infusions-img-001"]
    assert data["access"]["withheld"] == []
    assert data["fhir"]["roundTrips"] == 1
    paths = [r["path"] for r in stack.fhir_requests()]
    assert any(p.endswith("/ImagingStudy") for p in paths)
    assert any(p.endswith("/DiagnosticReport") for p in paths)
    html = browser.get(page, timeout=30).text
    assert "Last brain MRI 2026-06-30" in html


def test_a_report_and_a_procedure_are_read_too(stack: Stack) -> None:
    browser = stack.browser()
    ex03 = assessment(browser, stack.launch(browser, "ex03-index-0-90"))
    ex01 = assessment(browser, stack.launch(browser, "ex01-negative-30"))
    mon3 = ex03.get("assessment", ex03)["monitoring"]
    mon1 = ex01.get("assessment", ex01)["monitoring"]
    assert (mon3["mriLast"], mon3["mriDue"]) == ("2026-10-20", "2027-01-20")
    assert mon3["mriSources"][0].startswith("DiagnosticReport/")
    assert (mon1["mriLast"], mon1["mriDue"]) == ("2026-02-12", "2027-02-12")  # negative: 12
    assert mon1["mriSources"][0].startswith("Procedure/")


def test_withheld_imaging_makes_the_mri_history_unknown(stack: Stack) -> None:
    browser = stack.browser()
    page = stack.launch(browser, "ex05-index-1-51-25-infusions", withhold="ImagingStudy")
    data = assessment(browser, page)
    mon = data.get("assessment", data)["monitoring"]
    assert mon["mriState"] == "unknown"
    assert mon["mriLast"] is None
    assert "could not be read" in mon["mriStatus"]
    assert "no brain MRI on record" not in mon["mriStatus"]
    assert "ImagingStudy" in data["access"]["withheld"]


def test_a_chart_without_mri_says_none_on_record(stack: Stack) -> None:
    browser = stack.browser()
    data = assessment(browser, stack.launch(browser, "ex06-index-3-0-12-infusions"))
    mon = data.get("assessment", data)["monitoring"]
    assert mon["mriState"] == "none-on-record"
    assert mon["mriStatus"] == "no brain MRI on record"
