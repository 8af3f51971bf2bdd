"""The vendor-like profiles: discovery shapes, what is offered, and how searches and tokens behave.

Each behaviour is documented with its published source in smart_app/sandbox/README.md.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from sandbox_helpers import SCOPE, Smart

from smart_app.sandbox import SandboxConfig, create_sandbox
from smart_app.sandbox.testing import mounted, serve_in_thread

MEDS = SCOPE + " patient/MedicationStatement.rs patient/MedicationRequest.rs"


def _metadata(smart: Smart) -> dict[str, dict[str, Any]]:
    body = smart.http.get(f"{smart.fhir}/metadata", timeout=10).json()
    return {r["type"]: r for r in body["rest"][0]["resource"]}


def test_oracle_like_discovery_and_id_token(smart: Smart) -> None:
    smart.control(ehr_profile="oracle-like")
    config = smart.http.get(f"{smart.fhir}/.well-known/smart-configuration", timeout=10).json()
    assert "issuer" not in config and config["jwks_uri"] == f"{smart.base}/jwk"
    assert "permission-v2" not in config["capabilities"]
    assert "authorize-post" in config["capabilities"]
    issuer = f"{smart.base}/tenants/tenant-1/oidc/idsps/tenant-1/"  # the config's tenant
    openid = smart.http.get(issuer + ".well-known/openid-configuration", timeout=10)
    assert openid.status_code == 200 and openid.json()["issuer"] == issuer
    assert smart.http.get(f"{smart.fhir}/.well-known/openid-configuration",
                          timeout=10).status_code == 404
    tokens = smart.login()
    assert tokens["expires_in"] == 570
    keys = KeySet.import_key_set(smart.http.get(config["jwks_uri"], timeout=10).json())
    claims = jwt.decode(tokens["id_token"], keys).claims
    assert claims["iss"] == issuer
    assert "patient/Observation.read" in tokens["scope"].split()  # v2 asked, v1 granted


def test_epic_like_discovery_and_grant(smart: Smart) -> None:
    smart.control(ehr_profile="epic-like")
    config = smart.http.get(f"{smart.fhir}/.well-known/smart-configuration", timeout=10).json()
    assert "issuer" not in config and "jwks_uri" not in config
    assert "authorize-post" not in config["capabilities"]
    openid = smart.http.get(f"{smart.base}/auth/.well-known/openid-configuration", timeout=10)
    assert openid.json()["issuer"] == f"{smart.base}/auth"
    tokens = smart.login()
    assert "Observation.read" in tokens["scope"].split()
    assert "Observation.search" in tokens["scope"].split()
    assert not any(s.startswith("patient/") for s in tokens["scope"].split())
    # The grant is enforced as issued, whatever its spelling in the answer.
    assert smart.get(tokens["access_token"], "Observation", patient="alice").status_code == 200


def test_refresh_tokens_do_not_rotate(smart: Smart) -> None:
    smart.control(ehr_profile="epic-like")
    tokens = smart.login()
    refresh = tokens["refresh_token"]
    for _ in range(2):
        again = smart.refresh("app-public", refresh)
        assert again.status_code == 200, again.text
        assert "refresh_token" not in again.json()
    smart.control(ehr_profile="full")
    rotated = smart.refresh("app-public", refresh)
    assert rotated.status_code == 200 and rotated.json()["refresh_token"] != refresh
    assert smart.refresh("app-public", refresh).status_code == 400  # rotation kills the old


def test_oracle_like_offers_less_and_caps_pages(smart: Smart) -> None:
    smart.control(ehr_profile="oracle-like")
    types = _metadata(smart)
    assert not {"MedicationStatement", "Medication", "RiskAssessment"} & set(types)
    assert not any("searchInclude" in entry for entry in types.values())
    assert "identifier" not in {p["name"] for p in types["DocumentReference"]["searchParam"]}
    token = smart.login(scope=MEDS.replace(".rs", ".read").replace(".cs", ".write")
                        .replace("Patient.r ", "Patient.read "))["access_token"]
    assert smart.get(token, "MedicationStatement", patient="alice").status_code == 404
    refused = smart.get(token, "MedicationAdministration", patient="alice",
                        _include="MedicationAdministration:medication")
    assert refused.status_code == 400
    admins = smart.get(token, "MedicationAdministration", patient="alice").json()
    first = admins["entry"][0]["resource"]
    assert first["medicationReference"] == {"reference": "#natalizumab"}
    assert first["contained"][0]["id"] == "natalizumab"


def test_page_cap(smart: Smart) -> None:
    smart.control(ehr_profile="oracle-like")
    token = smart.login(scope="launch openid fhirUser patient/Observation.read",
                        launch=smart.launch("many"))["access_token"]
    page = smart.get(token, "Observation", patient="many", _count="1000").json()
    assert len(page["entry"]) == 200 and page["total"] == 1200
    assert any(link["relation"] == "next" for link in page["link"])


def test_medication_list_served_as_requests(config: SandboxConfig, tmp_path: Path,
                                            rsa_key: RSAKey, ec_key: ECKey) -> None:
    chart = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "carol"}},
        {"resource": {"resourceType": "MedicationStatement", "id": "aza", "status": "completed",
                      "subject": {"reference": "Patient/carol"},
                      "effectivePeriod": {"start": "2019-01-01"},
                      "medicationCodeableConcept": {"text": "azathioprine 50 mg"}}},
        {"resource": {"resourceType": "MedicationStatement", "id": "later", "status": "intended",
                      "subject": {"reference": "Patient/carol"},
                      "medicationCodeableConcept": {"text": "methotrexate"}}},
    ]}
    (tmp_path / "carol.json").write_text(json.dumps(chart), encoding="utf-8")
    (tmp_path / "index.json").write_text(json.dumps([{"id": "carol", "name": "Carol"}]),
                                         encoding="utf-8")
    app = create_sandbox(replace(config, fixtures_dir=tmp_path, ehr_profile="epic-like"))
    with serve_in_thread(mounted(app)) as root:
        smart = Smart(root, rsa_key, ec_key)
        token = smart.login(scope=MEDS, launch=smart.launch("carol"))["access_token"]
        assert smart.get(token, "MedicationStatement", patient="carol").status_code == 404
        found = smart.get(token, "MedicationRequest", patient="carol").json()
        served = {e["resource"]["id"]: e["resource"] for e in found["entry"]}
        assert set(served) == {"ms-aza", "ms-later"}
        aza = served["ms-aza"]
        assert (aza["status"], aza["intent"], aza["reportedBoolean"]) == (
            "completed", "order", True)
        assert aza["authoredOn"] == "2019-01-01"
        assert served["ms-later"]["intent"] == "plan"  # intended: not evidence of use
        assert found["entry"][0]["fullUrl"].endswith("/MedicationRequest/ms-aza")


def test_medication_list_served_as_it_is_where_the_server_offers_it(
        config: SandboxConfig, tmp_path: Path, rsa_key: RSAKey, ec_key: ECKey) -> None:
    chart = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "carol"}},
        {"resource": {"resourceType": "MedicationStatement", "id": "aza", "status": "completed",
                      "subject": {"reference": "Patient/carol"},
                      "medicationCodeableConcept": {"text": "azathioprine 50 mg"}}},
    ]}
    (tmp_path / "carol.json").write_text(json.dumps(chart), encoding="utf-8")
    app = create_sandbox(replace(config, fixtures_dir=tmp_path, ehr_profile="full"))
    with serve_in_thread(mounted(app)) as root:
        smart = Smart(root, rsa_key, ec_key)
        token = smart.login(scope=MEDS, launch=smart.launch("carol"))["access_token"]
        found = smart.get(token, "MedicationStatement", patient="carol").json()
        assert [(e["resource"]["resourceType"], e["resource"]["id"]) for e in found["entry"]] == [
            ("MedicationStatement", "aza")]
        assert smart.get(token, "MedicationRequest", patient="carol").json().get("entry", []) == []
