"""Discovery documents, CapabilityStatement, home page, launch and style — no token needed."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from sandbox_helpers import Smart

CAPABILITIES = {
    "launch-ehr",
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-standalone-patient",
    "context-banner",
    "context-style",
    "sso-openid-connect",
    "permission-v2",
    "permission-v1",
    "permission-patient",
    "permission-offline",
    "permission-online",
}


def test_smart_configuration(smart: Smart) -> None:
    r = smart.http.get(f"{smart.fhir}/.well-known/smart-configuration")
    assert r.status_code == 200
    doc = r.json()
    assert doc["issuer"] == smart.fhir
    assert doc["authorization_endpoint"] == f"{smart.base}/auth/authorize"
    assert doc["token_endpoint"] == f"{smart.base}/auth/token"
    assert doc["jwks_uri"] == f"{smart.fhir}/.well-known/jwks.json"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["grant_types_supported"]) == {
        "authorization_code", "refresh_token", "client_credentials"}
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "none",
        "client_secret_basic",
        "private_key_jwt",
    }
    assert doc["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert "launch/patient" in doc["scopes_supported"]
    assert set(doc["capabilities"]) >= CAPABILITIES


def test_v1_only_drops_permission_v2(smart: Smart) -> None:
    smart.control(v1_only=True)
    doc = smart.http.get(f"{smart.fhir}/.well-known/smart-configuration").json()
    assert "permission-v2" not in doc["capabilities"]
    assert "permission-v1" in doc["capabilities"]
    assert all(".rs" not in s and ".cruds" not in s for s in doc["scopes_supported"])


def test_openid_configuration_and_jwks(smart: Smart) -> None:
    doc = smart.http.get(f"{smart.fhir}/.well-known/openid-configuration").json()
    assert doc["issuer"] == smart.fhir
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    jwks = smart.http.get(doc["jwks_uri"]).json()
    (key,) = jwks["keys"]
    assert key["kty"] == "RSA" and key["kid"] and "d" not in key


def test_capability_statement(smart: Smart) -> None:
    r = smart.http.get(f"{smart.fhir}/metadata")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/fhir+json")
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    rest = cs["rest"][0]
    (ext,) = rest["security"]["extension"]
    uris = {e["url"]: e["valueUri"] for e in ext["extension"]}
    assert uris == {"authorize": f"{smart.base}/auth/authorize", "token": f"{smart.token_url}"}
    ra = next(res for res in rest["resource"] if res["type"] == "RiskAssessment")
    assert {"code": "create"} in ra["interaction"]
    assert ra["conditionalCreate"] is True
    assert "identifier" in {p["name"] for p in ra["searchParam"]}

    smart.control(no_risk_assessment=True)
    cs = smart.http.get(f"{smart.fhir}/metadata").json()
    assert "RiskAssessment" not in {res["type"] for res in cs["rest"][0]["resource"]}


def test_home_page_lists_patients_escaped(smart: Smart) -> None:
    r = smart.http.get(f"{smart.base}/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    html = r.text
    assert "Alice Adams" in html and "small chart" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and "a&amp;b" in html
    assert f'href="{smart.base}/launch?patient=alice"' in html
    assert "script-src" not in html


def test_launch_redirects_to_app(smart: Smart) -> None:
    r = smart.http.get(f"{smart.base}/launch", params={"patient": "alice"}, allow_redirects=False)
    assert r.status_code == 302
    url = urlparse(r.headers["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "http://app.test/launch"
    query = parse_qs(url.query)
    assert query["iss"] == [smart.fhir] and query["launch"][0]
    assert smart.http.get(f"{smart.base}/launch", params={"patient": "nobody"}).status_code == 404


def test_smart_style(smart: Smart) -> None:
    r = smart.http.get(f"{smart.base}/smart-style.json")
    assert r.status_code == 200 and "color_background" in r.json()
