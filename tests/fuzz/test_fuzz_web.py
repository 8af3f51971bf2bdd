"""The web app under fuzzed input: mutated charts from the EHR, what-if and save bodies from the
browser, and OAuth callback parameters, all over real HTTP against the sandbox EHR.

Properties, for every case: no 500 and no traceback in any answer; every answer within its
deadline; and nothing is written to the chart when the chart could not be read (the save of a
chart the page could not assess is refused, and the EHR sees no create).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import event, given
from hypothesis import strategies as st

from .budget import count, fuzz
from .mutations import Case, bundles, fixture_names, json_value
from .web_stack import WebStack, patient_of, web_stack

pytestmark = pytest.mark.integration

DEADLINE = 8.0  # seconds per answer; a chart read gives up after 3 × fhir_timeout (15 s)
# Fixture files whose patient the sandbox knows (index.json lists them; all do).
NAMES = tuple(n for n in fixture_names() if n != "heavy.json")


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    with contextlib.contextmanager(web_stack)(tmp_path_factory.mktemp("fuzz-web")) as stack:
        yield stack


def timed(call: Any, *args: Any, **kwargs: Any) -> requests.Response:
    started = time.monotonic()
    resp: requests.Response = call(*args, timeout=30, **kwargs)
    took = time.monotonic() - started
    assert took < DEADLINE, f"{resp.request.method} {resp.url[:120]} took {took:.1f} s"
    assert resp.status_code != 500 and resp.status_code < 600, (resp.status_code, resp.text[:300])
    assert "Traceback" not in resp.text
    return resp


overrides = st.fixed_dictionaries({}, optional={
    "prior_is": st.sampled_from(["yes", "no", "", "maybe", "YES", "١"]),
    "antibody": st.sampled_from(["positive", "negative", "", "pos", "\x00"]),
    "index": st.one_of(st.sampled_from(["1.2", "none", "20.001", "١.٥", "1e3", "0" * 5000,
                                        "-1", "NaN", "99.999"]), st.text(max_size=12)),
    "infusions": st.one_of(st.sampled_from(["24", "²", "0" * 5000, "١٢", "501", "-0"]),
                           st.text(max_size=8)),
    "reason": st.text(max_size=250),
})


@fuzz(ci=25)
@given(case=bundles(names=NAMES, max_mutations=3), what_if=overrides)
def test_mutated_chart_through_a_launch(web: WebStack, case: Case,
                                        what_if: dict[str, str]) -> None:
    count("web: mutated charts (page, JSON, save)")
    tab = web.tab(patient_of(case.name))
    web.serve_chart(patient_of(case.name), case.doc)
    try:
        timed(tab.browser.get, tab.page, params=what_if)
        read = timed(tab.browser.get, tab.page + "/assessment", params=what_if)
        body = read.json() if read.headers.get("Content-Type", "").startswith(
            "application/json") else {}
        event(f"chart read: {read.status_code} {body.get('status') or body.get('error')}")
        before = web.saved_count()
        saved = timed(tab.browser.post, tab.page + "/assessment",
                      json={"overrides": what_if}, headers={"X-CSRF-Token": tab.csrf})
        if read.status_code != 200 or read.json().get("status") != "ok":
            assert saved.status_code != 200 or not saved.json().get("saved")
            assert web.saved_count() == before, "a RiskAssessment was written from a failed read"
    finally:
        web.overlay.clear()


@fuzz(ci=40)
@given(body=st.one_of(
    json_value,
    st.fixed_dictionaries({}, optional={"identifier": json_value, "overrides": json_value}),
    st.fixed_dictionaries({"overrides": overrides}, optional={"identifier": st.text(max_size=80)}),
), raw=st.one_of(st.none(), st.binary(max_size=200)), csrf=st.booleans(),
   chunked=st.booleans())
def test_save_bodies(web: WebStack, body: Any, raw: bytes | None, csrf: bool,
                     chunked: bool) -> None:
    count("web: save bodies")
    tab = web.tab(patient_of("ex05-index-1-51-25-infusions.json"))
    headers = {"X-CSRF-Token": tab.csrf if csrf else "x"}
    if chunked:  # Transfer-Encoding: chunked, no Content-Length (a generator body)
        headers["Content-Type"] = "application/json"
        payload = raw if raw is not None else json.dumps(body).encode()
        pieces = iter([payload[i:i + 16] for i in range(0, len(payload), 16)])
        resp = timed(tab.browser.post, tab.page + "/assessment", data=pieces, headers=headers)
    elif raw is not None:
        headers["Content-Type"] = "application/json"
        resp = timed(tab.browser.post, tab.page + "/assessment", data=raw, headers=headers)
    else:
        resp = timed(tab.browser.post, tab.page + "/assessment", json=body, headers=headers)
    assert resp.status_code in (200, 400, 403, 409, 411, 413, 422, 502, 504), resp.status_code
    assert isinstance(resp.json(), dict)


@fuzz(ci=30)
@given(params=st.lists(st.tuples(
    st.sampled_from(["prior_is", "antibody", "index", "infusions", "reason", "identifier",
                     "other", "intent"]),
    st.text(max_size=40)), max_size=6))
def test_what_if_query_parameters(web: WebStack, params: list[tuple[str, str]]) -> None:
    count("web: what-if query parameters")
    tab = web.tab(patient_of("ex05-index-1-51-25-infusions.json"))
    names = [name for name, _ in params]
    repeated = any(names.count(n) > 1 for n in ("prior_is", "antibody", "index", "infusions",
                                                 "reason"))
    for path in ("", "/assessment", "/results", "/summary.txt", "/riskassessment.json"):
        resp = timed(tab.browser.get, tab.page + path, params=params)
        # 409: an ``identifier`` that is not this visit's result (the download asks for a
        # result the page no longer shows) is refused, never answered with another result.
        assert resp.status_code in (200, 400, 404, 409), (path, resp.status_code)
        if repeated and path in ("", "/assessment", "/results"):
            assert resp.status_code == 400, (path, params)  # never the first value silently


callback_values = st.one_of(st.text(max_size=60), st.sampled_from([
    "", "access_denied", "invalid_scope", "x\nCRITICAL forged", "\x00", "%00", "..",
    "a" * 5000, "https://evil.example/fhir", "http://127.0.0.1:1/fhir"]))


@fuzz(ci=30)
@given(params=st.dictionaries(
    st.sampled_from(["code", "state", "error", "error_description", "iss", "scope"]),
    callback_values, max_size=5), real_state=st.booleans())
def test_oauth_callback_parameters(web: WebStack, params: dict[str, str],
                                   real_state: bool) -> None:
    """A sign-in that comes back with anything at all: an error page, never a 500."""
    count("web: OAuth callback parameters")
    browser = web.browser()
    started = timed(browser.get, f"{web.base}/standalone", params={"iss": web.iss},
                    allow_redirects=False)
    if started.status_code == 302 and real_state:
        from urllib.parse import parse_qs, urlsplit

        state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
        params = {**params, "state": state}
    resp = timed(browser.get, f"{web.base}/callback", params=params, allow_redirects=False)
    # 302: error=invalid_scope on a v2 request is retried once with v1 scopes (a new authorize)
    assert resp.status_code in (302, 303, 400, 403, 404, 429, 502), resp.status_code


@fuzz(ci=20)
@given(iss=callback_values, launch=callback_values, path=st.sampled_from(["/launch",
                                                                         "/standalone"]))
def test_launch_parameters(web: WebStack, iss: str, launch: str, path: str) -> None:
    count("web: launch parameters")
    resp = timed(web.browser().get, web.base + path, params={"iss": iss, "launch": launch},
                 allow_redirects=False)
    assert resp.status_code in (302, 400, 429), resp.status_code


def test_the_stack_reads_an_unmutated_chart(web: WebStack, tmp_path: Path) -> None:
    """The harness itself: an overlay copy of a fixture gives the same estimate as the sandbox."""
    name = "ex05-index-1-51-25-infusions.json"
    tab = web.tab(patient_of(name))
    plain = tab.browser.get(tab.page + "/assessment", timeout=30).json()
    web.serve_chart(patient_of(name), json.loads((Path(__file__).parents[2] / "fhir_fixtures"
                                                  / name).read_text(encoding="utf-8")))
    try:
        served = tab.browser.get(tab.page + "/assessment", timeout=30).json()
    finally:
        web.overlay.clear()
    assert served["status"] == plain["status"] == "ok"
    assert served["riskAssessment"]["prediction"] == plain["riskAssessment"]["prediction"]
