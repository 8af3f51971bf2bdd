"""Security headers on every response, HSTS over HTTPS, and ``X-Forwarded-*`` trusted only from
the configured proxies (by default from nobody: not even gunicorn's own 127.0.0.1 default)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from .conftest import Deployment, DeploymentFactory
from .harness import CLIENT_ID, SECRET_KEY, AppProcess, free_port, write_config

FORWARDED_HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}


@pytest.fixture(scope="module")
def deployment(make_deployment: DeploymentFactory) -> Deployment:
    return make_deployment(redis=False)


def _instance(d: Deployment, name: str, **config: Any) -> AppProcess:
    port = free_port()
    path = write_config(
        d.tmp / f"{name}.toml",
        base_url=config.pop("base_url", f"http://127.0.0.1:{port}"),
        secret_key=SECRET_KEY,
        session_store=f"sqlite:///{d.tmp / 'headers.sqlite3'}",
        keys_file=str(d.keys_file),
        **config,
        tenants=[{"iss": d.iss, "client_id": CLIENT_ID,
                  "frame_ancestors": ["https://ehr.example.org"]}],
    )
    app = AppProcess(path, port, d.tmp / f"{name}.log")
    d.instances.append(app)
    app.start()
    return app


def test_headers_everywhere_and_no_proxy_trust_by_default(deployment: Deployment) -> None:
    app = _instance(deployment, "plain")
    for path in ("/", "/healthz", "/readyz", "/.well-known/jwks.json", "/no-such-page",
                 "/launches/unknown"):
        resp = requests.get(app.base + path, timeout=10)
        h = resp.headers
        csp = h["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
        assert "frame-ancestors 'self' https://ehr.example.org" in csp
        assert "'unsafe-inline'" not in csp
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "no-referrer"
        assert "camera=()" in h["Permissions-Policy"]
        assert len(h["X-Request-ID"]) == 16
        assert "Strict-Transport-Security" not in h, path  # plain http, no trusted proxy
    spoofed = requests.get(app.base + "/healthz", headers=FORWARDED_HTTPS, timeout=10)
    assert "Strict-Transport-Security" not in spoofed.headers


def test_trusted_proxy_https_gets_hsts(deployment: Deployment) -> None:
    app = _instance(deployment, "proxied",
                    proxy={"trusted_hops": 1, "trusted_addresses": ["127.0.0.1/32"]})
    direct = requests.get(app.base + "/healthz", timeout=10)
    assert "Strict-Transport-Security" not in direct.headers
    via_proxy = requests.get(app.base + "/healthz", headers=FORWARDED_HTTPS, timeout=10)
    assert via_proxy.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_proxy_headers_from_other_addresses_are_ignored(deployment: Deployment) -> None:
    app = _instance(deployment, "elsewhere",
                    proxy={"trusted_hops": 1, "trusted_addresses": ["10.0.0.0/8"]})
    resp = requests.get(app.base + "/healthz", headers=FORWARDED_HTTPS, timeout=10)
    assert "Strict-Transport-Security" not in resp.headers


def test_https_base_url_cookie_and_hsts(deployment: Deployment) -> None:
    d = deployment
    app = _instance(d, "https", base_url="https://pml-risk.example.org")
    resp = requests.get(f"{app.base}/launch", params={"iss": d.iss, "launch": "x"},
                        allow_redirects=False, timeout=10)
    # The sandbox advertises authorize-post: an EHR launch goes as an auto-submitting form.
    assert resp.status_code == 200 and 'id="authorize"' in resp.text
    assert resp.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert resp.headers["X-UA-Compatible"] == "IE=edge"
    # IE in an EHR frame keeps the session cookie only with a P3P compact policy.
    assert resp.headers["P3P"].startswith('CP="')
    cookie = resp.headers["Set-Cookie"]
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Partitioned"):
        assert attribute in cookie, cookie
    assert 'name="redirect_uri" value="https://pml-risk.example.org/callback"' in resp.text
