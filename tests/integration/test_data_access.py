"""The FHIR client against the sandbox: round trips, paging, retries, scopes, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from smart_app.smart.discovery import fetch, parse_capability_statement

from .conftest import FIXTURES, Stack, StackFactory

pytestmark = pytest.mark.integration


def assessment(stack: Stack, patient: str) -> tuple[requests.Response, requests.Session, str]:
    browser = stack.browser()
    page = stack.launch(browser, patient)
    stack.clear_log()
    return browser.get(page + "/assessment", timeout=60), browser, page


def data_requests(stack: Stack) -> list[dict[str, Any]]:
    """The chart reads (the CapabilityStatement, read once for the save button, excluded)."""
    return [r for r in stack.fhir_requests() if r["path"] != "/sandbox/fhir/metadata"]


def _resources_in_fixture(patient: str) -> dict[str, int]:
    bundle = json.loads((FIXTURES / f"{patient}.json").read_text(encoding="utf-8"))
    counts: dict[str, int] = {}
    for entry in bundle["entry"]:
        rtype = entry["resource"]["resourceType"]
        counts[rtype] = counts.get(rtype, 0) + 1
    return counts


def test_heavy_chart_in_one_round_trip(stack: Stack, expected: dict[str, Any]) -> None:
    resp, _, _ = assessment(stack, "heavy")
    data = resp.json()
    assert data["status"] == "ok"
    assert data["fhir"]["roundTrips"] == 1
    fhir = data_requests(stack)
    # Patient + five searches (Observation twice: by code, and by category within a date
    # window for text matches) + the app's saved results (RiskAssessments and notes), all in
    # parallel; and three searches for brain MRIs (reports, imaging studies, procedures).
    assert len(fhir) == 11
    observations = sorted(
        sorted(r["args"]) for r in fhir if r["path"].endswith("/Observation"))
    assert observations == [["_count", "category", "date", "patient"],
                            ["_count", "code", "patient"]]
    by_code = next(r for r in fhir if "code" in r["args"])["args"]["code"]
    assert by_code == ["http://loinc.org|100977-8,http://loinc.org|70173-0"]
    assert data["inputs"]["exposure"]["infusions"] == expected["heavy"]["infusions"]


def test_paging_follows_next_links_in_parallel_waves(
    make_stack: StackFactory, expected: dict[str, Any]
) -> None:
    stack = make_stack(settings={"fhir_page_size": 50})
    resp, _, _ = assessment(stack, "heavy")
    data = resp.json()
    assert data["status"] == "ok"
    assert data["inputs"]["exposure"]["infusions"] == expected["heavy"]["infusions"]
    assert data["inputs"]["antibody"]["index"] == expected["heavy"]["index"]
    # 130+ infusions at 50 a page = 3 pages; labs too: the waves run in parallel.
    assert 3 <= data["fhir"]["roundTrips"] <= 4
    assert data["fhir"]["requests"] == len(data_requests(stack))


def test_page_limit_fails_rather_than_undercounting(make_stack: StackFactory) -> None:
    stack = make_stack(settings={"fhir_page_size": 20, "fhir_max_pages": 2})
    resp, _, _ = assessment(stack, "heavy")
    assert resp.status_code == 502
    assert "too large" in resp.json()["detail"]


def test_medication_reference_resolved_without_one_request_per_infusion(stack: Stack) -> None:
    resp, _, _ = assessment(stack, "medication-reference")
    data = resp.json()
    assert data["status"] == "ok"
    assert data["inputs"]["exposure"]["infusions"] == 20
    # Ten searches (seven for the estimate, three for brain MRIs) and the Patient read, in
    # parallel.
    assert len(data_requests(stack)) == 11
    assert not any(r["path"].startswith("/sandbox/fhir/Medication/") for r in stack.fhir_requests())


def test_local_lab_codes_are_read(stack: Stack) -> None:
    """Observations are searched by category, so unmapped local codes still reach the engine."""
    resp, _, _ = assessment(stack, "local-lab-code")
    data = resp.json()
    assert data["status"] == "ok"
    assert "antibody-local-code" in {w["code"] for w in data["warnings"]}


def test_429_with_retry_after_is_retried(stack: Stack) -> None:
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    stack.control(rate_limit_next=1, clear_requests=True)
    resp = browser.get(page + "/assessment", timeout=60)
    assert resp.status_code == 200
    statuses = sorted(r["status"] for r in data_requests(stack))
    assert statuses == [200] * 11 + [429]
    assert resp.json()["fhir"] == {"roundTrips": 1, "requests": 12}


def test_503_is_retried(stack: Stack) -> None:
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    stack.control(fail_next=[503, 503], clear_requests=True)
    resp = browser.get(page + "/assessment", timeout=60)
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"


def test_server_error_gives_a_clear_error(stack: Stack) -> None:
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    stack.control(fail_next=[500] * 6)  # every request of the wave (the history alone may fail)
    resp = browser.get(page, timeout=60)
    assert resp.status_code == 502
    assert "The chart could not be read" in resp.text
    assert "Traceback" not in resp.text


def test_403_on_a_search_marks_data_incomplete(stack: Stack) -> None:
    """The user's rights may be narrower than the scopes; the app says so, and goes on."""
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    stack.control(fail_next=[403])
    resp = browser.get(page + "/assessment", timeout=60)
    assert resp.status_code == 200
    access = resp.json()["access"]
    assert access["dataMayBeIncomplete"] is True
    assert len(access["withheld"]) == 1
    html = browser.get(page, timeout=60).text  # the next read is complete again
    assert "Data may be incomplete" not in html


def test_scope_not_granted_degrades_and_is_not_requested(make_stack: StackFactory) -> None:
    scopes = (
        "launch openid fhirUser online_access patient/Patient.r patient/Observation.rs "
        "patient/MedicationAdministration.rs patient/MedicationRequest.rs"
    )
    stack = make_stack(scopes=scopes)
    resp, browser, page = assessment(stack, "ex07-prior-is-azathioprine-48")
    data = resp.json()
    assert data["access"]["readOnly"] is True  # no RiskAssessment create: read-only
    assert "MedicationStatement" in data["access"]["withheld"]
    paths = {r["path"] for r in stack.fhir_requests()}
    assert "/sandbox/fhir/MedicationStatement" not in paths  # a 403 is never provoked
    html = browser.get(page, timeout=60).text
    assert "Read-only" in html
    assert "Data may be incomplete" in html


def test_sandbox_403_for_a_scope_not_granted(make_stack: StackFactory) -> None:
    """What the app avoids above: the EHR answers 403 outside the granted scopes."""
    stack = make_stack(scopes="launch openid patient/Patient.r")
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    launch = stack.services.repo.get(page.rsplit("/", 1)[1])
    assert launch is not None
    resp = requests.get(
        f"{stack.iss}/Observation",
        params={"patient": "ex01-negative-30"},
        headers={"Authorization": f"Bearer {launch.tokens.access_token}"},
        timeout=10,
    )
    assert resp.status_code == 403
    data = browser.get(page + "/assessment", timeout=60).json()
    assert data["status"] == "incomplete"
    assert set(data["access"]["withheld"]) >= {"Observation", "MedicationAdministration"}


def test_latency_is_paid_once_per_wave(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"latency_ms": 200})
    resp, _, _ = assessment(stack, "ex01-negative-30")
    assert resp.status_code == 200
    assert resp.elapsed.total_seconds() < 0.9  # five requests of 200 ms each, in parallel


def test_capability_statement_fallback_parses_the_same_endpoints(stack: Stack) -> None:
    http = requests.Session()
    well_known = fetch(http, stack.iss, 5)
    metadata = http.get(f"{stack.iss}/metadata", timeout=5).json()
    legacy = parse_capability_statement(stack.iss, metadata)
    assert legacy.source == "capability-statement"
    assert legacy.authorization_endpoint == well_known.authorization_endpoint
    assert legacy.token_endpoint == well_known.token_endpoint
    assert "S256" in well_known.code_challenge_methods_supported
