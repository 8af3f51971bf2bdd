"""The write-back ladder over real HTTP: each sandbox EHR profile gets the rung it can take.

``full``: a RiskAssessment; ``notes-only``: exactly one clinical note (DocumentReference);
``no-conditional-create``: never a duplicate; ``read-only``: a clean refusal that says why.
What the sandbox holds is read through its own FHIR API, never through the app.
"""

from __future__ import annotations

import base64
import html
import re
import threading
from typing import Any

import requests

from smart_app.fhir.riskassessment import IDENTIFIER_SYSTEM

from .conftest import Stack, StackFactory
from .test_writeback import PATIENT, Tab

NOTE_ONLY_SCOPES = (
    "launch openid fhirUser online_access patient/Patient.r patient/Observation.rs "
    "patient/MedicationAdministration.rs patient/MedicationStatement.rs "
    "patient/MedicationRequest.rs patient/Medication.rs patient/RiskAssessment.rs "
    "patient/DocumentReference.c"
)


def saved(stack: Stack, tab: Tab, rtype: str, patient: str = PATIENT) -> list[dict[str, Any]]:
    """This app's resources of ``rtype`` for ``patient``, read through the sandbox's FHIR API."""
    launch = stack.services.repo.get(tab.url.rsplit("/", 1)[1])
    assert launch is not None
    resp = requests.get(
        f"{stack.iss}/{rtype}",
        params={"patient": patient, "identifier": f"{IDENTIFIER_SYSTEM}|"},
        headers={"Authorization": f"Bearer {launch.tokens.access_token}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    return [e["resource"] for e in resp.json().get("entry", [])]


def posts(stack: Stack, rtype: str) -> list[int]:
    return [r["status"] for r in stack.requests_log()
            if r["method"] == "POST" and r["path"] == f"/sandbox/fhir/{rtype}"]


def text_of(note: dict[str, Any], kind: str = "text/plain") -> str:
    for content in note["content"]:
        if content["attachment"]["contentType"].startswith(kind):
            return base64.b64decode(content["attachment"]["data"]).decode("utf-8")
    raise AssertionError(f"no {kind} content")


def destination(page: str) -> str:
    found = re.search(r'<span id="save-destination"[^>]*>(.*?)</span>', page, re.S)
    assert found, "the page says where the result will go"
    return html.unescape(found.group(1)).strip()


def test_full_saves_a_risk_assessment(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"ehr_profile": "full"})
    tab = Tab(stack, encounter="enc-1")
    assert destination(tab.html).startswith("Saves this result to the chart as a RiskAssessment")
    body = tab.save({"identifier": tab.identifier}).json()
    assert body["saved"] is True and body["created"] is True
    assert body["resourceType"] == "RiskAssessment" and body["id"]
    assert [r["id"] for r in saved(stack, tab, "RiskAssessment")] == [body["id"]]
    assert saved(stack, tab, "DocumentReference") == []


def test_notes_only_saves_one_progress_note(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"ehr_profile": "notes-only"})
    tab = Tab(stack, encounter="enc-1")
    assert destination(tab.html).startswith("Saves a progress note with this result to the chart")
    assert tab.assessment().json()["save"]["resourceType"] == "DocumentReference"
    first = tab.save({"identifier": tab.identifier}).json()
    assert {k: first[k] for k in ("saved", "created", "resourceType")} == {
        "saved": True, "created": True, "resourceType": "DocumentReference"}
    again = tab.save({"identifier": tab.identifier}).json()
    assert again["saved"] is True and again["created"] is False and again["id"] == first["id"]
    assert Tab(stack, encounter="enc-1").save().json()["id"] == first["id"]  # a relaunch
    notes = saved(stack, tab, "DocumentReference")
    assert [n["id"] for n in notes] == [first["id"]]
    assert saved(stack, tab, "RiskAssessment") == []
    assert posts(stack, "RiskAssessment") == []  # the ladder never tried the refused rung
    note = notes[0]
    assert note["status"] == "current" and note["docStatus"] == "final"
    assert note["type"]["coding"][0] == {"system": "http://loinc.org", "code": "11506-3",
                                         "display": "Progress note"}
    assert note["category"][0]["coding"][0]["code"] == "clinical-note"
    assert note["subject"] == {"reference": f"Patient/{PATIENT}"}
    assert note["context"]["encounter"] == [{"reference": "Encounter/enc-1"}]
    assert note["author"] == [{"reference": "Practitioner/dr-ada"}]
    assert note["identifier"] == [{"system": IDENTIFIER_SYSTEM, "value": tab.identifier}]
    assert note["date"]
    text = text_of(note)
    summary = tab.browser.get(tab.url + "/summary.txt",
                              params={"identifier": tab.identifier}, timeout=30).text
    assert text.startswith(summary)  # the same summary as the page's
    for part in ("1.1 per 1,000", "Table cell:", "Anti-JCV antibody: positive, index 0.9",
                 "(tested 2026-09-15", "Observation/ex03-index-0-90-jcvidx-001",
                 "Monitoring:", "Risk table:", "Sources:", "Written by pml-risk"):
        assert part in text, part
    assert [c["attachment"]["contentType"] for c in note["content"]] == [
        "text/plain; charset=utf-8"]  # no HTML unless the tenant allows it


def test_note_in_html_where_the_tenant_allows(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"ehr_profile": "notes-only"}, tenant={"note_html": True})
    tab = Tab(stack)
    assert tab.save().json()["resourceType"] == "DocumentReference"
    [note] = saved(stack, tab, "DocumentReference")
    assert len(note["content"]) == 1  # one attachment: Epic files only the first, Oracle one
    page = text_of(note, "text/html")
    assert page.startswith("<!DOCTYPE html>") and "<h2>Monitoring</h2>" in page
    assert "<li>Anti-JCV antibody: positive, index 0.9" in page


def test_two_tabs_saving_at_once_make_one_note(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"ehr_profile": "notes-only"})
    tabs = [Tab(stack), Tab(stack)]  # two launches of the same patient
    answers: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda t=t: answers.append(t.save().json()))
               for t in tabs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(a["saved"] for a in answers) and sorted(a["created"] for a in answers) == [
        False, True]
    assert len(saved(stack, tabs[0], "DocumentReference")) == 1


def test_no_conditional_create_never_duplicates(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"ehr_profile": "no-conditional-create"})
    tabs = [Tab(stack), Tab(stack)]
    threads = [threading.Thread(target=t.save) for t in tabs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tabs[0].save().json()["created"] is False
    assert len(saved(stack, tabs[0], "RiskAssessment")) == 1
    # The identifier search went first, in the same round as the freshness check.
    searches = [r for r in stack.requests_log() if r["method"] == "GET"
                and r["path"] == "/sandbox/fhir/RiskAssessment"
                and r["args"].get("identifier", [""])[0].endswith(tabs[0].identifier)]
    assert searches


def test_no_conditional_create_and_no_search_rely_on_the_ledger(
    make_stack: StackFactory,
) -> None:
    # A note rung that may create but not search: only the app's own ledger knows.
    stack = make_stack(sandbox={"ehr_profile": "no-conditional-create"},
                       scopes=NOTE_ONLY_SCOPES, tenant={"writeback": "note"})
    tab = Tab(stack)
    first = tab.save({"identifier": tab.identifier}).json()
    assert first["created"] is True and first["resourceType"] == "DocumentReference"
    again = Tab(stack).save().json()
    assert again["saved"] is True and again["created"] is False and again["id"] == first["id"]
    assert posts(stack, "DocumentReference") == [201]  # the second save never reached the EHR


def test_read_only_refuses_cleanly_and_says_why(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"ehr_profile": "read-only"})
    tab = Tab(stack)
    assert re.search(r'id="save-button" class="primary"\s+disabled', tab.html)
    assert "neither a RiskAssessment nor a clinical note can be saved" in tab.html
    assert 'id="print-button"' in tab.html and 'id="download-json"' in tab.html
    resp = tab.save()
    assert resp.status_code == 403
    body = resp.json()
    assert body["error"] == "read-only" and "does not accept" in body["message"]
    assert body["summary"].startswith("PML risk (natalizumab)")
    assert posts(stack, "RiskAssessment") == [] and posts(stack, "DocumentReference") == []


def test_tenant_setting_picks_the_rung(make_stack: StackFactory) -> None:
    note = make_stack(tenant={"writeback": "note"})  # a full EHR, notes by choice
    tab = Tab(note)
    assert tab.save().json()["resourceType"] == "DocumentReference"
    asked = [r["args"]["scope"][0] for r in note.requests_log()
             if r["path"] == "/sandbox/auth/authorize"]
    assert "patient/DocumentReference.cs" in asked[0]
    assert "patient/RiskAssessment.s " in asked[0] + " "  # searched for history, not created
    off = make_stack(tenant={"writeback": "none"})
    tab = Tab(off)
    assert "saving to the chart is turned off" in tab.html
    assert tab.save().status_code == 403


def test_history_lists_results_in_either_form(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"ehr_profile": "full"})
    tab = Tab(stack)
    assert tab.save().json()["resourceType"] == "RiskAssessment"
    # The EHR stops taking RiskAssessments: the app learns it from the refusal (its cached
    # CapabilityStatement said otherwise) and the next save takes the note rung.
    stack.control(ehr_profile="notes-only")
    other = Tab(stack)
    body = {"overrides": {"prior_is": "yes", "reason": "azathioprine 2012, outside records"}}
    refused = other.save(body)
    assert refused.status_code == 422 and refused.json()["httpStatus"] == 405
    answer = other.save(body).json()
    assert answer["resourceType"] == "DocumentReference", answer
    items = Tab(stack).assessment().json()["history"]["items"]
    assert sorted(i["resourceType"] for i in items) == ["DocumentReference", "RiskAssessment"]
    note = next(i for i in items if i["resourceType"] == "DocumentReference")
    assert note["overridden"] is True and "per 1,000" in (note["description"] or "")
    page = Tab(stack).html
    assert "DocumentReference/" in page and "RiskAssessment/" in page
