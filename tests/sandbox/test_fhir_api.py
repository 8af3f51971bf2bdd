"""FHIR API: token and scope enforcement, search parameters, paging, _include and create."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sandbox_helpers import Smart


def _ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


@pytest.fixture
def token(smart: Smart) -> str:
    return str(smart.login("app-public")["access_token"])


def test_token_required(smart: Smart) -> None:
    r = smart.get(None, "Patient/alice")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["resourceType"] == "OperationOutcome"
    r = smart.get("made-up", "Observation", patient="alice")
    assert r.status_code == 401 and "invalid_token" in r.headers["WWW-Authenticate"]
    r = smart.http.post(f"{smart.fhir}/RiskAssessment", json={})
    assert r.status_code == 401


def test_expired_token(smart: Smart) -> None:
    smart.control(token_lifetime=1)
    token = smart.login("app-public")
    assert token["expires_in"] == 1
    assert smart.get(token["access_token"], "Patient/alice").status_code == 200
    time.sleep(1.1)
    r = smart.get(token["access_token"], "Patient/alice")
    assert r.status_code == 401 and "invalid_token" in r.headers["WWW-Authenticate"]
    fresh = smart.refresh("app-public", token["refresh_token"])
    assert fresh.status_code == 200
    assert smart.get(fresh.json()["access_token"], "Patient/alice").status_code == 200


def test_read(smart: Smart, token: str) -> None:
    r = smart.get(token, "Observation/alice-obs-1")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/fhir+json")
    assert r.json()["id"] == "alice-obs-1"
    assert smart.get(token, "Observation/nope").status_code == 404
    assert smart.get(token, "Medication/natalizumab").status_code == 200  # not in a compartment


def test_scope_not_granted_is_403(smart: Smart) -> None:
    token = smart.login("app-public", "launch patient/Patient.r patient/Observation.s")[
        "access_token"
    ]
    r = smart.get(token, "Condition", patient="alice")
    assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"
    assert smart.get(token, "Observation/alice-obs-1").status_code == 403  # s but no r
    assert smart.get(token, "Observation", patient="alice").status_code == 200
    assert smart.get(token, "Patient", _id="alice").status_code == 403  # r but no s
    ra = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "Patient/alice"},
    }
    assert smart.post(token, "RiskAssessment", ra).status_code == 403


def test_wildcard_and_v1_scopes(smart: Smart) -> None:
    token = smart.login("app-public", "launch patient/*.rs")["access_token"]
    assert smart.get(token, "Condition", patient="alice").status_code == 200
    assert smart.get(token, "Observation/alice-obs-2").status_code == 200
    token = smart.login("app-public", "launch patient/Observation.read")["access_token"]
    assert smart.get(token, "Observation", patient="alice").status_code == 200
    assert smart.get(token, "Patient/alice").status_code == 403


def test_user_scope_reaches_any_patient(smart: Smart) -> None:
    token = smart.login("app-public", "launch user/Observation.rs")["access_token"]
    assert smart.get(token, "Observation/bob-obs-1").status_code == 200
    r = smart.get(token, "Observation", patient="bob")
    assert r.status_code == 200 and r.json()["total"] == 2


def test_other_patients_data_is_403(smart: Smart, token: str) -> None:
    assert smart.get(token, "Patient/bob").status_code == 403
    assert smart.get(token, "Observation/bob-obs-1").status_code == 403
    assert smart.get(token, "Observation", patient="bob").status_code == 403
    assert smart.get(token, "Observation", subject="Patient/bob").status_code == 403
    assert smart.get(token, "Observation", patient="alice,bob").status_code == 403


def test_search_without_patient_is_restricted_to_token_patient(smart: Smart, token: str) -> None:
    r = smart.get(token, "Observation")
    assert r.status_code == 200
    assert {e["resource"]["subject"]["reference"] for e in r.json()["entry"]} == {"Patient/alice"}


def test_search_parameters(smart: Smart, token: str) -> None:
    def ids(**params: Any) -> list[str]:
        r = smart.get(token, "Observation", **params)
        assert r.status_code == 200, r.text
        return _ids(r.json())

    assert len(ids(patient="alice")) == 5
    assert len(ids(patient="Patient/alice")) == 5
    assert ids(patient="alice", code="http://loinc.org|JCV-IDX") == ["alice-obs-3"]
    assert ids(patient="alice", code="JCV-IDX") == ["alice-obs-3"]
    assert len(ids(patient="alice", code="JCV-IDX,http://loinc.org|JCV-AB")) == 4
    assert ids(patient="alice", code="http://other|JCV-IDX") == []
    assert len(ids(patient="alice", status="final")) == 3
    assert len(ids(patient="alice", status="final,preliminary")) == 4
    assert ids(patient="alice", date="ge2025-01-15") == ["alice-obs-3", "alice-obs-4"]
    assert ids(patient="alice", date="gt2025-01-15T10:00:00Z") == ["alice-obs-4"]
    assert ids(patient="alice", date="lt2024-01-15T10:00:00Z") == ["alice-obs-5"]
    assert ids(patient="alice", date="le2024-01") == ["alice-obs-1", "alice-obs-5"]
    assert ids(patient="alice", date="2024") == ["alice-obs-1", "alice-obs-2"]
    r = smart.get(token, "Observation", patient="alice", date=["ge2024", "lt2025"])
    assert _ids(r.json()) == ["alice-obs-1", "alice-obs-2"]
    assert ids(identifier="urn:lab|alice-3") == ["alice-obs-3"]
    assert ids(_id="alice-obs-2,alice-obs-4") == ["alice-obs-2", "alice-obs-4"]
    assert ids(patient="alice", category="laboratory") == ids(patient="alice")
    assert ids(patient="alice", _sort="date")[0] == "alice-obs-5"
    assert ids(patient="alice", _sort="-date")[:2] == ["alice-obs-4", "alice-obs-3"]


def test_medication_administration_code_and_include(smart: Smart, token: str) -> None:
    r = smart.get(
        token,
        "MedicationAdministration",
        patient="alice",
        code="354770",
        _include="MedicationAdministration:medication",
    )
    bundle = r.json()
    assert bundle["total"] == 3 and len(_ids(bundle)) == 3
    assert _ids(bundle, "include") == ["natalizumab"]
    include = [e for e in bundle["entry"] if e["search"]["mode"] == "include"][0]
    assert include["fullUrl"] == f"{smart.fhir}/Medication/natalizumab"


def test_bad_search_is_400(smart: Smart, token: str) -> None:
    for params in ({"foo": "bar"}, {"date": "yesterday"}, {"_count": "x"}, {"_sort": "code"}):
        r = smart.get(token, "Observation", patient="alice", **params)
        assert r.status_code == 400, params
        assert r.json()["resourceType"] == "OperationOutcome"
    assert smart.get(token, "NotAType", patient="alice").status_code == 404


def test_paging(smart: Smart) -> None:
    token = smart.login(
        "app-public", "launch/patient patient/Observation.rs", launch=None, patient="many"
    )
    url: str | None = f"{smart.fhir}/Observation"
    params: dict[str, Any] | None = {"patient": "many", "code": "PLT", "_count": 250}
    seen: list[str] = []
    pages = 0
    while url:
        r = smart.http.get(
            url, params=params, headers={"Authorization": f"Bearer {token['access_token']}"}
        )
        assert r.status_code == 200, r.text
        bundle = r.json()
        assert bundle["total"] == 600
        seen += _ids(bundle)
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        params = None
        pages += 1
    assert pages == 3 and len(seen) == len(set(seen)) == 600
    default = smart.get(token["access_token"], "Observation", patient="many").json()
    assert len(default["entry"]) == 50 and default["total"] == 1200
    big = smart.get(token["access_token"], "Observation", patient="many", _count=5000).json()
    assert len(big["entry"]) == 1000
    none = smart.get(token["access_token"], "Observation", patient="many", _count=0).json()
    assert none["total"] == 1200 and none["entry"] == []


def _ra(identifier: str = "run-1", patient: str = "alice") -> dict[str, Any]:
    return {
        "resourceType": "RiskAssessment",
        "status": "final",
        "identifier": [{"system": "urn:pml-risk", "value": identifier}],
        "subject": {"reference": f"Patient/{patient}"},
        "prediction": [{"probabilityDecimal": 0.0011}],
    }


def test_create_risk_assessment(smart: Smart, token: str) -> None:
    r = smart.post(token, "RiskAssessment", _ra())
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["id"] and created["meta"]["versionId"] == "1"
    assert r.headers["Location"] == f"{smart.fhir}/RiskAssessment/{created['id']}/_history/1"
    found = smart.get(token, "RiskAssessment", patient="alice", identifier="urn:pml-risk|run-1")
    assert _ids(found.json()) == [created["id"]]


def test_conditional_create_twice_gives_one(smart: Smart, token: str) -> None:
    cond = {"If-None-Exist": "identifier=urn:pml-risk|run-7"}
    first = smart.post(token, "RiskAssessment", _ra("run-7"), cond)
    second = smart.post(token, "RiskAssessment", _ra("run-7"), cond)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    found = smart.get(token, "RiskAssessment", identifier="urn:pml-risk|run-7").json()
    assert found["total"] == 1


def test_concurrent_conditional_creates_give_one(smart: Smart, token: str) -> None:
    cond = {"If-None-Exist": "identifier=urn:pml-risk|race"}
    statuses: list[int] = []

    def post() -> None:
        statuses.append(smart.post(token, "RiskAssessment", _ra("race"), cond).status_code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 7 + [201]


def test_conditional_create_multiple_matches_is_412(smart: Smart, token: str) -> None:
    r = smart.post(token, "RiskAssessment", _ra(), {"If-None-Exist": "identifier=urn:dup|twice"})
    assert r.status_code == 412 and r.json()["resourceType"] == "OperationOutcome"


def test_invalid_risk_assessment_is_400(smart: Smart, token: str) -> None:
    bad = _ra()
    bad["status"] = 42
    r = smart.post(token, "RiskAssessment", bad)
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    no_subject = {k: v for k, v in _ra().items() if k != "subject"}
    assert smart.post(token, "RiskAssessment", no_subject).status_code == 400
    assert smart.post(token, "RiskAssessment", {"resourceType": "Patient"}).status_code == 400


def test_risk_assessment_for_another_patient_is_403(smart: Smart, token: str) -> None:
    assert smart.post(token, "RiskAssessment", _ra(patient="bob")).status_code == 403


def test_no_risk_assessment_mode(smart: Smart, token: str) -> None:
    smart.control(no_risk_assessment=True)
    r = smart.post(token, "RiskAssessment", _ra())
    assert r.status_code == 404 and r.json()["issue"][0]["code"] == "not-supported"


def test_two_sandboxes_share_nothing(smart: Smart, config: Any) -> None:
    from smart_app.sandbox import create_sandbox
    from smart_app.sandbox.testing import mounted, serve_in_thread

    token = smart.login("app-public")["access_token"]
    assert smart.post(token, "RiskAssessment", _ra("only-here")).status_code == 201
    smart.control(latency_ms=5)
    with serve_in_thread(mounted(create_sandbox(config))) as other_root:
        other = type(smart)(other_root, smart.rsa_key, smart.ec_key)
        assert other.get(token, "Patient/alice").status_code == 401
        assert other.control()["latency_ms"] == 0
        fresh = other.login("app-public")["access_token"]
        found = other.get(fresh, "RiskAssessment", identifier="urn:pml-risk|only-here").json()
        assert found["total"] == 0
