"""The ``/sandbox/_control`` switches and the request log."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from sandbox_helpers import REDIRECT, Smart

from smart_app.sandbox import SandboxConfig, create_sandbox
from smart_app.sandbox.testing import mounted, serve_in_thread


@pytest.fixture
def token(smart: Smart) -> str:
    return str(smart.login("app-public")["access_token"])


def test_defaults(smart: Smart) -> None:
    state = smart.control()
    assert state["latency_ms"] == 0 and state["fail_next"] == [] and state["rate_limit_next"] == 0
    assert state["token_lifetime"] == 3600
    assert state["v1_only"] is False and state["no_risk_assessment"] is False
    assert state["deny_authorization"] is False
    assert "app-public" in state["clients"] and "alice" in state["patients"]


def test_latency(smart: Smart, token: str) -> None:
    smart.control(latency_ms=300)
    start = time.perf_counter()
    assert smart.get(token, "Patient/alice").status_code == 200
    assert time.perf_counter() - start >= 0.3


def test_fail_next(smart: Smart, token: str) -> None:
    smart.control(fail_next=[500, 503])
    first = smart.get(token, "Patient/alice")
    assert first.status_code == 500 and first.json()["resourceType"] == "OperationOutcome"
    assert smart.get(token, "Patient/alice").status_code == 503
    assert smart.get(token, "Patient/alice").status_code == 200
    assert smart.control()["fail_next"] == []


def test_rate_limit_next(smart: Smart, token: str) -> None:
    smart.control(rate_limit_next=2)
    for _ in range(2):
        r = smart.get(token, "Observation", patient="alice")
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert smart.get(token, "Observation", patient="alice").status_code == 200


def test_failures_do_not_hit_discovery(smart: Smart) -> None:
    smart.control(fail_next=[500])
    assert smart.http.get(f"{smart.fhir}/.well-known/smart-configuration").status_code == 200
    assert smart.http.get(f"{smart.fhir}/metadata").status_code == 200
    assert smart.control()["fail_next"] == [500]


def test_request_log(smart: Smart, token: str) -> None:
    smart.control(clear_requests=True)
    smart.get(token, "Observation", patient="alice", code="JCV-AB")
    smart.get(token, "Patient/alice")
    log = smart.control()["requests"]
    assert [(r["method"], r["path"]) for r in log] == [
        ("GET", "/sandbox/fhir/Observation"),
        ("GET", "/sandbox/fhir/Patient/alice"),
    ]
    assert log[0]["query"] == "patient=alice&code=JCV-AB" and log[0]["status"] == 200
    assert log[0]["args"] == {"patient": ["alice"], "code": ["JCV-AB"]}


def test_reset_keeps_created_data_unless_asked(smart: Smart, token: str) -> None:
    ra = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "Patient/alice"},
    }
    created = smart.post(token, "RiskAssessment", ra).json()["id"]
    smart.control(latency_ms=10, fail_next=[500], v1_only=True)
    state = smart.control(reset=True)
    assert state["latency_ms"] == 0 and state["fail_next"] == [] and state["v1_only"] is False
    assert state["requests"] == []
    assert smart.get(token, "Patient/alice").status_code == 401  # tokens are forgotten
    token = smart.login("app-public")["access_token"]
    assert smart.get(token, "RiskAssessment", _id=created).json()["total"] == 1
    smart.control(reset=True, reset_data=True)
    token = smart.login("app-public")["access_token"]
    assert smart.get(token, "RiskAssessment", _id=created).json()["total"] == 0
    assert smart.get(token, "Observation/alice-obs-1").status_code == 200


def test_reset_can_apply_new_settings(smart: Smart) -> None:
    smart.control(fail_next=[500])
    state = smart.control(reset=True, latency_ms=1)
    assert state["fail_next"] == [] and state["latency_ms"] == 1


@pytest.mark.parametrize(
    "body",
    [{"nope": 1}, {"latency_ms": -1}, {"fail_next": [200]}, {"v1_only": "yes"}, ["x"]],
)
def test_bad_control_input(smart: Smart, body: Any) -> None:
    r = smart.http.post(f"{smart.base}/_control", json=body)
    assert r.status_code == 400
    assert smart.control()["latency_ms"] == 0


def test_register_client_at_runtime(smart: Smart) -> None:
    smart.control(
        register_client={"client_id": "late", "auth": "public", "redirect_uris": [REDIRECT]}
    )
    assert smart.login("late")["patient"] == "alice"
    r = smart.http.post(f"{smart.base}/_control", json={"register_client": {"auth": "public"}})
    assert r.status_code == 400


def test_control_disabled(config: SandboxConfig) -> None:
    app = create_sandbox(replace(config, allow_control=False))
    with serve_in_thread(mounted(app)) as root:
        import requests

        assert requests.get(f"{root}/sandbox/_control", timeout=5).status_code == 404
        r = requests.post(f"{root}/sandbox/_control", json={"fail_next": [500]}, timeout=5)
        assert r.status_code == 404


def test_relative_launch_url_and_redirect_uri(config: SandboxConfig) -> None:
    """A demo registers ``/callback`` and ``/launch`` before it knows its port."""
    from smart_app.sandbox import SandboxClient

    cfg = replace(
        config,
        launch_url="/launch",
        clients=(SandboxClient("demo", "public", ("/callback",)),),
    )
    with serve_in_thread(mounted(create_sandbox(cfg))) as root:
        import requests

        r = requests.get(
            f"{root}/sandbox/launch", params={"patient": "bob"}, allow_redirects=False, timeout=5
        )
        assert r.headers["Location"].startswith(f"{root}/launch?iss=")
        params = {
            "response_type": "code",
            "client_id": "demo",
            "redirect_uri": f"{root}/callback",
            "scope": "launch/patient patient/Patient.r",
            "state": "s",
            "aud": f"{root}/sandbox/fhir",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
        }
        r = requests.get(
            f"{root}/sandbox/auth/authorize", params=params, allow_redirects=False, timeout=5
        )
        assert r.status_code == 302 and r.headers["Location"].startswith(f"{root}/callback?code=")
