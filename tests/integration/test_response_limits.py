"""Bounds on what an EHR can make the app read, and where a ``next`` link may lead.

Each case is a misbehaving server over real HTTP on loopback: an oversized answer, a page with
more entries than ``_count``, an answer dripped just inside the per-read timeout, fan-out past
the request and resource caps, and ``next`` links that resolve outside the FHIR base.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from smart_app.fhir import capability
from smart_app.fhir.client import FhirClient, FhirError, ReadPlan, transport
from smart_app.fhir.client import chart as fhir_client
from smart_app.http.bounded import DeadlineExceeded, ResponseTooLarge, deadline_in, get_json
from smart_app.smart.discovery import DiscoveryError, fetch
from smart_app.smart.id_token import IdTokenError, JwksCache
from smart_app.smart.scopes import GrantedScopes
from smart_app.web.page.capability import ASSUMED, CapabilityCache
from smart_app.web.page.style import StyleCache

from .conftest import StackFactory
from .scripted_ehr import Handler, Script

pytestmark = pytest.mark.integration

ALL = GrantedScopes.parse("patient/*.rs")
PATIENT = "ex05-index-1-51-25-infusions"


def fhir(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/fhir+json")


def obs(i: int, pid: str = "p1") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"o{i}", "status": "final",
            "subject": {"reference": f"Patient/{pid}"}, "code": {"text": "x"}}


def bundle(*resources: dict[str, Any], next_url: str | None = None,
           mode: str | None = "match") -> dict[str, Any]:
    entry = [{"resource": r, **({"search": {"mode": mode}} if mode else {})} for r in resources]
    return {"resourceType": "Bundle", "type": "searchset", "entry": entry,
            "link": [{"relation": "next", "url": next_url}] if next_url else []}


def patient_routes(script: Script, **overrides: Handler) -> None:
    empty: Handler = lambda _req: fhir(bundle())  # noqa: E731
    script.routes.update({
        "/fhir/Patient/p1": lambda _req: fhir({"resourceType": "Patient", "id": "p1"}),
        "/fhir/Observation": empty,
        "/fhir/MedicationAdministration": empty,
        "/fhir/MedicationStatement": empty,
        "/fhir/MedicationRequest": empty,
    })
    script.routes.update({f"/fhir/{k}": v for k, v in overrides.items()})


def client(base: str, timeout: float = 5, page_size: int = 1000, max_pages: int = 3
           ) -> FhirClient:
    http = requests.Session()
    http.trust_env = False
    return FhirClient(http, f"{base}/fhir", lambda _rejected: "t0ken", timeout=timeout,
                      max_pages=max_pages, page_size=page_size)


def streamed(total: int, piece: int = 1 << 20) -> Response:
    """A JSON-ish body of ``total`` bytes, chunked (no Content-Length)."""

    def body() -> Iterator[bytes]:
        yield b'{"resourceType":"Bundle","type":"searchset","entry":[],"pad":"'
        sent = 0
        while sent < total:
            yield b"x" * piece
            sent += piece
        yield b'"}'

    return Response(body(), mimetype="application/fhir+json", direct_passthrough=True)


def dripping(seconds: float, every: float = 0.4) -> Response:
    """A valid Bundle sent one byte per ``every`` seconds: each read is inside any timeout."""

    def body() -> Iterator[bytes]:
        yield b'{"resourceType":"Bundle","type":"searchset","entry":['
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(every)
            yield b" "
        yield b"]}"

    return Response(body(), mimetype="application/fhir+json", direct_passthrough=True)


# -- size ----------------------------------------------------------------------------------


def test_an_oversized_streamed_page_is_refused_without_reading_it_all(
    ehr: tuple[str, Script],
) -> None:
    base, script = ehr
    patient_routes(script, Observation=lambda _req: streamed(200 * (1 << 20)))
    started = time.monotonic()
    with pytest.raises(FhirError, match=r"larger than 20 MB \(Observation\)"):
        client(base).read_chart("p1", ALL)
    assert time.monotonic() - started < 10  # stopped near 20 MB, not after 200 MB


def test_an_oversized_page_with_content_length_is_refused_up_front(
    ehr: tuple[str, Script],
) -> None:
    base, script = ehr
    big = json.dumps(bundle(*[obs(i) for i in range(80_000)]), indent=2).encode() + b" " * (
        8 << 20)
    assert len(big) > transport.MAX_PAGE_BYTES
    patient_routes(script, Observation=lambda _req: Response(big, mimetype="application/json"))
    with pytest.raises(FhirError, match="larger than 20 MB"):
        client(base).read_chart("p1", ALL)


def test_a_page_with_more_entries_than_count_is_refused(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    patient_routes(script, Observation=lambda _req: fhir(bundle(*[obs(i) for i in range(6)])))
    with pytest.raises(FhirError, match=r"page of 6 entries when 5 were asked for"):
        client(base, page_size=5).read_chart("p1", ALL)
    # Entries marked "include" do not escape the count on a search without _include.
    patient_routes(script, Observation=lambda _req: fhir(
        bundle(*[obs(i) for i in range(6)], mode="include")))
    with pytest.raises(FhirError, match="entries when 5 were asked for"):
        client(base, page_size=5).read_chart("p1", ALL)


def test_count_matches_plus_as_many_includes_are_accepted(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    admins = [{"resourceType": "MedicationAdministration", "id": f"a{i}",
               "subject": {"reference": "Patient/p1"},
               "medicationReference": {"reference": f"Medication/m{i}"}} for i in range(5)]
    meds = [{"resourceType": "Medication", "id": f"m{i}"} for i in range(5)]
    page = bundle(*admins, *meds, mode=None)  # no search.mode: inferred from the type
    patient_routes(script, MedicationAdministration=lambda _req: fhir(page),
                   Observation=lambda _req: fhir(bundle(*[obs(i) for i in range(5)])))
    plan = ReadPlan(capabilities=capability.parse({
        "resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": [
            {"type": t} for t in ("Observation", "MedicationStatement", "MedicationRequest",
                                  "Medication")] + [
            {"type": "MedicationAdministration",
             "searchInclude": ["MedicationAdministration:medication"]}]}]}))
    data = client(base, page_size=5).read_chart("p1", ALL, plan)
    assert len(data.resources) == 1 + 5 + 5 + 5 and data.round_trips == 1
    assert "_include=MedicationAdministration" in script.queries["/fhir/MedicationAdministration"]
    # Without searchInclude the app does not ask for includes, and does not accept them.
    with pytest.raises(FhirError, match="entries when 5 were asked for"):
        client(base, page_size=5).read_chart("p1", ALL)


def test_resource_and_request_caps_end_a_runaway_chart(
    ehr: tuple[str, Script], monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, script = ehr
    page = {"n": 0}

    def endless(req: Request) -> Response:
        page["n"] += 1
        return fhir(bundle(*[obs(page["n"] * 10 + i) for i in range(10)],
                           next_url=f"{base}/fhir/Observation?page={page['n']}"))

    patient_routes(script, Observation=endless)
    monkeypatch.setattr(fhir_client, "MAX_RESOURCES", 25)
    with pytest.raises(FhirError, match="more than 25 resources"):
        client(base, page_size=10, max_pages=100).read_chart("p1", ALL)

    monkeypatch.setattr(fhir_client, "MAX_RESOURCES", 20_000)
    monkeypatch.setattr(fhir_client, "MAX_REQUESTS", 8)
    script.hits.clear()
    with pytest.raises(FhirError, match="more than 8 requests"):
        client(base, page_size=10, max_pages=100).read_chart("p1", ALL)
    assert len(script.hits) <= 8


def test_medication_fan_out_is_capped(
    ehr: tuple[str, Script], monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, script = ehr
    admins = [{"resourceType": "MedicationAdministration", "id": f"a{i}",
               "subject": {"reference": "Patient/p1"},
               "medicationReference": {"reference": f"Medication/m{i}"}} for i in range(300)]
    patient_routes(script, MedicationAdministration=lambda _req: fhir(bundle(*admins)),
                   Medication=lambda _req: fhir(bundle()))
    monkeypatch.setattr(fhir_client, "MAX_MEDICATION_IDS", 250)
    with pytest.raises(FhirError, match="more than 250 medications"):
        client(base).read_chart("p1", ALL)
    assert "/fhir/Medication" not in script.hits


# -- time ----------------------------------------------------------------------------------


def test_a_slow_drip_answer_is_cut_at_the_deadline(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    patient_routes(script, Observation=lambda _req: dripping(20))
    started = time.monotonic()
    with pytest.raises(FhirError, match=r"did not answer in time \(Observation\)"):
        client(base, timeout=1.0).read_chart("p1", ALL)  # deadline: 3 x 1 s
    assert time.monotonic() - started < 5


def test_a_retry_is_not_slept_past_the_deadline(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    patient_routes(script, Observation=lambda _req: Response(
        "{}", status=429, headers={"Retry-After": "4"}))
    started = time.monotonic()
    with pytest.raises(FhirError, match="429"):
        client(base, timeout=1.0).read_chart("p1", ALL)
    assert time.monotonic() - started < 2


def test_limits_on_the_other_ehr_documents(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    http = requests.Session()
    http.trust_env = False
    script.routes["/fhir/.well-known/smart-configuration"] = lambda _req: streamed(3 << 20)
    with pytest.raises(DiscoveryError, match="ResponseTooLarge"):
        fetch(http, f"{base}/fhir", timeout=5)
    script.routes["/fhir/.well-known/smart-configuration"] = lambda _req: dripping(20)
    started = time.monotonic()
    with pytest.raises(DiscoveryError, match="DeadlineExceeded"):
        fetch(http, f"{base}/fhir", timeout=0.5)
    assert time.monotonic() - started < 4
    script.routes["/jwks"] = lambda _req: streamed(3 << 20)
    with pytest.raises(IdTokenError, match="ResponseTooLarge"):
        JwksCache().get(http, f"{base}/jwks", 5, fresh=True)
    script.routes["/fhir/style"] = lambda _req: streamed(3 << 20)
    assert StyleCache().css_variables(http, f"{base}/fhir/style", f"{base}/fhir", 5) == {}
    script.routes["/fhir/metadata"] = lambda _req: streamed(3 << 20)
    assert CapabilityCache().get(http, f"{base}/fhir", 5) == ASSUMED


def test_the_helper_raises_clear_errors(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    http = requests.Session()
    http.trust_env = False
    script.routes["/big"] = lambda _req: streamed(2 << 20, piece=1 << 16)
    script.routes["/slow"] = lambda _req: dripping(10, every=0.2)
    script.routes["/ok"] = lambda _req: fhir({"a": 1})
    with pytest.raises(ResponseTooLarge):
        get_json(http, f"{base}/big", max_bytes=1 << 20, deadline=deadline_in(10), timeout=5)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        get_json(http, f"{base}/slow", max_bytes=1 << 20, deadline=deadline_in(1), timeout=5)
    assert time.monotonic() - started < 2
    assert get_json(http, f"{base}/ok", max_bytes=100, deadline=deadline_in(5), timeout=5) == {
        "a": 1}


# -- next links ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/fhir/../other-app/collect?x=1",
    "/fhir/%2e%2e/other-app/collect",
    "/fhir/%2E%2E/other-app/collect",
    "/fhir/.%2e/other-app/collect",
    "/fhir/%252e%252e/other-app/collect",
    "/fhir/Observation/../../other-app/collect",
    "/fhir/./Observation",
    "/fhir/..%2fother-app/collect",
    "/fhir\\..\\other-app/collect",
    "/fhirx/Observation",
    "/other-app/fhir/Observation",
    "/fhir/.\t./other-app/collect",
])
def test_a_next_link_leaving_the_base_path_is_refused(
    ehr: tuple[str, Script], path: str,
) -> None:
    base, script = ehr
    patient_routes(script, Observation=lambda _req: fhir(bundle(next_url=f"{base}{path}")))
    with pytest.raises(FhirError, match="next link to another server"):
        client(base).read_chart("p1", ALL)
    assert all(hit.startswith("/fhir/") for hit in script.hits), script.hits
    assert not any("other-app" in hit for hit in script.hits)


@pytest.mark.parametrize("make", [
    lambda base: base.replace("http://", "https://") + "/fhir/Observation",
    lambda base: base.replace("127.0.0.1", "localhost") + "/fhir/Observation",
    lambda base: base.rsplit(":", 1)[0] + ":1/fhir/Observation",
    lambda base: base.replace("http://", "http://user:pw@") + "/fhir/Observation",
    lambda base: "//elsewhere.example/fhir/Observation",
    lambda base: "/fhir/Observation?page=2",
])
def test_a_next_link_to_another_origin_is_refused(
    ehr: tuple[str, Script], make: Callable[[str], str],
) -> None:
    base, script = ehr
    patient_routes(script, Observation=lambda _req: fhir(bundle(next_url=make(base))))
    with pytest.raises(FhirError, match="next link to another server"):
        client(base).read_chart("p1", ALL)
    assert script.hits.count("/fhir/Observation") == 1


def test_a_next_link_on_the_base_is_followed(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    host = base.replace("http://", "HTTP://")  # the scheme is compared case-insensitively

    def paged(req: Request) -> Response:
        if req.args.get("page") == "2":
            return fhir(bundle(obs(2)))
        return fhir(bundle(obs(1), next_url=f"{host}/fhir/Observation?page=2&_count=1000"))

    patient_routes(script, Observation=paged)
    data = client(base).read_chart("p1", ALL)
    assert data.round_trips == 2 and data.requests == 9  # with the three brain-MRI searches
    assert {r["id"] for r in data.resources if r["resourceType"] == "Observation"} == {"o1", "o2"}


def test_a_next_link_to_the_base_itself_is_followed(ehr: tuple[str, Script]) -> None:
    """HAPI pages through the base: ``{base}?_getpages=...``."""
    base, script = ehr
    script.routes["/fhir"] = lambda _req: fhir(bundle(obs(2)))
    patient_routes(script, Observation=lambda _req: fhir(
        bundle(obs(1), next_url=f"{base}/fhir?_getpages=abc&_getpagesoffset=1000")))
    data = client(base).read_chart("p1", ALL)
    assert data.round_trips == 2 and "/fhir" in script.hits


# -- through the app -----------------------------------------------------------------------


def _hostile(stack_sandbox: Any, handler: Handler) -> None:
    """Let ``handler`` answer the sandbox's Observation search (None: the sandbox answers)."""
    inner = stack_sandbox.wsgi_app

    def middleware(environ: Any, start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/fhir/Observation":
            return handler(Request(environ))(environ, start_response)
        return inner(environ, start_response)

    stack_sandbox.wsgi_app = middleware


@pytest.mark.parametrize(("answer", "message"), [
    (lambda _req: streamed(30 << 20), "larger than 20 MB"),
    (lambda _req: dripping(20), "did not answer in time"),
])
def test_the_launch_page_shows_a_clear_error_in_bounded_time(
    make_stack: StackFactory, answer: Handler, message: str,
) -> None:
    stack = make_stack(settings={"fhir_timeout": 1.0})
    browser = stack.browser()
    page = stack.launch(browser, PATIENT)
    _hostile(stack.sandbox, answer)
    started = time.monotonic()
    resp = browser.get(page, timeout=30)
    assert time.monotonic() - started < 6
    assert resp.status_code == 502
    assert "The chart could not be read" in resp.text and message in resp.text
