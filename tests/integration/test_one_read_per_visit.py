"""One chart read per visit: what-if, the JSON and the summary work from the snapshot taken
when the page opened; the save writes what was shown after one cheap freshness round, and a
chart that changed in between is never written stale."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from smart_app.fhir.client import ChartData

from .conftest import FIXTURES, Stack, StackFactory
from .test_writeback import PATIENT, Tab

pytestmark = pytest.mark.integration
INDEX = "ex03-index-0-90-jcvidx-001"  # the patient's anti-JCV index result (0.9)
BLOOD_COUNT = "ex03-index-0-90-lab-001"  # a lab result the estimate does not use
WHAT_IFS = ({"prior_is": "yes"}, {"prior_is": "yes", "infusions": "60"},
            {"index": "1.6"}, {"antibody": "negative"}, {"reason": "r", "infusions": "30"})


def fixture_resource(rid: str) -> dict[str, Any]:
    bundle = json.loads((FIXTURES / f"{PATIENT}.json").read_text(encoding="utf-8"))
    return copy.deepcopy(next(e["resource"] for e in bundle["entry"]
                              if e["resource"]["id"] == rid))


def fhir_requests(stack: Stack) -> list[dict[str, Any]]:
    return [r for r in stack.fhir_requests() if r["path"] != "/sandbox/fhir/metadata"]


def test_what_ifs_json_and_summary_ask_the_ehr_nothing(stack: Stack) -> None:
    tab = Tab(stack)
    stack.clear_log()
    for values in WHAT_IFS:
        assert tab.browser.get(tab.url + "/results", params=values, timeout=30).ok
    assert tab.assessment(prior_is="yes").json()["result"]["per1000"] == "12"
    assert tab.browser.get(tab.url + "/summary.txt", timeout=30).text.startswith("PML risk")
    assert tab.browser.get(tab.url + "/riskassessment.json", timeout=30).ok
    assert stack.fhir_requests() == []


def test_save_is_one_freshness_round_and_one_write(stack: Stack) -> None:
    tab = Tab(stack)
    stack.clear_log()
    body = tab.save({"identifier": tab.identifier}).json()
    assert body["saved"] is True and body["created"] is True
    sent = fhir_requests(stack)
    checks = [r for r in sent if r["method"] == "GET"]
    # The read's own searches (anti-JCV by code, labs by category and date, the brain-MRI
    # sources), changes only.
    assert sorted(r["path"].rsplit("/", 1)[1] for r in checks) == [
        "DiagnosticReport", "ImagingStudy", "MedicationAdministration", "MedicationRequest",
        "MedicationStatement", "Observation", "Observation", "Procedure"]
    assert all(r["args"]["_lastUpdated"][0].startswith("ge") for r in checks)
    assert [(r["method"], r["path"]) for r in sent if r["method"] == "POST"] == [
        ("POST", "/sandbox/fhir/RiskAssessment")]
    # The history shows the new result without another read.
    stack.clear_log()
    items = tab.assessment().json()["history"]["items"]
    assert [(i["id"], i["current"]) for i in items] == [(body["id"], True)]
    assert stack.fhir_requests() == []


def test_a_changed_result_is_never_written_stale(stack: Stack) -> None:
    tab = Tab(stack)
    amended = fixture_resource(INDEX)
    amended["valueQuantity"]["value"] = 1.6  # the lab amends the index after the page opened
    stack.control(put_resources=[amended])
    resp = tab.save({"identifier": tab.identifier})
    assert resp.status_code == 409
    body = resp.json()
    assert body["saved"] is False and body["error"] == "chart-changed"
    assert "the chart changed since you opened it: review and save again" in (
        body["message"].lower())
    assert tab.saved() == []
    assert not [r for r in stack.fhir_requests() if r["method"] == "POST"]
    # The page, shown again, reads the chart as it is now; that result saves.
    fresh = tab.assessment().json()
    assert fresh["inputs"]["antibody"]["index"] == "1.6"
    assert fresh["save"]["identifier"] != tab.identifier
    again = tab.save({"identifier": fresh["save"]["identifier"]}).json()
    assert again["saved"] is True and again["created"] is True
    assert len(tab.saved()) == 1


def test_a_change_that_leaves_the_result_alone_does_not_block_the_save(stack: Stack) -> None:
    tab = Tab(stack)
    count = fixture_resource(BLOOD_COUNT)
    count["valueQuantity"]["value"] = 3.1
    stack.control(put_resources=[count])
    body = tab.save({"identifier": tab.identifier}).json()
    assert body["saved"] is True and body["identifier"] == tab.identifier


def test_a_failed_freshness_check_writes_nothing(stack: Stack) -> None:
    tab = Tab(stack)
    stack.control(fail_next=[500])
    resp = tab.save({"identifier": tab.identifier})
    assert resp.status_code == 502
    body = resp.json()
    assert body["saved"] is False and body["retryable"] is True
    assert "could not check whether the chart changed" in body["message"]
    assert tab.saved() == []
    assert tab.save({"identifier": tab.identifier}).json()["created"] is True


def test_the_snapshot_is_encrypted_and_goes_with_the_launch(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    db = tmp_path / "snap.sqlite3"
    stack = make_stack(store=f"sqlite:///{db}")
    tab = Tab(stack)
    launch_id = tab.url.rsplit("/", 1)[1]
    repo = stack.services.repo
    stored = repo.get_chart(launch_id)
    assert stored is not None
    data = ChartData.from_json(stored)
    assert any(r.get("id") == INDEX for r in data.resources)
    raw = db.read_bytes() + (db.with_name(db.name + "-wal").read_bytes()
                             if db.with_name(db.name + "-wal").exists() else b"")
    assert INDEX.encode() not in raw and b"valueQuantity" not in raw
    repo.delete(launch_id)
    assert repo.get_chart(launch_id) is None and repo.get(launch_id) is None
