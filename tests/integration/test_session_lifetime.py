"""A launch lives at most ``session_ttl`` from the sign-in (token refreshes do not extend it),
ends after ``session_idle_timeout`` without a request, and ends at once on logout, with its
tokens revoked where the EHR offers revocation."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest
import requests
from werkzeug.wrappers import Request, Response

from .conftest import Stack, StackFactory
from .scripted_ehr import Script

pytestmark = pytest.mark.integration

PATIENT = "ex05-index-1-51-25-infusions"


def _until(condition: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(every)
    return condition()


def _status(browser: requests.Session, page: str) -> int:
    return browser.get(page + "/assessment", timeout=30).status_code


def test_refreshes_do_not_extend_the_absolute_lifetime(make_stack: StackFactory) -> None:
    stack = make_stack(settings={"session_ttl": 4})
    stack.control(token_lifetime=1)  # a refresh about every half second of use
    browser = stack.browser()
    signed_in = time.monotonic()
    page = stack.launch(browser, PATIENT)
    assert _status(browser, page) == 200
    refreshes = len(stack.token_requests())
    # Reloading the page reads the chart (what-if and the JSON work from the visit's snapshot),
    # so each reload past the token's life refreshes it.
    ended = _until(lambda: browser.get(page, timeout=30).status_code == 404, timeout=8,
                   every=0.3)
    lived = time.monotonic() - signed_in
    assert len(stack.token_requests()) > refreshes + 1, "the token was refreshed meanwhile"
    assert ended and lived < 6.5, f"the launch lived {lived:.1f} s with session_ttl = 4"


def test_an_idle_launch_ends_and_an_active_one_does_not(make_stack: StackFactory) -> None:
    stack = make_stack(settings={"session_idle_timeout": 2})
    browser = stack.browser()
    active = stack.launch(browser, PATIENT)
    idle = stack.launch(browser, PATIENT)
    for _ in range(6):  # 3 s of use, one request every half second
        assert _status(browser, active) == 200
        time.sleep(0.5)
    assert _status(browser, idle) == 404
    resp = browser.get(idle, timeout=30)
    assert resp.status_code == 404 and "Launch the app again" in resp.text


def _csrf(browser: requests.Session, page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">',
                      browser.get(page, timeout=30).text)
    assert found is not None
    return found.group(1)


def test_logout_ends_the_launch_and_revokes_its_tokens(
    stack: Stack, ehr: tuple[str, Script]
) -> None:
    revocations: list[dict[str, str]] = []

    def revoke(req: Request) -> Response:
        revocations.append(dict(req.form))
        return Response("", status=200)

    base, script = ehr
    script.routes["/revoke"] = revoke
    config = requests.get(f"{stack.iss}/.well-known/smart-configuration", timeout=10).json()
    stack.overlay.answer("/fhir/.well-known/smart-configuration",
                         json.dumps({**config,
                                     "revocation_endpoint": f"{base}/revoke"}))
    browser = stack.browser()
    page = stack.launch(browser, PATIENT)
    token = _csrf(browser, page)
    refused = browser.post(page + "/logout", data={"csrf_token": "wrong"}, timeout=30)
    assert refused.status_code == 403 and _status(browser, page) == 200

    done = browser.post(page + "/logout", data={"csrf_token": token}, timeout=30)
    assert done.status_code == 200 and "Signed out" in done.text
    assert _status(browser, page) == 404
    assert [r["token_type_hint"] for r in revocations] == ["refresh_token", "access_token"]
    assert all(r["token"] for r in revocations)


def test_logout_without_revocation_endpoint_still_ends_the_launch(stack: Stack) -> None:
    browser = stack.browser()
    page = stack.launch(browser, PATIENT)
    done = browser.post(page + "/logout", headers={"X-CSRF-Token": _csrf(browser, page),
                                                   "Accept": "application/json"}, timeout=30)
    assert done.json() == {"loggedOut": True, "revocation": "not-offered"}
    assert _status(browser, page) == 404
