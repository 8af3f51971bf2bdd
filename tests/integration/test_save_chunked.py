"""Save with a chunked body (``Transfer-Encoding: chunked``, no ``Content-Length``), as an HTTP/2
proxy with request buffering off forwards it: the body is read, so what is saved is the result
the clinician saw (what-if values included), and a stale identifier still writes nothing."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from .conftest import Stack, StackFactory
from .test_writeback import Tab

pytestmark = pytest.mark.integration

PATIENT = "ex05-index-1-51-25-infusions"
WHAT_IF = {"prior_is": "yes", "reason": "prior mitoxantrone in another country"}


def chunked_save(tab: Tab, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST the Save body in small chunks over a raw connection, with the tab's cookie."""
    url = urlsplit(tab.url + "/assessment")
    data = json.dumps(body).encode()

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 7):
            yield data[start:start + 7]

    cookie = "; ".join(f"{c.name}={c.value}" for c in tab.browser.cookies)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
    try:
        conn.request("POST", url.path, body=pieces(), encode_chunked=True, headers={
            "Content-Type": "application/json", "X-CSRF-Token": tab.csrf, "Cookie": cookie})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def saved(stack: Stack) -> list[dict[str, Any]]:
    store = stack.sandbox.extensions["sandbox"].store
    return [e.resource for e in store.search("RiskAssessment", [("patient", PATIENT)])]


def test_a_chunked_save_keeps_its_what_if_and_its_identifier(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"ehr_profile": "full"})
    tab = Tab(stack, PATIENT)
    shown = tab.assessment(**WHAT_IF).json()
    ident = shown["save"]["identifier"]
    assert ident and ident != tab.identifier  # the what-if changes the result

    status, stale = chunked_save(tab, {"identifier": tab.identifier + "0", "overrides": WHAT_IF})
    assert status == 409 and stale["saved"] is False
    assert saved(stack) == []  # an identifier that does not match what is shown never writes

    status, answer = chunked_save(tab, {"identifier": ident, "overrides": WHAT_IF})
    assert status == 200 and answer["saved"] is True, answer
    assert answer["identifier"] == ident
    [resource] = saved(stack)
    assert resource["identifier"][0]["value"] == ident
    assert resource["prediction"][0]["probabilityDecimal"] == pytest.approx(
        float(shown["result"]["per1000"]) / 10)  # in percent


def test_a_deeply_nested_save_body_is_a_clear_400_and_writes_nothing(
        make_stack: StackFactory) -> None:
    """``[`` x 3,000 makes Python's JSON parser recurse past its limit: refused before parsing,
    never a 500, whether sent with a Content-Length or chunked."""
    stack = make_stack(sandbox={"ehr_profile": "full"})
    tab = Tab(stack, PATIENT)
    deep = "[" * 3000 + "]" * 3000
    resp = tab.browser.post(tab.url + "/assessment", data=deep, timeout=30, headers={
        "Content-Type": "application/json", "X-CSRF-Token": tab.csrf})
    assert resp.status_code == 400, resp.text
    assert resp.json()["saved"] is False
    nested = {"identifier": tab.identifier, "overrides": {"x": json.loads("[" * 50 + "]" * 50)}}
    nested_text = json.dumps(nested).replace('"x": [', '"x": ' + "[" * 2000, 1)
    nested_text = nested_text.replace("]}}", "]" * 2000 + "}}", 1)
    resp = tab.browser.post(tab.url + "/assessment", data=nested_text, timeout=30, headers={
        "Content-Type": "application/json", "X-CSRF-Token": tab.csrf})
    assert resp.status_code == 400, resp.text
    assert saved(stack) == []
