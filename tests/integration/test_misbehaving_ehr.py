"""What the sandbox cannot be made to do: a small scripted EHR over real HTTP.

The sandbox enforces compartments and publishes ``.well-known``, so a deliberately wrong server
is needed to show that the FHIR client refuses another patient's data or a ``next`` link to
another host, and that discovery falls back to the CapabilityStatement.
"""

from __future__ import annotations

import json
from email.utils import formatdate
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from smart_app.fhir.client import FhirClient, FhirError, ForeignResource
from smart_app.sandbox.testing import LateApp, serve_in_thread
from smart_app.smart.discovery import OAUTH_URIS, fetch
from smart_app.smart.scopes import GrantedScopes

from .scripted_ehr import Handler, Script

pytestmark = pytest.mark.integration

ALL = GrantedScopes.parse("patient/*.rs")


def fhir(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return Response(json.dumps(body), status=status, headers=headers,
                    mimetype="application/fhir+json")


def bundle(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
        "link": [{"relation": "next", "url": next_url}] if next_url else [],
    }


def patient_routes(script: Script, pid: str = "p1", **overrides: Handler) -> None:
    empty: Handler = lambda _req: fhir(bundle())  # noqa: E731
    script.routes.update({
        f"/fhir/Patient/{pid}": lambda _req: fhir({"resourceType": "Patient", "id": pid}),
        "/fhir/Observation": empty,
        "/fhir/MedicationAdministration": empty,
        "/fhir/MedicationStatement": empty,
        "/fhir/MedicationRequest": empty,
    })
    script.routes.update({f"/fhir/{k}": v for k, v in overrides.items()})


def client(base: str) -> FhirClient:
    return FhirClient(requests.Session(), f"{base}/fhir", lambda _rejected: "t0ken",
                      timeout=5, max_pages=3)


def test_resource_of_another_patient_is_rejected(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    foreign = {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p2"}}
    patient_routes(script, Observation=lambda _req: fhir(bundle(foreign)))
    with pytest.raises(ForeignResource):
        client(base).read_chart("p1", ALL)


def test_next_link_to_another_server_is_refused(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    patient_routes(
        script,
        Observation=lambda _req: fhir(bundle(next_url="https://elsewhere.example/fhir/x")),
    )
    with pytest.raises(FhirError, match="another server"):
        client(base).read_chart("p1", ALL)
    assert not any("elsewhere" in h for h in script.hits)


def test_retry_after_as_http_date_and_503_without_header(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    calls = {"Observation": 0, "MedicationRequest": 0}

    def flaky_obs(_req: Request) -> Response:
        calls["Observation"] += 1
        if calls["Observation"] == 1:
            return fhir({}, 429, **{"Retry-After": formatdate(usegmt=True)})
        return fhir(bundle())

    def flaky_mr(_req: Request) -> Response:
        calls["MedicationRequest"] += 1
        return fhir({}, 503) if calls["MedicationRequest"] == 1 else fhir(bundle())

    patient_routes(script, Observation=flaky_obs, MedicationRequest=flaky_mr)
    data = client(base).read_chart("p1", ALL)
    assert data.round_trips == 1 and data.requests == 10  # and the three brain-MRI searches


def test_long_retry_after_is_an_error_not_a_wait(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    patient_routes(script, Observation=lambda _req: fhir({}, 429, **{"Retry-After": "120"}))
    with pytest.raises(FhirError, match="429"):
        client(base).read_chart("p1", ALL)


def test_unresolved_medication_references_are_fetched_in_one_search(
    ehr: tuple[str, Script]
) -> None:
    base, script = ehr
    admins = [
        {"resourceType": "MedicationAdministration", "id": f"ma{n}", "status": "completed",
         "subject": {"reference": "Patient/p1"},
         "medicationReference": {"reference": f"Medication/m{n % 3}"}}
        for n in range(30)
    ]
    meds = [{"resourceType": "Medication", "id": f"m{n}"} for n in range(3)]
    seen: list[str] = []

    def medication(req: Request) -> Response:
        seen.append(req.args.get("_id", ""))
        return fhir(bundle(*meds))

    patient_routes(
        script,
        MedicationAdministration=lambda _req: fhir(bundle(*admins)),
        Medication=medication,
    )
    data = client(base).read_chart("p1", ALL)
    assert seen == ["m0,m1,m2"]
    assert data.round_trips == 2
    assert sum(r["resourceType"] == "Medication" for r in data.resources) == 3


def test_discovery_falls_back_to_the_capability_statement(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    metadata = {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "security": {"extension": [{
            "url": OAUTH_URIS,
            "extension": [
                {"url": "authorize", "valueUri": "auth/authorize"},  # relative: resolved
                {"url": "token", "valueUri": f"{base}/auth/token"},
            ],
        }]}}],
    }
    script.routes["/fhir/metadata"] = lambda _req: fhir(metadata)
    config = fetch(requests.Session(), f"{base}/fhir", 5)
    assert config.source == "capability-statement"
    assert config.authorization_endpoint == f"{base}/fhir/auth/authorize"
    assert config.token_endpoint == f"{base}/auth/token"
    assert script.hits == ["/fhir/.well-known/smart-configuration", "/fhir/metadata"]


def test_401_retries_once_with_the_replacement_token(ehr: tuple[str, Script]) -> None:
    base, script = ehr

    def guarded(inner: Handler) -> Handler:
        def handler(req: Request) -> Response:
            if req.headers.get("Authorization") != "Bearer new":
                return fhir({"resourceType": "OperationOutcome"}, 401)
            return inner(req)
        return handler

    patient_routes(script)
    script.routes = {path: guarded(h) for path, h in script.routes.items()}
    rejected: list[str | None] = []

    def provider(bad: str | None) -> str:
        rejected.append(bad)
        return "new" if bad == "old" else "old"

    data = FhirClient(requests.Session(), f"{base}/fhir", provider, timeout=5,
                      max_pages=3).read_chart("p1", ALL)
    assert data.requests == 13 and data.round_trips == 1
    assert sorted(rejected, key=str) == [None] * 8 + ["old"] * 5


def test_v2_scopes_refused_falls_back_to_v1_once(ehr: tuple[str, Script], tmp_path: Any) -> None:
    """A server that claims v2 but rejects it gets one v1 retry, no loop."""
    from urllib.parse import parse_qs, urlsplit

    from smart_app.app import create_app
    from smart_app.config import from_mapping


    base, script = ehr
    script.routes["/fhir/.well-known/smart-configuration"] = lambda _req: fhir({
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "capabilities": ["launch-ehr", "permission-v2", "permission-v1"],
        "code_challenge_methods_supported": ["S256"],
    })
    late = LateApp()
    with serve_in_thread(late) as app_base:
        late.target = create_app(from_mapping({
            "base_url": app_base, "secret_key": "k" * 40, "session_store": "memory://",
            "keys_file": str(tmp_path / "none.json"),
            "tenants": [{"iss": f"{base}/fhir", "client_id": "c", "auth": "public"}],
        }))
        browser = requests.Session()
        first = browser.get(f"{app_base}/launch", params={"iss": f"{base}/fhir", "launch": "L1"},
                            allow_redirects=False, timeout=10)
        query = parse_qs(urlsplit(first.headers["Location"]).query)
        assert "patient/Observation.rs" in query["scope"][0].split()
        retry = browser.get(f"{app_base}/callback", params={
            "error": "invalid_scope", "state": query["state"][0]}, allow_redirects=False,
            timeout=10)
        assert retry.status_code == 302
        again = parse_qs(urlsplit(retry.headers["Location"]).query)
        assert "patient/Observation.read" in again["scope"][0].split()
        assert again["launch"] == ["L1"] and again["state"] != query["state"]
        final = browser.get(f"{app_base}/callback", params={
            "error": "invalid_scope", "state": again["state"][0]}, allow_redirects=False,
            timeout=10)
        assert final.status_code == 403  # no third attempt
