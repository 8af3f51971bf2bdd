"""Fixes from the security review, each shown with real HTTP on loopback."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from smart_app import config
from smart_app.app import create_app
from smart_app.http.session import make_http
from smart_app.sandbox.testing import serve_in_thread
from smart_app.web.services import EXTENSION, Services

from .conftest import Stack

pytestmark = pytest.mark.integration


class Recorder:
    """A scripted server: fixed responses by path, every request path recorded."""

    def __init__(self, routes: dict[str, Response]) -> None:
        self.routes = routes
        self.hits: list[str] = []
        self.cookies: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.hits.append(request.path)
            self.cookies.append(request.headers.get("Cookie", ""))
        response = self.routes.get(request.path, Response("{}", status=404))
        return response(environ, start_response)


@pytest.fixture
def recorder() -> Iterator[tuple[str, Recorder]]:
    script = Recorder({})
    with serve_in_thread(script) as base:
        yield base, script


def test_a_planted_cookie_does_not_open_the_victims_launch(stack: Stack) -> None:
    """Session fixation: the attacker's cookie shares the sid, not the launch list."""
    attacker = stack.browser()
    attacker.get(f"{stack.base}/standalone", params={"iss": stack.iss}, allow_redirects=False,
                 timeout=10)
    planted = attacker.cookies.get("pml_risk")
    assert planted
    victim = stack.browser()
    for cookie in attacker.cookies:  # the same cookie, as a browser would hold it
        victim.cookies.set_cookie(copy.copy(cookie))
    page = stack.launch(victim, "ex05-index-1-51-25-infusions")
    assert victim.get(page, timeout=30).status_code == 200
    stolen = attacker.get(page, timeout=30)
    assert stolen.status_code == 404
    assert "Priya" not in stolen.text


def test_the_session_cookie_ends_with_the_browser(stack: Stack) -> None:
    resp = stack.browser().get(f"{stack.base}/standalone", params={"iss": stack.iss},
                               allow_redirects=False, timeout=10)
    cookie = resp.headers["Set-Cookie"].lower()
    assert "expires=" not in cookie and "max-age=" not in cookie


def test_the_shared_http_session_never_replays_an_ehr_cookie(
    recorder: tuple[str, Recorder],
) -> None:
    base, script = recorder
    script.routes["/set"] = Response("{}", headers={"Set-Cookie": "EHRSESSION=dr-a; Path=/"})
    script.routes["/next"] = Response("{}")
    http = make_http()
    http.get(f"{base}/set", timeout=5)
    http.get(f"{base}/next", timeout=5)
    assert script.cookies == ["", ""]


def _app_for(iss: str, tmp: str) -> Any:
    settings = config.from_mapping({
        "base_url": "http://127.0.0.1:9",
        "secret_key": "k" * 48,
        "session_store": "memory://",
        "keys_file": f"{tmp}/keys.json",
        "tenants": [{"name": "scripted", "iss": iss, "client_id": "c", "auth": "public"}],
    })
    return create_app(settings), settings.tenants[0]


def test_a_token_endpoint_redirect_is_not_followed(
    recorder: tuple[str, Recorder], tmp_path: Any
) -> None:
    base, script = recorder
    script.routes["/fhir/.well-known/smart-configuration"] = Response(json.dumps({
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "capabilities": ["launch-ehr"],
        "code_challenge_methods_supported": ["S256"],
    }), mimetype="application/json")
    script.routes["/token"] = Response("", status=307, headers={"Location": f"{base}/stolen"})
    app, tenant = _app_for(f"{base}/fhir", str(tmp_path))
    services: Services = app.extensions[EXTENSION]
    with app.test_request_context(), pytest.raises(Exception):  # noqa: B017
        services.refresh_call(tenant)("refresh-token-1")
    assert "/token" in script.hits
    assert "/stolen" not in script.hits


def test_a_callback_naming_another_issuer_is_refused(stack: Stack) -> None:
    browser = stack.browser()
    start = f"{stack.base}/sandbox/launch?patient=ex01-negative-30"
    to_callback = stack.to_callback(browser, start)
    location = to_callback.headers["Location"] + "&iss=https%3A%2F%2Fattacker.example%2F"
    resp = browser.get(location, allow_redirects=False, timeout=30)
    assert resp.status_code == 400
    assert "wrong server" in resp.text


def test_an_unrelated_http_library_default_is_not_relied_on() -> None:
    """The pooled session sends no environment proxy settings or netrc credentials."""
    assert make_http().trust_env is False
    assert requests.Session().trust_env is True  # the default we deliberately change
