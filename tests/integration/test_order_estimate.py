"""Administrations the app may not read: no estimate, and a labelled count from the orders.

When natalizumab administrations cannot be read the exposure is unknown and
there is no estimate (never the lowest band); where orders are readable the page offers a count
estimated from them as the what-if's suggestion, which the clinician must choose to use.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

from .conftest import FIXTURES, StackFactory

pytestmark = pytest.mark.integration

PATIENT = "ex06-index-3-0-12-infusions"


def folder(tmp_path: Path) -> Path:
    found = tmp_path / "fixtures"  # apart from the stack's own files in tmp_path
    found.mkdir()
    return found


def _fixtures_with_orders(folder: Path, authored: date) -> Path:
    bundle = json.loads((FIXTURES / f"{PATIENT}.json").read_text(encoding="utf-8"))
    bundle["entry"].append({"resource": {
        "resourceType": "MedicationRequest", "id": "natalizumab-order", "status": "active",
        "intent": "order", "subject": {"reference": f"Patient/{PATIENT}"},
        "authoredOn": authored.isoformat(),
        "medicationCodeableConcept": {"text": "Tysabri 300 mg IV", "coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "354770"}]},
        "dosageInstruction": [{"timing": {"repeat": {"period": 4, "periodUnit": "wk"}}}],
    }})
    (folder / f"{PATIENT}.json").write_text(json.dumps(bundle), encoding="utf-8")
    (folder / "index.json").write_text(json.dumps(
        [{"id": PATIENT, "name": "Tomasz Wierzbicki", "summary": "orders"}]), encoding="utf-8")
    return folder


def test_unreadable_administrations_give_no_estimate_and_a_suggestion_from_orders(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    authored = date.today() - timedelta(days=330)  # 11 intervals of 28 days and a bit: 12
    stack = make_stack(sandbox={"fixtures_dir": _fixtures_with_orders(folder(tmp_path), authored)})
    stack.control(withhold=["MedicationAdministration"])
    browser = stack.browser()
    page = stack.launch(browser, PATIENT)
    data = browser.get(page + "/assessment", timeout=30).json()
    assert data["status"] == "incomplete" and data["result"] is None  # never the lowest band
    assert data["riskAssessment"] is None
    assert "exposure-unread" in {w["code"] for w in data["warnings"]}
    suggestion = data["suggestions"]["infusions"]
    assert suggestion["value"] == 12 and suggestion["label"] == "estimated from orders"
    assert suggestion["intervalDays"] == 28 and suggestion["firstOrder"] == authored.isoformat()
    assert suggestion["orders"] == ["MedicationRequest/natalizumab-order"]

    html = browser.get(page, timeout=30).text
    assert "Suggested: 12, estimated from orders" in html
    link = html.split('id="wi-infusions-estimate"', 1)[1].split('href="', 1)[1].split('"', 1)[0]
    used = browser.get(urljoin(page, link.replace("&amp;", "&")), timeout=30)
    assert used.status_code == 200 and "1.2 per 1,000" in used.text  # as under full: ex06
    query = {k: v[0] for k, v in parse_qs(urlsplit(link.replace("&amp;", "&")).query).items()}
    assert query["infusions"] == "12" and "estimated from orders" in query["reason"]
    applied = browser.get(page + "/assessment", params=query, timeout=30).json()
    assert applied["status"] == "ok" and applied["result"]["per1000"] == "1.2"
    assert applied["overrides"]["infusions"] == "12"
    notes = " ".join(n["text"] for n in applied["riskAssessment"]["note"])
    assert "estimated from orders" in notes


def test_no_suggestion_when_administrations_were_read(make_stack: StackFactory,
                                                      tmp_path: Path) -> None:
    authored = date.today() - timedelta(days=330)
    stack = make_stack(sandbox={"fixtures_dir": _fixtures_with_orders(folder(tmp_path), authored)})
    browser = stack.browser()
    page = stack.launch(browser, PATIENT)
    data = browser.get(page + "/assessment", timeout=30).json()
    assert data["status"] == "ok" and data["result"]["per1000"] == "1.2"
    assert data["suggestions"] == {}
    assert "estimated from orders" not in browser.get(page, timeout=30).text
