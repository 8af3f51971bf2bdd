"""EHR profiles: each one's writes, and a CapabilityStatement that tells the truth about them."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
import requests
from sandbox_helpers import SCOPE, Smart

from smart_app.sandbox import SandboxConfig, create_sandbox
from smart_app.sandbox.profiles import PROFILES
from smart_app.sandbox.testing import mounted, serve_in_thread

NOTE_SCOPE = SCOPE + " patient/DocumentReference.cs"


def _ra(identifier: str) -> dict[str, Any]:
    return {
        "resourceType": "RiskAssessment",
        "status": "final",
        "identifier": [{"system": "urn:pml-risk", "value": identifier}],
        "subject": {"reference": "Patient/alice"},
    }


def _note(identifier: str) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "identifier": [{"system": "urn:pml-risk", "value": identifier}],
        "subject": {"reference": "Patient/alice"},
        "date": "2026-03-02T10:00:00Z",
        "content": [{"attachment": {"contentType": "text/plain",
                                    "data": base64.b64encode(b"PML risk").decode()}}],
    }


def _capability(smart: Smart) -> dict[str, dict[str, Any]]:
    body = smart.http.get(f"{smart.fhir}/metadata", timeout=10).json()
    return {r["type"]: r for r in body["rest"][0]["resource"]}


def _creates(entry: dict[str, Any]) -> bool:
    return any(i["code"] == "create" for i in entry["interaction"])


@pytest.fixture
def token(smart: Smart) -> str:
    return str(smart.login("app-public", scope=NOTE_SCOPE)["access_token"])


def test_full_creates_both_conditionally(smart: Smart, token: str) -> None:
    types = _capability(smart)
    for rtype in ("RiskAssessment", "DocumentReference"):
        assert _creates(types[rtype]) and types[rtype]["conditionalCreate"] is True
    assert not _creates(types["Observation"])
    cond = {"If-None-Exist": "identifier=urn:pml-risk|n-1"}
    first = smart.post(token, "DocumentReference", _note("n-1"), cond)
    again = smart.post(token, "DocumentReference", _note("n-1"), cond)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


def test_notes_only_refuses_risk_assessment_with_405(smart: Smart, token: str) -> None:
    smart.control(ehr_profile="notes-only")
    types = _capability(smart)
    assert not _creates(types["RiskAssessment"]) and "conditionalCreate" not in types[
        "RiskAssessment"]
    assert {"read", "search-type"} <= {i["code"] for i in types["RiskAssessment"]["interaction"]}
    assert _creates(types["DocumentReference"])
    refused = smart.post(token, "RiskAssessment", _ra("r-1"))
    assert refused.status_code == 405
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert smart.get(token, "RiskAssessment", patient="alice").status_code == 200
    assert smart.post(token, "DocumentReference", _note("n-2")).status_code == 201
    notes = smart.get(token, "DocumentReference", patient="alice",
                      identifier="urn:pml-risk|n-2").json()
    assert notes["total"] == 1


def test_no_conditional_create_ignores_if_none_exist(smart: Smart, token: str) -> None:
    smart.control(ehr_profile="no-conditional-create")
    types = _capability(smart)
    assert _creates(types["DocumentReference"]) and not types["DocumentReference"][
        "conditionalCreate"]
    cond = {"If-None-Exist": "identifier=urn:pml-risk|n-3"}
    first = smart.post(token, "DocumentReference", _note("n-3"), cond)
    second = smart.post(token, "DocumentReference", _note("n-3"), cond)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]  # the duplicate the app must avoid


def test_read_only_creates_nothing(smart: Smart, token: str) -> None:
    smart.control(ehr_profile="read-only")
    assert not any(_creates(entry) for entry in _capability(smart).values())
    assert smart.post(token, "RiskAssessment", _ra("r-2")).status_code == 405
    assert smart.post(token, "DocumentReference", _note("n-4")).status_code == 405
    assert smart.get(token, "DocumentReference", patient="alice").json()["total"] == 0


def test_documents_search_by_date(smart: Smart, token: str) -> None:
    smart.post(token, "DocumentReference", _note("n-5"))
    hit = smart.get(token, "DocumentReference", patient="alice", date="ge2026-03-01").json()
    miss = smart.get(token, "DocumentReference", patient="alice", date="lt2026-03-01").json()
    assert (hit["total"], miss["total"]) == (1, 0)


def test_profile_from_config_and_unknown_names(config: SandboxConfig) -> None:
    with pytest.raises(ValueError, match="known: full"):
        replace(config, ehr_profile="epic-ish-typo")
    app = create_sandbox(replace(config, ehr_profile="read-only"))
    with serve_in_thread(mounted(app)) as root:
        smart = Smart(root, None, None)  # type: ignore[arg-type]
        assert smart.control()["ehr_profile"] == "read-only"
        r = smart.http.post(f"{smart.base}/_control", json={"ehr_profile": "nope"}, timeout=10)
        assert r.status_code == 400 and "unknown EHR profile" in r.json()["error"]
        smart.control(reset=True)
        assert smart.control()["ehr_profile"] == "read-only"  # reset returns to the config's


def test_every_profile_is_described() -> None:
    assert {"full", "notes-only", "no-conditional-create", "read-only"} <= set(PROFILES)
    assert all(p.description for p in PROFILES.values())


ENCOUNTERS = [
    {"resourceType": "Encounter", "id": "alice-enc", "status": "in-progress",
     "class": {"code": "AMB"}, "subject": {"reference": "Patient/alice"}},
    {"resourceType": "Encounter", "id": "bob-enc", "status": "in-progress",
     "class": {"code": "AMB"}, "subject": {"reference": "Patient/bob"}},
]


def _filed(smart: Smart, token: str, body: dict[str, Any]) -> requests.Response:
    return smart.post(token, "DocumentReference", body)


@pytest.mark.parametrize("profile", ["epic-like", "oracle-like"])
def test_vendor_notes_need_an_encounter_of_the_same_patient(smart: Smart, profile: str) -> None:
    smart.control(ehr_profile=profile, put_resources=ENCOUNTERS)
    token = smart.login(scope=NOTE_SCOPE)["access_token"]
    note = {k: v for k, v in _note("n-9").items()
            if profile == "epic-like" or k not in ("identifier", "date")}
    note["content"] = [{"attachment": {"contentType": "text/plain;charset=utf-8",
                                       "data": base64.b64encode(b"PML risk").decode()}}]
    period = {"period": {"end": "2026-03-02T10:00:00Z"}}
    for context in ({**period}, {**period, "encounter": [{"reference": "Encounter/bob-enc"}]}):
        refused = _filed(smart, token, {**note, "context": context})
        assert refused.status_code == 422 and "encounter" in refused.text, refused.text
    ok = _filed(smart, token, {**note, "context": {
        **period, "encounter": [{"reference": "Encounter/alice-enc"}]}})
    assert ok.status_code == 201, ok.text
    stored = smart.get(token, ok.headers["Location"].split("/_history")[0]).json()
    assert "identifier" not in stored  # neither vendor keeps it


def test_oracle_like_refuses_what_its_create_does_not_take(smart: Smart) -> None:
    smart.control(ehr_profile="oracle-like", put_resources=ENCOUNTERS)
    token = smart.login(scope=NOTE_SCOPE)["access_token"]
    text = {"attachment": {"contentType": "text/plain;charset=utf-8",
                           "data": base64.b64encode(b"PML risk").decode()}}
    good = {"resourceType": "DocumentReference", "status": "current",
            "subject": {"reference": "Patient/alice"}, "content": [text],
            "context": {"encounter": [{"reference": "Encounter/alice-enc"}],
                        "period": {"end": "2026-03-02T10:00:00Z"}}}
    for field, value in (("identifier", [{"value": "x"}]), ("description", "PML risk"),
                         ("date", "2026-03-02T10:00:00Z"), ("category", [{"text": "Note"}])):
        refused = _filed(smart, token, {**good, field: value})
        assert refused.status_code == 422, field
        assert "Body contained unsupported fields" in refused.text
    spaced = {"attachment": {**text["attachment"], "contentType": "text/plain; charset=utf-8"}}
    for bad in ({**good, "content": [text, text]}, {**good, "content": [spaced]},
                {**good, "context": {"encounter": good["context"]["encounter"]}}):
        assert _filed(smart, token, bad).status_code == 422
    assert _filed(smart, token, good).status_code == 201
