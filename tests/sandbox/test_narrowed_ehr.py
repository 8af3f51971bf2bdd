"""An EHR that gives the app less than it asks for, or sends what it should not: a launch that
grants fewer scopes (``withhold=``), types the server does not offer, conflicting copies."""

from __future__ import annotations

import pytest
import requests
from sandbox_helpers import SCOPE, Smart

from smart_app.sandbox import scopes


def test_withhold_grants_the_requested_scopes_minus_those_types(smart: Smart) -> None:
    launch = smart.launch("alice", withhold="MedicationAdministration,Observation")
    token = smart.login(launch=launch)
    granted = set(token["scope"].split())
    requested = set(SCOPE.split())
    assert not any("MedicationAdministration" in s or "Observation" in s for s in granted)
    assert granted == {s for s in requested
                       if "MedicationAdministration" not in s and "Observation" not in s}
    refused = smart.get(token["access_token"], "Observation", patient="alice")
    assert refused.status_code == 403
    assert smart.get(token["access_token"], "Patient/alice").status_code == 200


def test_withhold_must_name_resource_types(smart: Smart) -> None:
    r = requests.get(f"{smart.base}/launch", params={"patient": "alice", "withhold": "x/../y"},
                     allow_redirects=False, timeout=10)
    assert r.status_code == 400 and "withhold" in r.json()["error"]


def test_grant_keeps_wildcards_and_context_scopes() -> None:
    asked = "launch openid patient/*.rs patient/Observation.rs patient/Patient.r"
    assert scopes.grant(asked, v1_only=False, withhold=["Observation"]) == [
        "launch", "openid", "patient/*.rs", "patient/Patient.r"]


def test_the_demo_page_documents_withhold(smart: Smart) -> None:
    html = requests.get(f"{smart.base}/", timeout=10).text
    assert "withhold=" in html and "without medications" in html


def test_a_type_not_offered_is_missing_from_metadata_and_404(smart: Smart) -> None:
    smart.control(not_offered=["MedicationAdministration"])
    metadata = requests.get(f"{smart.fhir}/metadata", timeout=10).json()
    types = {r["type"] for r in metadata["rest"][0]["resource"]}
    assert "MedicationAdministration" not in types and "Observation" in types
    token = smart.login()
    r = smart.get(token["access_token"], "MedicationAdministration", patient="alice")
    assert r.status_code == 404 and r.json()["issue"][0]["code"] == "not-supported"
    smart.control(reset=True)
    assert smart.get(smart.login()["access_token"], "MedicationAdministration",
                     patient="alice").status_code == 200


def test_conflicting_copies_repeat_each_match_with_the_fields_changed(smart: Smart) -> None:
    token = smart.login()["access_token"]
    plain = smart.get(token, "MedicationAdministration", patient="alice").json()
    smart.control(conflicting_copies={"MedicationAdministration": {"status": "entered-in-error"}})
    doubled = smart.get(token, "MedicationAdministration", patient="alice").json()
    matches = [e["resource"] for e in plain["entry"] if e["search"]["mode"] == "match"]
    twice = [e["resource"] for e in doubled["entry"] if e["search"]["mode"] == "match"]
    assert len(twice) == 2 * len(matches) > 0
    assert [r["status"] for r in twice] == ["completed"] * len(matches) + [
        "entered-in-error"] * len(matches)
    assert [r["id"] for r in twice[len(matches):]] == [r["id"] for r in matches]


@pytest.mark.parametrize("bad", [["not a type"], "MedicationStatement", [1]])
def test_not_offered_is_validated(smart: Smart, bad: object) -> None:
    r = requests.post(f"{smart.base}/_control", json={"not_offered": bad}, timeout=10)
    assert r.status_code == 400
