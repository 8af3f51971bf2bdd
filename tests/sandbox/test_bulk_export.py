"""Backend Services tokens and the Group ``$export`` of the sandbox, over real HTTP.

The worklist's integration tests drive the same endpoints with the real client; these pin the
server side: what it refuses, and what each vendor knob makes it do.
"""

from __future__ import annotations

import gzip
import json
import time
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from sandbox_helpers import Smart

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SYSTEM = ("system/Patient.rs system/Observation.rs system/MedicationAdministration.rs "
          "system/Medication.rs")
GROUP = "natalizumab-cohort"
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def backend_token(smart: Smart, scope: str = SYSTEM, client_id: str = "app-rs384",
                  **assertion: Any) -> requests.Response:
    data = {"grant_type": "client_credentials", "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": smart.assertion(client_id, **assertion)}
    return smart.http.post(smart.token_url, data=data, timeout=10)


def bulk(smart: Smart, **changes: Any) -> dict[str, Any]:
    r = smart.http.post(f"{smart.base}/_control/bulk", json=changes, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture
def token(smart: Smart) -> str:
    r = backend_token(smart)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def kick_off(smart: Smart, token: str, headers: dict[str, str] | None = None,
             **params: str) -> requests.Response:
    return smart.http.get(f"{smart.fhir}/Group/{GROUP}/$export", params=params,
                          headers={"Authorization": f"Bearer {token}", **(headers or ASYNC)},
                          timeout=10)


def manifest(smart: Smart, token: str, **params: str) -> tuple[str, dict[str, Any]]:
    r = kick_off(smart, token, **params)
    assert r.status_code == 202, r.text
    status = r.headers["Content-Location"]
    for _ in range(20):
        polled = smart.http.get(status, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        if polled.status_code == 200:
            return status, dict(polled.json())
        assert polled.status_code in (202, 500), polled.text
        time.sleep(float(polled.headers.get("Retry-After", "0")))
    raise AssertionError("the export never completed")


def lines(response: requests.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def test_backend_token_is_short_lived_system_only_and_not_refreshable(smart: Smart) -> None:
    r = backend_token(smart, scope=f"{SYSTEM} patient/Observation.rs launch offline_access")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["scope"].split()) == set(SYSTEM.split())
    assert 0 < body["expires_in"] <= 300
    assert "refresh_token" not in body and "patient" not in body
    # A system token reads any patient's data (the point of a population export).
    bob = smart.get(body["access_token"], "Observation", patient="bob")
    assert bob.status_code == 200 and bob.json()["total"] == 2


@pytest.mark.parametrize("case, expected", [
    ("no-system-scope", "invalid_scope"),
    ("public-client", "invalid_client"),
    ("replayed-jti", "invalid_client"),
    ("long-exp", "invalid_client"),
])
def test_backend_token_refusals(smart: Smart, case: str, expected: str) -> None:
    if case == "no-system-scope":
        r = backend_token(smart, scope="patient/Observation.rs")
    elif case == "public-client":
        r = smart.http.post(smart.token_url, data={"grant_type": "client_credentials",
                                                   "scope": SYSTEM, "client_id": "app-public"})
    elif case == "replayed-jti":
        assert backend_token(smart, jti="once").status_code == 200
        r = backend_token(smart, jti="once")
    else:
        r = backend_token(smart, exp_in=900)
    assert r.status_code in (400, 401), r.text
    assert r.json()["error"] == expected


def test_export_round_trip(smart: Smart, token: str) -> None:
    status, body = manifest(smart, token, _type="Patient,Observation,MedicationAdministration,"
                                               "Medication")
    assert body["requiresAccessToken"] is True
    assert body["transactionTime"].endswith("Z")
    by_type: dict[str, list[dict[str, Any]]] = {}
    auth = {"Authorization": f"Bearer {token}"}
    for item in body["output"]:
        assert smart.http.get(item["url"], timeout=10).status_code == 401  # token required
        r = smart.http.get(item["url"], headers={**auth, "Accept-Encoding": "gzip"}, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
        assert r.headers["Content-Type"].startswith("application/fhir+ndjson")
        got = lines(r)
        assert len(got) == item["count"]
        by_type.setdefault(item["type"], []).extend(got)
    assert sorted(p["id"] for p in by_type["Patient"]) == ["alice", "bob", "many"]
    assert len(by_type["MedicationAdministration"]) == 3
    assert [m["id"] for m in by_type["Medication"]] == ["natalizumab"]  # referenced only
    assert len(by_type["Observation"]) == 5 + 2 + 1200
    assert smart.http.delete(status, headers=auth, timeout=10).status_code == 202
    assert smart.http.get(status, headers=auth, timeout=10).status_code == 404


def test_type_filter_narrows_and_is_validated(smart: Smart, token: str) -> None:
    query = "Observation?code=http://loinc.org|JCV-IDX,http://loinc.org|X"
    _, body = manifest(smart, token, _type="Patient,Observation", _typeFilter=query)
    [obs] = [o for o in body["output"] if o["type"] == "Observation"]
    assert obs["count"] == 1
    bad = kick_off(smart, token, _type="Observation",
                   _typeFilter="Observation?_include=Observation:patient")
    assert bad.status_code == 400 and "_include" in bad.text
    # Decoded once, as servers do: a filter the client encoded twice is refused, not ignored.
    twice = kick_off(smart, token, _type="Observation", _typeFilter=quote(query, safe=""))
    assert twice.status_code == 400 and "expected Type?query" in twice.text
    bulk(smart, type_filter=False)
    refused = kick_off(smart, token, _type="Observation", _typeFilter=query)
    assert refused.status_code == 400 and "_typeFilter" in refused.text
    lenient = kick_off(smart, token, {**ASYNC, "Prefer": "respond-async, handling=lenient"},
                       _type="Observation", _typeFilter=query)
    assert lenient.status_code == 202


def test_kick_off_refusals(smart: Smart, token: str) -> None:
    assert kick_off(smart, token, {"Accept": "application/fhir+json"}).status_code == 400
    missing = smart.http.get(f"{smart.fhir}/Group/nobody/$export",
                             headers={"Authorization": f"Bearer {token}", **ASYNC}, timeout=10)
    assert missing.status_code == 404
    assert kick_off(smart, token, _elements="id").status_code == 400
    launch_token = smart.login("app-public")["access_token"]  # patient-level: not a population
    assert kick_off(smart, launch_token).status_code == 403


def test_without_medication_administration(smart: Smart, token: str) -> None:
    bulk(smart, no_medication_administration=True)
    r = kick_off(smart, token, _type="Patient,MedicationAdministration")
    assert r.status_code == 400
    assert "MedicationAdministration is not supported" in r.json()["issue"][0]["diagnostics"]
    _, body = manifest(smart, token, _type="Patient,Observation")
    assert {o["type"] for o in body["output"]} == {"Patient", "Observation"}
    # Per-patient searches still work under the backend token (the client's fallback).
    searched = smart.get(token, "MedicationAdministration", patient="alice")
    assert searched.status_code == 200 and searched.json()["total"] == 3


def test_slow_export_and_transient_errors(smart: Smart, token: str) -> None:
    bulk(smart, slow_polls=2, transient_errors=1, retry_after=0)
    r = kick_off(smart, token, _type="Patient")
    status = r.headers["Content-Location"]
    auth = {"Authorization": f"Bearer {token}"}
    first = smart.http.get(status, headers=auth, timeout=10)
    assert first.status_code == 500
    assert first.json()["issue"][0]["code"] == "transient"
    answers = [smart.http.get(status, headers=auth, timeout=10) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 200]
    assert answers[0].headers["Retry-After"] == "0"


@pytest.mark.parametrize("mode", ["presigned", "redirect"])
def test_storage_never_accepts_the_token(smart: Smart, token: str, mode: str) -> None:
    bulk(smart, download=mode)
    _, body = manifest(smart, token, _type="Patient")
    [item] = body["output"]
    auth = {"Authorization": f"Bearer {token}"}
    if mode == "presigned":
        assert body["requiresAccessToken"] is False
        storage_url = item["url"]
    else:
        assert body["requiresAccessToken"] is True
        hop = smart.http.get(item["url"], headers=auth, allow_redirects=False, timeout=10)
        assert hop.status_code == 307
        storage_url = hop.headers["Location"]
        assert urlsplit(storage_url).hostname != urlsplit(item["url"]).hostname
    assert smart.http.get(storage_url, headers=auth, timeout=10).status_code == 400
    assert bulk(smart)["tokens_at_storage"] == 1
    plain = smart.http.get(storage_url, timeout=10)
    assert plain.status_code == 200 and len(lines(plain)) == 3
    tampered = smart.http.get(storage_url.replace("sig=", "sig=x"), timeout=10)
    assert tampered.status_code == 403


def test_since_exports_only_what_changed(smart: Smart, token: str) -> None:
    _, first = manifest(smart, token, _type="Observation")
    launch = smart.login("app-public")  # alice
    created = smart.post(launch["access_token"], "RiskAssessment",
                         {"resourceType": "RiskAssessment", "status": "final",
                          "subject": {"reference": "Patient/alice"}})
    assert created.status_code == 201
    system = backend_token(smart, scope="system/RiskAssessment.rs system/Observation.rs")
    _, later = manifest(smart, system.json()["access_token"], _type="RiskAssessment,Observation",
                        _since=first["transactionTime"])
    assert [(o["type"], o["count"]) for o in later["output"]] == [("RiskAssessment", 1)]


def test_job_files_belong_to_the_client_that_started_it(smart: Smart, token: str) -> None:
    status, body = manifest(smart, token, _type="Patient")
    other = backend_token(smart, client_id="app-es384", alg="ES384").json()["access_token"]
    auth = {"Authorization": f"Bearer {other}"}
    assert smart.http.get(status, headers=auth, timeout=10).status_code == 403
    assert smart.http.get(body["output"][0]["url"], headers=auth, timeout=10).status_code == 403
    gz = smart.http.get(body["output"][0]["url"], headers={"Authorization": f"Bearer {token}"},
                        stream=True, timeout=10)
    raw = gz.raw.read()  # not decoded: the wire bytes are gzip
    assert len(json.loads(gzip.decompress(raw).splitlines()[0])["id"]) > 0
