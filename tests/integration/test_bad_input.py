"""Bad input from the EHR or the browser: a 4xx or a 502 page that says what was wrong, never a
500, and never a number from a chart the app could not read.

The cases are the ones an adversarial review reproduced against the running app, each
through a real launch against the sandbox EHR.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from smart_app.sandbox.state import EXTENSION_KEY

from .conftest import Stack

pytestmark = pytest.mark.integration

PATIENT = "ex05-index-1-51-25-infusions"


def _launched(stack: Stack, patient: str = PATIENT) -> tuple[requests.Session, str]:
    browser = stack.browser()
    return browser, stack.launch(browser, patient)


def _fixture_resources(rtype: str) -> list[dict[str, Any]]:
    from .conftest import FIXTURES

    bundle = json.loads((FIXTURES / f"{PATIENT}.json").read_text(encoding="utf-8"))
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _searchset(resources: list[dict[str, Any]]) -> str:
    return json.dumps({"resourceType": "Bundle", "type": "searchset",
                       "entry": [{"resource": r, "search": {"mode": "match"}}
                                 for r in resources]})


@pytest.mark.parametrize("value", ["²", "0" * 5000, "١٢", "-1", "1e3"])
def test_what_if_infusion_count_must_be_ascii_digits(stack: Stack, value: str) -> None:
    browser, page = _launched(stack)
    html = browser.get(page, params={"infusions": value}, timeout=30)
    assert html.status_code == 400, (value, html.status_code)
    assert "Enter a whole number from 0 to 500" in html.text  # beside the field
    resp = browser.get(page + "/assessment", params={"infusions": value}, timeout=30)
    assert resp.status_code == 400
    assert "infusions: expected a whole number" in resp.json()["detail"]


@pytest.mark.parametrize("value", ["١.٥", "1.٥", "²"])
def test_what_if_index_must_be_ascii_digits(stack: Stack, value: str) -> None:
    browser, page = _launched(stack)
    resp = browser.get(page + "/assessment", params={"index": value}, timeout=30)
    assert resp.status_code == 400
    assert resp.json()["error"] == "bad-override"


def test_json_nested_thousands_deep_from_the_ehr_is_a_502(stack: Stack) -> None:
    browser, page = _launched(stack)
    nested = "[" * 100_000 + "]" * 100_000
    stack.overlay.answer("/fhir/Observation",
                         '{"resourceType": "Bundle", "type": "searchset", "entry": ' + nested + "}")
    resp = browser.get(page, timeout=30)
    assert resp.status_code == 502
    assert "The chart could not be read" in resp.text and "nested too deeply" in resp.text


@pytest.mark.parametrize("change", [
    {"code": {"coding": True}},
    {"valueQuantity": {"value": "1.51"}},
    {"valueQuantity": {"value": 1e300}},
    {"category": 5},
])
def test_malformed_observation_is_a_502_naming_the_element(
    stack: Stack, change: dict[str, Any]
) -> None:
    browser, page = _launched(stack)
    observations = _fixture_resources("Observation")
    target = next(o for o in observations if o["id"].endswith("jcvidx-001"))
    target.update(change)
    stack.overlay.answer("/fhir/Observation", _searchset(observations))
    resp = browser.get(page + "/assessment", timeout=30)
    assert resp.status_code == 502
    body = resp.json()
    assert body["error"] == "malformed-resource"
    assert f"Observation/{target['id']}" in body["detail"]


def test_huge_number_from_the_ehr_is_refused_not_assessed(stack: Stack) -> None:
    browser, page = _launched(stack)
    observations = _fixture_resources("Observation")
    text = _searchset(observations).replace('"value": 1.51', '"value": 1e99999999', 1)
    assert "1e99999999" in text
    stack.overlay.answer("/fhir/Observation", text)
    resp = browser.get(page + "/assessment", timeout=30)
    assert resp.status_code == 502
    assert resp.json()["error"] == "malformed-resource"


def test_capability_statement_with_rest_not_an_array_is_not_a_500(stack: Stack) -> None:
    stack.overlay.answer("/fhir/metadata",
                         json.dumps({"resourceType": "CapabilityStatement", "rest": 5}))
    browser, page = _launched(stack)
    resp = browser.get(page + "/assessment", timeout=30)
    assert resp.status_code == 200
    assert resp.json()["save"]["enabled"] is False


def test_patient_read_answered_with_another_resource_type_is_an_ehr_error(stack: Stack) -> None:
    browser, page = _launched(stack)
    stack.overlay.answer(f"/fhir/Patient/{PATIENT}",
                         json.dumps({"resourceType": "Bundle", "type": "searchset"}))
    resp = browser.get(page, timeout=30)
    assert resp.status_code == 502
    assert "another kind of resource" in resp.text


def test_token_patient_that_is_a_path_segment_reads_nothing(stack: Stack) -> None:
    """A token ``patient`` of ``..`` made the Patient read ``GET {base}/``."""
    store = stack.sandbox.extensions[EXTENSION_KEY].store
    store.put({"resourceType": "Patient", "id": "..", "name": [{"family": "Dots"}]})
    stack.clear_log()
    browser = stack.browser()
    callback = stack.to_callback(browser, f"{stack.base}/sandbox/launch?patient=..")
    resp = browser.get(callback.headers["Location"], allow_redirects=False, timeout=30)
    assert resp.status_code == 400
    assert "patient" in resp.text.lower()
    paths = [r["path"] for r in stack.fhir_requests()]
    assert not any(p.rstrip("/") == "/sandbox/fhir" or p.startswith("/sandbox/fhir/Patient")
                   or "Observation" in p for p in paths), paths
