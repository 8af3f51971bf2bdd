"""``POST /launches/<id>/assessment`` over real HTTP against the sandbox: the API contract.

Success is ``{"saved": true, "id", "created"}``; every failure is ``{"saved": false, "error",
"title", "message", ...}`` with a status that says whose fault it is. What the sandbox holds is
checked through its own FHIR API, never through the app.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
import requests

from smart_app.fhir.riskassessment import IDENTIFIER_SYSTEM

from .conftest import Stack, StackFactory

PATIENT = "ex03-index-0-90"
NO_RA_CREATE = (
    "launch openid fhirUser online_access patient/Patient.r patient/Observation.rs "
    "patient/MedicationAdministration.rs patient/MedicationStatement.rs "
    "patient/MedicationRequest.rs patient/Medication.rs patient/RiskAssessment.rs"
)


class Tab:
    """One launched page in one browser session, with its CSRF token."""

    def __init__(self, stack: Stack, patient: str = PATIENT, **extra: str) -> None:
        self.stack = stack
        self.browser = stack.browser()
        self.url = stack.launch(self.browser, patient, **extra)
        self.html = self.browser.get(self.url, timeout=30).text
        found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', self.html)
        assert found, "the page carries its CSRF token"
        self.csrf = found.group(1)
        shown = re.search(r'data-identifier="([0-9a-f]*)"', self.html)
        self.identifier = shown.group(1) if shown else ""

    def save(self, body: Any = None, *, token: str | None = "ok") -> requests.Response:
        headers = {} if token is None else {"X-CSRF-Token": self.csrf if token == "ok" else token}
        return self.browser.post(self.url + "/assessment", json=body if body is not None else {},
                                 headers=headers, timeout=60)

    def assessment(self, **params: str) -> requests.Response:
        return self.browser.get(self.url + "/assessment", params=params, timeout=60)

    def saved(self, patient: str = PATIENT) -> list[dict[str, Any]]:
        launch = self.stack.services.repo.get(self.url.rsplit("/", 1)[1])
        assert launch is not None
        resp = requests.get(
            f"{self.stack.iss}/RiskAssessment",
            params={"patient": patient, "identifier": f"{IDENTIFIER_SYSTEM}|"},
            headers={"Authorization": f"Bearer {launch.tokens.access_token}"}, timeout=10)
        assert resp.status_code == 200, resp.text
        return [e["resource"] for e in resp.json().get("entry", [])]


def test_save_needs_this_launchs_csrf_token(stack: Stack) -> None:
    tab = Tab(stack)
    other = Tab(stack, "ex01-negative-30")
    for token in (None, "wrong", other.csrf, ""):
        resp = tab.save(token=token)
        assert resp.status_code == 403
        body = resp.json()
        assert body["saved"] is False and body["error"] == "csrf" and body["message"]
    assert tab.saved() == []
    # The session cookie alone (another browser with the right token) opens nothing either.
    stranger = stack.browser().post(tab.url + "/assessment", json={},
                                    headers={"X-CSRF-Token": tab.csrf}, timeout=10)
    assert stranger.status_code == 404


def test_save_creates_once_then_finds_the_same_resource(stack: Stack) -> None:
    tab = Tab(stack)
    first = tab.save({"identifier": tab.identifier})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["saved"] is True and body["created"] is True
    assert body["id"] and body["reference"] == f"RiskAssessment/{body['id']}"
    assert body["identifier"] == tab.identifier and body["savedAt"]
    again = tab.save({"identifier": tab.identifier}).json()
    assert again == {**again, "saved": True, "created": False, "id": body["id"]}
    relaunched = Tab(stack)  # a new launch of the same patient maps to the same resource
    assert relaunched.identifier == tab.identifier
    assert relaunched.save().json()["created"] is False
    saved = tab.saved()
    assert len(saved) == 1
    assert saved[0]["identifier"] == [{"system": IDENTIFIER_SYSTEM, "value": tab.identifier}]
    posts = [r for r in stack.requests_log() if r["method"] == "POST"
             and r["path"] == "/sandbox/fhir/RiskAssessment"]
    assert [p["status"] for p in posts] == [201, 200, 200]


def test_saved_resource_has_performer_encounter_and_is_history(stack: Stack) -> None:
    tab = Tab(stack, encounter="enc-1")
    assert tab.save().json()["saved"] is True
    saved = tab.saved()[0]
    assert saved["performer"] == {"reference": "Practitioner/dr-ada"}
    assert saved["encounter"] == {"reference": "Encounter/enc-1"}
    history = tab.assessment().json()["history"]
    assert history["status"] == "ok"
    assert [(h["id"], h["current"], h["per1000"]) for h in history["items"]] == [
        (saved["id"], True, "1.1")
    ]


def test_overrides_are_applied_marked_and_saved(stack: Stack) -> None:
    tab = Tab(stack)
    data = tab.assessment(prior_is="yes", infusions="50", reason="given elsewhere").json()
    assert data["result"]["per1000"] == "13"
    assert data["overrides"] == {"prior_is": "yes", "infusions": "50",
                                 "reason": "given elsewhere"}
    assert data["inputs"]["priorImmunosuppressant"]["overridden"] is True
    assert data["inputs"]["exposure"]["overridden"] is True
    identifier = data["save"]["identifier"]
    assert identifier != tab.identifier  # overrides are part of the identifier
    body = {"identifier": identifier, "overrides": data["overrides"]}
    assert tab.save(body).json()["created"] is True
    saved = tab.saved()[0]
    assert saved["prediction"][0]["probabilityDecimal"] == 1.3
    notes = [n["text"] for n in saved["note"]]
    assert any(n.startswith("Clinician override") and "given elsewhere" in n for n in notes)
    # The page with the same overrides marks them too (and works without script).
    html = tab.browser.get(tab.url, params={"prior_is": "yes", "infusions": "50"}, timeout=30)
    assert html.text.count("overridden by clinician") >= 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"index": "abc"}, "index"),
        ({"index": "99"}, "index"),
        ({"prior_is": "maybe"}, "prior_is"),
        ({"antibody": "indeterminate"}, "antibody"),
        ({"infusions": "-3"}, "infusions"),
        ({"infusions": "2.5"}, "infusions"),
        ({"reason": "x" * 201}, "reason"),
    ],
)
def test_bad_overrides_are_a_clear_400(stack: Stack, params: dict[str, str],
                                       message: str) -> None:
    tab = Tab(stack)
    resp = tab.assessment(**params)
    assert resp.status_code == 400
    assert resp.json()["error"] == "bad-override" and message in resp.json()["detail"]
    post = tab.save({"overrides": params})
    assert post.status_code == 400 and post.json()["error"] == "bad-request"
    assert message in post.json()["message"]
    assert tab.browser.get(tab.url + "/results", params=params, timeout=30).status_code == 400
    # Without script the page itself shows the error beside the field, the result marked
    # stale (it lacks the value) and Save off.
    shown = tab.browser.get(tab.url, params=params, timeout=30)
    assert shown.status_code == 400
    field = next(iter(params))
    assert re.search(rf'<p class="field-error" id="wi-{field}-error">[^<]+</p>', shown.text)
    assert 'class="stale-note"' in shown.text
    assert re.search(r'id="save-button" class="primary"\s+disabled', shown.text)
    assert tab.saved() == []


def test_bad_bodies_are_400(stack: Stack) -> None:
    tab = Tab(stack)
    for body in ([], {"overrides": []}, {"identifier": 5}):
        resp = tab.save(body)
        assert resp.status_code == 400 and resp.json()["error"] == "bad-request"


def test_chart_changed_since_shown_is_409_and_writes_nothing(stack: Stack) -> None:
    tab = Tab(stack)
    resp = tab.save({"identifier": "0" * 64})
    assert resp.status_code == 409
    body = resp.json()
    assert body["error"] == "changed" and body["identifier"] == tab.identifier
    assert tab.saved() == []


def test_no_estimate_cannot_be_saved(stack: Stack) -> None:
    tab = Tab(stack, "no-antibody-result")
    assert 'id="save-button"' not in tab.html
    resp = tab.save()
    assert resp.status_code == 409 and resp.json()["error"] == "no-estimate"
    assert "No final anti-JCV antibody result" in resp.json()["message"]


def test_read_only_when_create_is_not_granted(make_stack: StackFactory) -> None:
    stack = make_stack(scopes=NO_RA_CREATE)
    tab = Tab(stack)
    assert re.search(r'<button type="submit" id="save-button" class="primary"\s+disabled', tab.html)
    data = tab.assessment().json()
    assert data["save"]["enabled"] is False and data["save"]["reason"] == "scope"
    resp = tab.save()
    assert resp.status_code == 403
    body = resp.json()
    assert body["error"] == "read-only" and "did not grant" in body["message"]
    assert body["download"].startswith(tab.url.removeprefix(stack.base) + "/riskassessment.json")
    assert body["summary"].startswith("PML risk (natalizumab)")
    assert not [r for r in stack.requests_log() if r["method"] == "POST"
                and r["path"].startswith("/sandbox/fhir/")]


def test_read_only_when_the_ehr_has_no_risk_assessment(make_stack: StackFactory) -> None:
    # A tenant limited to the RiskAssessment rung (the ladder's note rung: test_note_rung.py).
    stack = make_stack(sandbox={"no_risk_assessment": True},
                       tenant={"writeback": "riskassessment"})
    tab = Tab(stack)
    data = tab.assessment().json()
    assert data["save"]["enabled"] is False and data["save"]["reason"] == "unsupported"
    assert data["history"]["status"] == "not-offered"  # not even searched
    assert data["status"] == "ok"  # the estimate itself is not affected
    # In the clinician's words, not the server's: no "CapabilityStatement", no "create".
    assert "this EHR does not accept risk assessment records from apps like this one" in tab.html
    assert "CapabilityStatement" not in tab.html and " create)" not in tab.html
    assert tab.save().json()["error"] == "read-only"


def test_rejected_write_offers_download_and_summary(stack: Stack) -> None:
    tab = Tab(stack)
    stack.control(no_risk_assessment=True)  # after the page: the capability was cached as yes
    resp = tab.save({"identifier": tab.identifier})
    assert resp.status_code == 422
    body = resp.json()
    assert body["saved"] is False and body["error"] == "rejected" and body["httpStatus"] == 404
    assert "not supported" in body["message"] and body["retryable"] is False
    download = tab.browser.get(stack.base + body["download"], timeout=30)
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("application/fhir+json")
    assert "attachment" in download.headers["Content-Disposition"]
    resource = download.json()
    assert resource["resourceType"] == "RiskAssessment"
    assert resource["identifier"][0]["value"] == tab.identifier
    text = tab.browser.get(tab.url + "/summary.txt", params={"identifier": tab.identifier},
                           timeout=30)
    assert text.headers["Content-Type"].startswith("text/plain")
    assert text.text == body["summary"] and "1.1 per 1,000" in text.text
    stack.control(no_risk_assessment=False)
    assert tab.saved() == []


def test_server_errors_are_retried_then_reported_and_retry_keeps_the_identifier(
    stack: Stack,
) -> None:
    tab = Tab(stack)
    stack.control(fail_next_write=[500, 500, 500], clear_requests=True)
    resp = tab.save({"identifier": tab.identifier})
    assert resp.status_code == 502
    body = resp.json()
    assert body["saved"] is False and body["error"] == "server-error"
    assert body["retryable"] is True and body["identifier"] == tab.identifier
    assert "same identifier" in body["message"]
    retry = tab.save({"identifier": tab.identifier}).json()
    assert retry["saved"] is True and retry["created"] is True
    assert retry["identifier"] == tab.identifier
    posts = [r["status"] for r in stack.requests_log() if r["method"] == "POST"
             and r["path"] == "/sandbox/fhir/RiskAssessment"]
    assert posts == [500, 500, 500, 201]
    assert len(tab.saved()) == 1


def test_a_503_within_the_retries_still_saves(stack: Stack) -> None:
    tab = Tab(stack)
    stack.control(fail_next_write=[503])
    body = tab.save({"identifier": tab.identifier}).json()  # what was shown: no chart read
    assert body["saved"] is True and body["attempts"] == 2


def test_v1_write_scope_allows_the_save(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"v1_only": True})
    tab = Tab(stack)
    assert tab.assessment().json()["save"]["enabled"] is True
    assert tab.save().json()["created"] is True


def test_page_security_headers_and_no_inline_code(make_stack: StackFactory) -> None:
    stack = make_stack(tenant={"frame_ancestors": ["https://ehr.example.org"]})
    tab = Tab(stack)
    resp = tab.browser.get(tab.url, timeout=30)
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://ehr.example.org" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    html = resp.text
    assert "<style" not in html and " style=" not in html
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []  # every script is a file
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert {a.split("?")[0] for a in assets} == {
        "/static/app.js", "/static/app.css", "/static/vendor/chartjs/chart.umd.js"}
    for asset in assets:  # versioned URLs: cached for good, a new file is a new URL
        got = tab.browser.get(stack.base + asset.replace("&amp;", "&"), timeout=10)
        assert got.status_code == 200
        assert re.search(r"\?v=[0-9a-f]{12}\b", asset), asset  # the file's content hash
        assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_audit_events_carry_identifiers_only(stack: Stack, caplog: pytest.LogCaptureFixture
                                             ) -> None:
    tab = Tab(stack)
    with caplog.at_level(logging.INFO, logger="pml_risk.audit"):
        tab.save()
        tab.save()
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "pml_risk.audit"]
    writes = [e for e in events if e["event"] == "riskassessment.write"]
    assert [(e["status"], e["created"], e["http_status"]) for e in writes] == [
        ("saved", True, 201), ("saved", False, 200)
    ]
    assert writes[0]["resource_id"].startswith("RiskAssessment/")
    assert writes[0]["patient"] == PATIENT and writes[0]["user"] == "Practitioner/dr-ada"
    assert all("dropped_fields" not in e for e in events)
    assert any(e["event"] == "assessment.computed" for e in events)
