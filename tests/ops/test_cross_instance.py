"""Two ``pml-risk serve`` instances behind one (simulated) load balancer share Redis sessions,
and the audit trail of a full launch (and save) names who, which patient, which EHR: no PHI."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

from .conftest import Deployment, DeploymentFactory
from .harness import FIXTURES, browser, launch, on_port

PATIENT = "ex05-index-1-51-25-infusions"


@pytest.fixture(scope="module")
def two_instances(make_deployment: DeploymentFactory) -> Deployment:
    deployment = make_deployment()
    deployment.start(deployment.port_a, "a")
    deployment.start(deployment.port_b, "b")
    return deployment


def test_launch_started_on_a_completes_on_b(two_instances: Deployment) -> None:
    d = two_instances
    http = browser()
    page = launch(http, d.ehr, "ex03-index-0-90", callback_port=d.port_b)
    assert page.startswith(f"http://127.0.0.1:{d.port_b}/launches/")  # B finished it
    on_a = on_port(page, d.port_a) + "/assessment"
    data = http.get(on_a, timeout=30).json()  # and A serves it, from Redis
    assert data["status"] == "ok"
    assert data["launch"]["patient"] == "Patient/ex03-index-0-90"
    # A launch id alone opens nothing on either instance: it is bound to the browser.
    mark = len(d.audit_lines())
    assert browser().get(on_a, timeout=30).status_code == 404
    refused = [json.loads(line) for line in d.audit_lines()[mark:]]
    assert [(r["event"], r["error"], r["http_status"]) for r in refused] == [
        ("error", "unknown-launch", 404)]
    assert "patient" not in refused[0]  # not this browser's launch: nothing about it is told


def test_state_is_single_use_across_instances(two_instances: Deployment) -> None:
    d = two_instances
    http = browser()
    first = http.get(f"{d.ehr}/sandbox/launch", params={"patient": "ex01-negative-30"},
                     allow_redirects=False, timeout=10)
    from .harness import submit_auto_form

    start = first.headers["Location"]
    form = http.get(start, allow_redirects=False, timeout=10)  # authorize-post: a form
    sent = parse_qs(urlsplit(form.url).query)
    fields = dict(re.findall(r'name="([^"]*)" value="([^"]*)"', form.text))
    assert len(fields["state"]) >= 43 and fields["code_challenge_method"] == "S256"
    assert len(fields["nonce"]) >= 43 and fields["nonce"] != fields["state"]  # OIDC nonce
    posted = submit_auto_form(http, form, start)
    callback = urljoin(start, posted.headers["Location"])
    assert urlsplit(callback).path == "/callback" and sent["launch"]
    assert http.get(on_port(callback, d.port_b), allow_redirects=False,
                    timeout=30).status_code == 303
    replay = http.get(callback, allow_redirects=False, timeout=30)  # same state, on A
    assert replay.status_code == 400


def _fixture_phi(patient: str) -> tuple[list[str], list[float]]:
    """Names, birth date, MRN and JCV index values of a fixture patient."""
    bundle = json.loads((FIXTURES / f"{patient}.json").read_text(encoding="utf-8"))
    strings: list[str] = []
    numbers: list[float] = []
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "Patient":
            for name in res.get("name", []):
                strings += [name.get("text", ""), name.get("family", ""), *name.get("given", [])]
            strings.append(res["birthDate"])
            strings += [i["value"] for i in res.get("identifier", [])]
        if res["resourceType"] == "Observation" and "valueQuantity" in res:
            numbers.append(float(res["valueQuantity"]["value"]))
    return [s for s in strings if s], numbers


def _values(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [v for x in node.values() for v in _values(x)]
    if isinstance(node, list):
        return [v for x in node for v in _values(x)]
    return [node]


def _save(http: Any, page: str) -> Any:
    """POST /launches/<id>/assessment with the page's CSRF token (the write-back contract)."""
    html = http.get(page, timeout=30).text
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    token = match.group(1) if match else ""
    return http.post(page + "/assessment", headers={"X-CSRF-Token": token}, json={},
                     timeout=30)


def test_audit_trail_of_launch_to_save_is_complete_and_free_of_phi(
    two_instances: Deployment,
) -> None:
    d = two_instances
    before = len(d.audit_lines())
    http = browser()
    page = launch(http, d.ehr, PATIENT, callback_port=d.port_b)
    launch_id = page.rsplit("/", 1)[1]
    assert http.get(page + "/assessment", timeout=30).json()["status"] == "ok"
    saved = _save(http, page)
    lines = d.audit_lines()[before:]
    records = [json.loads(line) for line in lines]  # every line is one JSON object

    # No PHI and no secrets, anywhere in the trail or in the application logs.
    names, index_values = _fixture_phi(PATIENT)
    assert names and index_values
    app_logs = d.app_logs()
    for secret in [*names, *d.issued_secrets()]:
        assert secret not in "\n".join(lines), secret
        assert secret not in app_logs, secret
    for record in records:
        for value in _values(record):
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert float(value) not in index_values, (record["event"], value)
        assert "dropped_fields" not in record, record

    by_event: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_event.setdefault(record["event"], []).append(record)
    for name in ("launch.received", "authorize.redirect", "token.exchange",
                 "id_token.validated", "launch.established"):
        assert name in by_event, (name, sorted(by_event))
    token = by_event["token.exchange"][0]
    assert token["status"] == "ok" and token["client_auth"] == "private_key_jwt"
    assert token["kid"] and "patient/Observation" in token["scopes"]
    assert token["tenant"] == "Sandbox EHR" and token["iss"] == d.iss
    established = by_event["launch.established"][0]
    assert established["patient"] == PATIENT
    assert established["launch"] == launch_id
    assert established["user"].endswith("Practitioner/dr-ada")
    # The launch began on A and finished on B: two processes, one trail.
    assert by_event["launch.received"][0]["instance"] != established["instance"]
    for record in records:
        assert record["ts"] and record["instance"]

    assert saved.status_code in (200, 201), saved.text[:300]
    body = saved.json()
    assert body["saved"] is True
    records = [json.loads(line) for line in d.audit_lines()[before:]]
    events = {r["event"] for r in records}
    assert {"fhir.read", "assessment.computed", "riskassessment.write"} <= events, sorted(events)
    # The chart read, with resource types and counts.
    reads = [r for r in records if r["event"] == "fhir.read"
             and isinstance(r.get("resource_types"), dict)]
    assert reads and all(r.get("patient") == PATIENT for r in reads)
    assert reads[0]["resource_types"].get("Observation", 0) > 0
    computed = [r for r in records if r["event"] == "assessment.computed"]
    assert computed and computed[0].get("table")
    writes = [r for r in records if r["event"] == "riskassessment.write"]
    assert writes and writes[-1].get("resource_id", "").startswith("RiskAssessment/")
    assert str(body["id"]) in writes[-1]["resource_id"]
    text = "\n".join(d.audit_lines()[before:])
    for secret in [*names, *d.issued_secrets()]:
        assert secret not in text, secret
