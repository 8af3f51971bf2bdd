"""The app and the sandbox EHR, served over real HTTP on loopback, driven like a browser.

One server per stack: the app at ``/`` and the sandbox at ``/sandbox`` (the demo's layout). The
app's settings need the port, which is only known once the socket is bound, so the server starts
with a late-bound WSGI callable and the apps are built right after.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from smart_app.app import create_app
from smart_app.config import Settings, from_mapping
from smart_app.sandbox import SandboxClient, SandboxConfig, create_sandbox
from smart_app.sandbox.testing import LateApp, Overlay, serve_in_thread, submit_auto_form
from smart_app.smart import keys
from smart_app.web.services import EXTENSION, Services

from .scripted_ehr import ehr  # noqa: F401  (a fixture: registered by being here)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fhir_fixtures"
CLIENT_ID = "pml-risk-test"
SECRET = "s3cret-" + "x" * 24

pytestmark = pytest.mark.integration


@dataclass
class Stack:
    base: str
    app: Flask
    sandbox: Flask
    settings: Settings
    overlay: Overlay

    @property
    def iss(self) -> str:
        return f"{self.base}/sandbox/fhir"

    @property
    def services(self) -> Services:
        found: Services = self.app.extensions[EXTENSION]
        return found

    def browser(self) -> requests.Session:
        http = requests.Session()
        http.trust_env = False
        return http

    def control(self, **changes: Any) -> dict[str, Any]:
        resp = requests.post(f"{self.base}/sandbox/_control", json=changes, timeout=10)
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        return data

    def requests_log(self) -> list[dict[str, Any]]:
        resp = requests.get(f"{self.base}/sandbox/_control", timeout=10)
        log: list[dict[str, Any]] = resp.json()["requests"]
        return log

    def clear_log(self) -> None:
        self.control(clear_requests=True)

    def fhir_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests_log() if r["path"].startswith("/sandbox/fhir/")
                and ".well-known" not in r["path"]]

    def chart_requests(self) -> list[dict[str, Any]]:
        """FHIR requests other than the open CapabilityStatement (read before authorizing)."""
        return [r for r in self.fhir_requests() if not r["path"].endswith("/metadata")]

    def token_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests_log() if r["path"] == "/sandbox/auth/token"]

    # -- browser flows ------------------------------------------------------------------

    def to_callback(self, browser: requests.Session, start: str) -> requests.Response:
        """Follow redirects from ``start`` until the browser is sent to the app's /callback.

        Returns the redirect response whose Location is the callback (not yet followed).
        """
        url = start
        for _ in range(10):
            resp = submit_auto_form(
                browser, browser.get(url, allow_redirects=False, timeout=30), url)
            if resp.status_code not in (301, 302, 303, 307):
                return resp
            location = urljoin(url, resp.headers["Location"])
            if urlsplit(location).path == "/callback":
                resp.headers["Location"] = location
                return resp
            url = location
        raise AssertionError("too many redirects")

    def launch(self, browser: requests.Session, patient: str, **extra: str) -> str:
        """EHR launch for ``patient``; returns the launch page URL."""
        query = "&".join(f"{k}={v}" for k, v in {"patient": patient, **extra}.items())
        return self.finish(browser, f"{self.base}/sandbox/launch?{query}")

    def finish(self, browser: requests.Session, start: str) -> str:
        resp = self.to_callback(browser, start)
        assert resp.status_code == 302, (resp.status_code, resp.text[:500])
        done = browser.get(resp.headers["Location"], allow_redirects=False, timeout=30)
        assert done.status_code == 303, (done.status_code, done.text[:800])
        return urljoin(self.base, done.headers["Location"])


def callback_params(resp: requests.Response) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}


@pytest.fixture(scope="session")
def signing_keys() -> keys.SigningKeys:
    return keys.generate()


StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(
    tmp_path: Path, signing_keys: keys.SigningKeys
) -> Iterator[StackFactory]:
    servers: list[Any] = []

    def build(
        *,
        auth: str = "private_key_jwt",
        signing_alg: str = "ES384",
        scopes: str = "v2",
        store: str | None = None,
        base_url: str | None = None,
        sandbox: dict[str, Any] | None = None,
        tenants: list[dict[str, Any]] | None = None,
        settings: dict[str, Any] | None = None,
        tenant: dict[str, Any] | None = None,
    ) -> Stack:
        late = LateApp()
        ctx = serve_in_thread(late)
        base = ctx.__enter__()
        servers.append(ctx)
        keys_file = tmp_path / "jwks-private.json"
        keys.save(signing_keys, keys_file)
        main_tenant: dict[str, Any] = {
            **(tenant or {}),
            "name": "Sandbox",
            "iss": f"{base}/sandbox/fhir",
            "client_id": CLIENT_ID,
            "auth": auth,
            "scopes": scopes,
            "signing_alg": signing_alg,
        }
        if auth == "client_secret_basic":
            main_tenant["client_secret"] = SECRET
        app_settings = from_mapping(
            {
                **(settings or {}),
                "base_url": base_url or base,
                "secret_key": secrets.token_urlsafe(40),
                "session_store": store or f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
                "keys_file": str(keys_file),
                "tenants": [main_tenant, *(tenants or [])],
            }
        )
        app = create_app(app_settings, keys=signing_keys)
        sandbox_options = {"fixtures_dir": FIXTURES, **(sandbox or {})}
        sandbox_app = create_sandbox(
            SandboxConfig(  # type: ignore[arg-type]
                clients=(
                    SandboxClient(
                        client_id=CLIENT_ID,
                        auth=auth,  # type: ignore[arg-type]
                        redirect_uris=(f"{base}/callback",),
                        client_secret=SECRET if auth == "client_secret_basic" else None,
                        jwks_uri=f"{base}/.well-known/jwks.json"
                        if auth == "private_key_jwt"
                        else None,
                    ),
                ),
                launch_url="/launch",
                allow_control=True,
                **sandbox_options,
            )
        )
        overlay = Overlay(sandbox_app)
        late.target = DispatcherMiddleware(app, {"/sandbox": overlay})
        return Stack(base=base, app=app, sandbox=sandbox_app, settings=app_settings,
                     overlay=overlay)

    yield build
    for ctx in reversed(servers):
        ctx.__exit__(None, None, None)


@pytest.fixture
def stack(make_stack: StackFactory) -> Stack:
    return make_stack()


@pytest.fixture
def expected() -> dict[str, dict[str, Any]]:
    import json

    index = json.loads((FIXTURES / "index.json").read_text(encoding="utf-8"))
    return {item["id"]: item["expected"] for item in index}
