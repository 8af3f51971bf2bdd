"""The app and the sandbox EHR as CDS service and CDS client, over real HTTP on loopback.

One server per stack, the demo's layout: the app at ``/`` (its CDS services at
``/cds-services``) and the sandbox at ``/sandbox``, whose CDS client signs with its own key and
is the tenant's allowlisted issuer. ``Stack.fire`` drives the client through ``/sandbox/_cds``.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from smart_app.app import create_app
from smart_app.config import Settings, from_mapping
from smart_app.ops.audit import LOGGER
from smart_app.sandbox import SandboxClient, SandboxConfig, create_sandbox
from smart_app.sandbox.testing import LateApp, serve_in_thread, submit_auto_form
from smart_app.smart import keys

from .ehr import AuditLines

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fhir_fixtures"
CLIENT_ID = "pml-risk-cds-test"
SLUG = "sandbox"


@dataclass
class Stack:
    base: str
    app: Flask
    sandbox: Flask
    settings: Settings

    @property
    def iss(self) -> str:
        return f"{self.base}/sandbox/fhir"

    def fire(self, hook: str, patient: str, **knobs: Any) -> dict[str, Any]:
        resp = requests.post(f"{self.base}/sandbox/_cds",
                             json={"hook": hook, "patient": patient, **knobs}, timeout=60)
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        return data

    def card(self, hook: str, patient: str, **knobs: Any) -> dict[str, Any]:
        data = self.fire(hook, patient, **knobs)
        assert data["status"] == 200, data
        cards: list[dict[str, Any]] = data["body"]["cards"]
        assert len(cards) == 1, cards
        return cards[0]

    def control(self, **changes: Any) -> dict[str, Any]:
        resp = requests.post(f"{self.base}/sandbox/_control", json=changes, timeout=10)
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        return data


StackFactory = Callable[..., Stack]


@pytest.fixture(scope="session")
def signing_keys() -> keys.SigningKeys:
    return keys.generate()


@pytest.fixture
def make_stack(tmp_path: Path, signing_keys: keys.SigningKeys) -> Iterator[StackFactory]:
    servers: list[Any] = []

    def build(*, cds: dict[str, Any] | None = None, services: str = "/cds-services",
              settings: dict[str, Any] | None = None, sandbox: dict[str, Any] | None = None,
              store: str | None = None, tenant: dict[str, Any] | None = None) -> Stack:
        late = LateApp()
        ctx = serve_in_thread(late)
        base = ctx.__enter__()
        servers.append(ctx)
        keys_file = tmp_path / "jwks-private.json"
        keys.save(signing_keys, keys_file)
        app_settings = from_mapping({
            **(settings or {}),
            "base_url": base,
            "secret_key": secrets.token_urlsafe(40),
            "session_store": store or f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
            "keys_file": str(keys_file),
            "tenants": [{
                **(tenant or {}),
                "name": "Sandbox", "iss": f"{base}/sandbox/fhir", "client_id": CLIENT_ID,
                "auth": "private_key_jwt", "signing_alg": "ES384",
                "cds": {"issuer": f"{base}/sandbox",
                        "jwks_url": f"{base}/sandbox/cds/jwks.json", "slug": SLUG,
                        **(cds or {})},
            }],
        })
        app = create_app(app_settings, keys=signing_keys)
        sandbox_app = create_sandbox(SandboxConfig(
            fixtures_dir=FIXTURES,
            clients=(SandboxClient(client_id=CLIENT_ID, auth="private_key_jwt",
                                   redirect_uris=(f"{base}/callback",),
                                   jwks=signing_keys.public_jwks()),),
            launch_url="/launch",
            allow_control=True,
            cds_services=services,
            **(sandbox or {}),
        ))
        late.target = DispatcherMiddleware(app, {"/sandbox": sandbox_app})
        return Stack(base=base, app=app, sandbox=sandbox_app, settings=app_settings)

    yield build
    for ctx in reversed(servers):
        ctx.__exit__(None, None, None)


@pytest.fixture
def stack(make_stack: StackFactory) -> Stack:
    return make_stack()


@pytest.fixture(scope="session")
def fixture_index() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((FIXTURES / "index.json").read_text("utf-8"))
    return data


@pytest.fixture
def audit_lines() -> Iterator[AuditLines]:
    handler = AuditLines()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def follow_to_app(base: str, start: str) -> tuple[requests.Session, str]:
    """Follow a launch like a browser (sandbox launch → authorize → callback → page); returns
    the browser session and the app's launch page URL."""
    from urllib.parse import urljoin

    browser = requests.Session()
    browser.trust_env = False
    url = start
    for _ in range(10):
        resp = submit_auto_form(browser, browser.get(url, allow_redirects=False, timeout=30),
                                url)
        if resp.status_code not in (302, 303):
            break
        url = urljoin(url, resp.headers["Location"])
        if "/launches/" in url:
            return browser, url
    raise AssertionError(f"the launch did not reach the app: {resp.status_code} {url}")
