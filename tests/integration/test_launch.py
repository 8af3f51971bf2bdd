"""EHR and standalone launch, client authentication, and the launch-flow failure modes."""

from __future__ import annotations

import html as html_lib
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from smart_app.sandbox.testing import serve_in_thread

from .conftest import Stack, StackFactory, callback_params

pytestmark = pytest.mark.integration


def assessment(browser: requests.Session, page: str) -> dict[str, Any]:
    resp = browser.get(page + "/assessment", timeout=30)
    assert resp.status_code == 200, resp.text[:500]
    data: dict[str, Any] = resp.json()
    return data


def test_ehr_launch_shows_the_assessment(
    stack: Stack, expected: dict[str, dict[str, Any]]
) -> None:
    browser = stack.browser()
    page = stack.launch(browser, "ex05-index-1-51-25-infusions")
    assert "/launches/" in page
    html = browser.get(page, timeout=30)
    assert html.status_code == 200
    assert "8.8 per 1,000" in html.text
    assert html.headers["Cache-Control"] == "no-store"
    data = assessment(browser, page)
    assert data["status"] == "ok"
    assert data["riskAssessment"]["resourceType"] == "RiskAssessment"
    assert data["riskAssessment"]["subject"]["reference"] == (
        "Patient/ex05-index-1-51-25-infusions"
    )
    assert data["launch"]["user"] == "Practitioner/dr-ada"  # id_token validated, fhirUser
    assert data["launch"]["smartStyleUrl"].endswith("/sandbox/smart-style.json")
    assert data["access"] == {
        "readOnly": False, "withheld": [], "unread": [], "notOffered": [],
        "dataMayBeIncomplete": False, "serverMessages": [],
    }
    assert expected["ex05-index-1-51-25-infusions"]["per_1000"] == "8.8"
    assert data["fhir"]["roundTrips"] == 1


def test_authorize_request_carries_smart_parameters(stack: Stack) -> None:
    browser = stack.browser()
    stack.launch(browser, "ex01-negative-30")
    authorize = next(r for r in stack.requests_log() if r["path"] == "/sandbox/auth/authorize")
    params = {k: v[0] for k, v in
              __import__("urllib.parse").parse.parse_qs(authorize["query"]).items()}
    assert params["aud"] == stack.iss  # aud is the FHIR base
    assert params["code_challenge_method"] == "S256"  # PKCE always
    assert len(params["state"]) >= 43  # 256 bits, base64url
    assert params["launch"]  # the launch handle is echoed
    scopes = params["scope"].split()
    assert {"launch", "launch/patient", "openid", "fhirUser", "online_access"} <= set(scopes)
    assert "patient/RiskAssessment.cs" in scopes


def test_ehr_launch_context_is_parsed(stack: Stack) -> None:
    browser = stack.browser()
    page = stack.launch(
        browser,
        "ex03-index-0-90",
        encounter="enc-1",
        need_patient_banner="false",
        intent="pml-detail",
        fhir_context="MedicationRequest/abc",
    )
    data = assessment(browser, page)
    launch = data["launch"]
    assert launch["encounter"] == "Encounter/enc-1"
    assert launch["needPatientBanner"] is False
    assert launch["intent"] == "pml-detail"
    assert launch["fhirContext"] == [
        {"reference": "MedicationRequest/abc", "type": "MedicationRequest", "role": "launch"}
    ]
    html = browser.get(page, timeout=30).text
    assert 'class="banner"' not in html  # need_patient_banner false: the EHR shows its own banner
    assert "round trip" in html  # intent pml-detail: the detail view


@pytest.mark.parametrize(
    ("auth", "alg"),
    [
        ("public", "RS384"),
        ("client_secret_basic", "RS384"),
        ("private_key_jwt", "RS384"),
        ("private_key_jwt", "ES384"),
    ],
)
def test_every_client_auth_method(make_stack: StackFactory, auth: str, alg: str) -> None:
    # Long enough for one chart read (its searches in one wave) on a loaded machine.
    stack = make_stack(auth=auth, signing_alg=alg, sandbox={"token_lifetime": 4})
    browser = stack.browser()
    page = stack.launch(browser, "ex06-index-3-0-12-infusions")
    assert assessment(browser, page)["status"] == "ok"
    # A second token request (the refresh) proves a fresh assertion: the sandbox rejects a
    # replayed jti and an assertion that lives longer than five minutes.
    import time

    time.sleep(3.2)
    # Reloading the page reads the chart again (the JSON alone works from the visit's snapshot).
    assert browser.get(page, timeout=30).status_code == 200
    assert assessment(browser, page)["status"] == "ok"
    tokens = stack.token_requests()
    assert [t["status"] for t in tokens] == [200, 200]


def test_standalone_launch(stack: Stack) -> None:
    browser = stack.browser()
    page = stack.finish(browser, f"{stack.base}/standalone?iss={stack.iss}")
    data = assessment(browser, page)
    assert data["launch"]["patient"].startswith("Patient/")
    authorize = next(r for r in stack.requests_log() if r["path"] == "/sandbox/auth/authorize")
    assert "launch=" not in authorize["query"]
    assert "launch%2Fpatient" in authorize["query"]


def test_index_lists_tenants_for_standalone_launch(stack: Stack) -> None:
    html = stack.browser().get(stack.base + "/", timeout=10).text
    assert "/standalone?iss=" in html


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    """A server that records every request it receives: a stand-in attacker's 'EHR'."""
    hits: list[str] = []
    lock = threading.Lock()

    @Request.application  # type: ignore[arg-type]
    def app(request: Request) -> Response:
        with lock:
            hits.append(request.path)
        return Response("{}", mimetype="application/json")

    with serve_in_thread(app) as base:
        yield base, hits


def test_unknown_iss_is_refused_before_any_request(
    stack: Stack, recorder: tuple[str, list[str]]
) -> None:
    attacker, hits = recorder
    stack.clear_log()
    browser = stack.browser()
    resp = browser.get(
        f"{stack.base}/launch", params={"iss": f"{attacker}/fhir", "launch": "x"}, timeout=10
    )
    assert resp.status_code == 400
    assert "not registered" in resp.text
    assert hits == []  # nothing was fetched from the unknown issuer
    assert stack.requests_log() == []  # nor from the registered one
    assert "Set-Cookie" not in resp.headers


def test_unknown_iss_escapes_nothing_into_the_page(stack: Stack) -> None:
    resp = stack.browser().get(
        f"{stack.base}/launch",
        params={"iss": "https://evil.example/<script>alert(1)</script>", "launch": "x"},
        timeout=10,
    )
    assert resp.status_code == 400
    assert "<script>" not in resp.text


def test_launch_without_launch_parameter_is_refused(stack: Stack) -> None:
    resp = stack.browser().get(f"{stack.base}/launch", params={"iss": stack.iss}, timeout=10)
    assert resp.status_code == 400
    assert "Incomplete launch" in resp.text


def test_bad_state_is_refused_without_token_request(stack: Stack) -> None:
    browser = stack.browser()
    redirect = stack.to_callback(browser, f"{stack.base}/sandbox/launch?patient=ex01-negative-30")
    params = callback_params(redirect)
    stack.clear_log()
    forged = browser.get(
        f"{stack.base}/callback",
        params={"code": params["code"], "state": secrets.token_urlsafe(32)},
        allow_redirects=False,
        timeout=10,
    )
    assert forged.status_code == 400
    assert "no longer valid" in forged.text
    assert stack.token_requests() == []


def test_reused_state_is_refused(stack: Stack) -> None:
    browser = stack.browser()
    redirect = stack.to_callback(browser, f"{stack.base}/sandbox/launch?patient=ex01-negative-30")
    first = browser.get(redirect.headers["Location"], allow_redirects=False, timeout=30)
    assert first.status_code == 303
    again = browser.get(redirect.headers["Location"], allow_redirects=False, timeout=30)
    assert again.status_code == 400
    assert len(stack.token_requests()) == 1  # the code was exchanged once, never twice


def test_state_from_another_browser_session_is_refused(stack: Stack) -> None:
    alice, mallory = stack.browser(), stack.browser()
    redirect = stack.to_callback(alice, f"{stack.base}/sandbox/launch?patient=ex01-negative-30")
    resp = mallory.get(redirect.headers["Location"], allow_redirects=False, timeout=30)
    assert resp.status_code == 400
    assert "another browser session" in resp.text
    assert stack.token_requests() == []
    # The state was consumed by the failed attempt: the genuine browser must relaunch too.
    late = alice.get(redirect.headers["Location"], allow_redirects=False, timeout=30)
    assert late.status_code == 400


def test_denied_authorization(stack: Stack) -> None:
    stack.control(deny_authorization=True)
    browser = stack.browser()
    redirect = stack.to_callback(browser, f"{stack.base}/sandbox/launch?patient=ex01-negative-30")
    assert callback_params(redirect)["error"] == "access_denied"
    resp = browser.get(redirect.headers["Location"], allow_redirects=False, timeout=10)
    assert resp.status_code == 403
    assert "Access was not granted" in resp.text
    assert stack.token_requests() == []
    assert stack.chart_requests() == []  # the open CapabilityStatement only


def test_missing_patient_context(make_stack: StackFactory) -> None:
    stack = make_stack(scopes="openid fhirUser online_access user/Observation.rs")
    browser = stack.browser()
    redirect = stack.to_callback(browser, f"{stack.base}/standalone?iss={stack.iss}")
    resp = browser.get(redirect.headers["Location"], allow_redirects=False, timeout=30)
    assert resp.status_code == 400
    assert "No patient selected" in resp.text
    assert stack.chart_requests() == []


def test_two_launches_in_one_browser_never_mix(stack: Stack) -> None:
    browser = stack.browser()
    first = stack.launch(browser, "ex01-negative-30")
    second = stack.launch(browser, "ex07-prior-is-azathioprine-48")
    assert first != second
    a = assessment(browser, first)
    b = assessment(browser, second)
    assert a["launch"]["patient"] == "Patient/ex01-negative-30"
    assert b["launch"]["patient"] == "Patient/ex07-prior-is-azathioprine-48"
    assert a["riskAssessment"]["subject"] != b["riskAssessment"]["subject"]
    assert all(
        ref.endswith(("/ex01-negative-30",)) or "ex01-negative-30" in ref
        for ref in a["basis"] if isinstance(ref, str)
    )
    # Interleaved again, in the other order: still each tab's own patient.
    assert assessment(browser, first)["launch"]["patient"] == "Patient/ex01-negative-30"


def test_launch_page_is_bound_to_the_browser_session(stack: Stack) -> None:
    page = stack.launch(stack.browser(), "ex01-negative-30")
    other = stack.browser().get(page + "/assessment", timeout=10)
    assert other.status_code == 404
    assert other.json()["error"] == "unknown-launch"


def test_v1_scopes_per_tenant(make_stack: StackFactory) -> None:
    stack = make_stack(scopes="v1")
    browser = stack.browser()
    data = assessment(browser, stack.launch(browser, "ex03-index-0-90"))
    assert data["status"] == "ok"
    assert data["access"]["readOnly"] is False  # RiskAssessment.write granted


def test_v1_only_server_gets_v1_scopes(stack: Stack) -> None:
    """A v2 tenant whose server advertises permission-v1 only is asked in v1 syntax."""
    stack.control(v1_only=True)
    browser = stack.browser()
    data = assessment(browser, stack.launch(browser, "ex03-index-0-90"))
    assert data["status"] == "ok"
    assert data["access"]["withheld"] == []
    authorize = next(r for r in stack.requests_log() if r["path"] == "/sandbox/auth/authorize")
    assert "patient%2FObservation.read" in authorize["query"]


def test_long_scope_strings_use_a_post_form(make_stack: StackFactory) -> None:
    """Past 2 KB the authorize request goes as a form POST (authorize-post advertised)."""
    extra = " ".join(f"patient/Observation.rs?code=http://loinc.org|{n}-0" for n in range(60))
    scopes = (
        "launch launch/patient openid fhirUser online_access patient/Patient.r "
        "patient/Observation.rs patient/MedicationAdministration.rs "
        "patient/MedicationStatement.rs patient/MedicationRequest.rs patient/Medication.rs "
        + extra
    )
    stack = make_stack(scopes=scopes)
    browser = stack.browser()
    launch = browser.get(f"{stack.base}/sandbox/launch?patient=ex01-negative-30",
                         allow_redirects=False, timeout=10)
    form = browser.get(launch.headers["Location"], allow_redirects=False, timeout=10)
    assert form.status_code == 200
    csp = form.headers["Content-Security-Policy"]
    assert f"form-action 'self' {stack.base}" in csp and "script-src 'self' 'nonce-" in csp
    import re

    action = re.search(r'action="([^"]+)"', form.text)
    assert action is not None
    fields = {html_lib.unescape(n): html_lib.unescape(v) for n, v in
              re.findall(r'name="([^"]+)" value="([^"]*)"', form.text)}
    assert fields["code_challenge_method"] == "S256" and fields["aud"] == stack.iss
    posted = browser.post(html_lib.unescape(action.group(1)), data=fields,
                          allow_redirects=False, timeout=10)
    assert posted.status_code == 302
    done = browser.get(posted.headers["Location"], allow_redirects=False, timeout=30)
    assert done.status_code == 303


def test_smart_style_is_applied_safely(stack: Stack) -> None:
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    html = browser.get(page, timeout=30).text
    assert "<style" not in html and "style=" not in html  # CSP: style-src 'self', no inline
    css = browser.get(page + "/style.css", timeout=30)
    assert f'href="/launches/{page.rsplit("/", 1)[1]}/style.css"' in html
    assert css.headers["Content-Type"].startswith("text/css")
    assert "--smart-background: #edeae3;" in css.text
    assert "--smart-font-heading: HelveticaNeue-Light, Helvetica, Arial" in css.text
    assert stack.browser().get(page + "/style.css", timeout=30).status_code == 404  # bound


def test_incomplete_assessment_page(stack: Stack) -> None:
    browser = stack.browser()
    page = stack.launch(browser, "no-antibody-result")
    data = assessment(browser, page)
    assert data["status"] == "incomplete" and data["riskAssessment"] is None
    html = browser.get(page, timeout=30).text
    assert "No estimate" in html
    missing = [w["message"] for w in data["warnings"] if w["severity"] == "missing"]
    assert missing and all(html.count(html_lib.escape(m)) == 1 for m in missing)  # said once


def test_jwks_is_public_and_cacheable(stack: Stack) -> None:
    resp = requests.get(f"{stack.base}/.well-known/jwks.json", timeout=10)
    assert resp.status_code == 200
    assert "max-age" in resp.headers["Cache-Control"]
    jwks = resp.json()["keys"]
    assert sorted(k["alg"] for k in jwks) == ["ES384", "RS384"]
    assert all("d" not in k and k["kid"] for k in jwks)


def test_cookie_holds_only_an_opaque_id(stack: Stack) -> None:
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    cookie = browser.cookies.get("pml_risk")
    assert cookie is not None
    import base64
    import json

    payload = cookie.split(".")[0]
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    # Opaque ids only: the browser session's id and the ids of the launches it completed.
    assert set(data) <= {"sid", "launches", "_permanent"}
    assert not data.get("_permanent")  # a browser-session cookie
    assert data["launches"] == [page.rsplit("/", 1)[1]]
    launch = stack.services.repo.get(page.rsplit("/", 1)[1])
    assert launch is not None and launch.tokens.access_token not in cookie


def test_cookie_is_iframe_ready_over_https(make_stack: StackFactory) -> None:
    stack = make_stack(base_url="https://pml-risk.example")
    resp = stack.browser().get(
        f"{stack.base}/standalone", params={"iss": stack.iss}, allow_redirects=False, timeout=10
    )
    assert resp.status_code == 302
    cookie = resp.headers["Set-Cookie"]
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Partitioned"):
        assert attribute in cookie


def test_callback_iss_must_match_the_discovered_issuer(stack: Stack) -> None:
    """RFC 9207: an authorization response naming another issuer is a mix-up."""
    browser = stack.browser()
    redirect = stack.to_callback(browser, f"{stack.base}/sandbox/launch?patient=ex01-negative-30")
    resp = browser.get(redirect.headers["Location"] + "&iss=https%3A%2F%2Fevil.example",
                       allow_redirects=False, timeout=10)
    assert resp.status_code == 400
    assert "wrong server" in resp.text
    assert stack.token_requests() == []


def test_frame_ancestors_per_tenant(make_stack: StackFactory) -> None:
    stack = make_stack(tenant={"frame_ancestors": ["https://ehr.example"]})
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    resp = browser.get(page, timeout=30)
    assert "frame-ancestors 'self' https://ehr.example" in resp.headers["Content-Security-Policy"]


def test_ehr_launches_post_the_authorize_request_where_the_server_takes_it(
    make_stack: StackFactory,
) -> None:
    """Embedded browsers with an old engine cut long URLs: an EHR launch goes as a form POST
    when the server advertises authorize-post, and as a redirect when it does not."""
    stack = make_stack()
    browser = stack.browser()
    launch = browser.get(f"{stack.base}/sandbox/launch?patient=ex01-negative-30",
                         allow_redirects=False, timeout=10)
    form = browser.get(launch.headers["Location"], allow_redirects=False, timeout=10)
    assert form.status_code == 200 and 'method="post"' in form.text
    assert "<noscript><button" in form.text  # works without script too
    assert stack.launch(stack.browser(), "ex01-negative-30").startswith(stack.base)
    authorize = [r for r in stack.requests_log() if r["path"] == "/sandbox/auth/authorize"]
    assert [r["method"] for r in authorize] == ["POST"]
    assert authorize[0]["args"]["launch"] and authorize[0]["args"]["aud"] == [stack.iss]
    stack.control(ehr_profile="epic-like")  # lists no authorize-post
    stack.services.discovery.forget(stack.iss)
    stack.clear_log()
    redirect = browser.get(f"{stack.base}/launch",
                           params={"iss": stack.iss, "launch": "x"}, allow_redirects=False,
                           timeout=10)
    assert redirect.status_code == 302
