"""Where the app's outbound HTTP goes: the configured egress proxy, the configured CA, and never
a cleartext endpoint for an https EHR.

Real servers on loopback: a TLS EHR whose certificate comes from a private CA made here, and a
forward proxy that records what passes through it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from smart_app.sandbox.testing import serve_in_thread

from .conftest import StackFactory
from .scripted_ehr import Script

pytestmark = pytest.mark.integration


def _cert(subject: str, issuer_key: Any, issuer: x509.Name | None, key: Any,
          *, ca: bool) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA bundle, server certificate, server key) of a CA no system trusts."""
    folder = tmp_path_factory.mktemp("ca")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("pml-risk test CA", ca_key, None, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert("127.0.0.1", ca_key, ca.subject, key, ca=False)
    bundle, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "key.pem"
    bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return bundle, cert_file, key_file


@pytest.fixture
def tls_ehr(private_ca: tuple[Path, Path, Path]) -> Iterator[tuple[str, Script]]:
    """A scripted EHR served over TLS with the private CA's certificate."""
    _, cert_file, key_file = private_ca
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    script = Script()
    server = make_server("127.0.0.1", 0, script, threaded=True, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_port}", script
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _json(body: dict[str, Any]) -> Callable[[Request], Response]:
    return lambda _req: Response(json.dumps(body), mimetype="application/json")


def _well_known(script: Script, base: str, **changes: str) -> None:
    config = {
        "issuer": f"{base}/fhir",
        "authorization_endpoint": f"{base}/auth/authorize",
        "token_endpoint": f"{base}/auth/token",
        "jwks_uri": f"{base}/auth/jwks.json",
        "revocation_endpoint": f"{base}/auth/revoke",
        "capabilities": ["launch-standalone", "client-confidential-symmetric"],
        "code_challenge_methods_supported": ["S256"],
        **changes,
    }
    script.routes["/fhir/.well-known/smart-configuration"] = _json(config)


def _standalone(make_stack: StackFactory, iss: str, ca_bundle: str | None) -> requests.Response:
    settings = {"ca_bundle": ca_bundle} if ca_bundle else {}
    stack = make_stack(auth="public", settings=settings,
                       tenants=[{"name": "TLS EHR", "iss": iss, "client_id": "c1",
                                 "auth": "public"}])
    return stack.browser().get(f"{stack.base}/standalone", params={"iss": iss},
                               allow_redirects=False, timeout=30)


def test_https_ehr_signed_by_a_private_ca_needs_ca_bundle(
    make_stack: StackFactory, tls_ehr: tuple[str, Script], private_ca: tuple[Path, Path, Path]
) -> None:
    base, script = tls_ehr
    _well_known(script, base)
    trusted = _standalone(make_stack, f"{base}/fhir", str(private_ca[0]))
    assert trusted.status_code == 302
    assert trusted.headers["Location"].startswith(f"{base}/auth/authorize?")
    untrusted = _standalone(make_stack, f"{base}/fhir", None)
    assert untrusted.status_code == 502
    assert "SMART configuration could not be read" in untrusted.text


@pytest.mark.parametrize("endpoint", ["token_endpoint", "jwks_uri", "authorization_endpoint",
                                      "revocation_endpoint"])
def test_https_ehr_naming_a_cleartext_endpoint_is_refused(
    make_stack: StackFactory, tls_ehr: tuple[str, Script], private_ca: tuple[Path, Path, Path],
    endpoint: str,
) -> None:
    """The code, the PKCE verifier and the client's credentials would travel in cleartext."""
    base, script = tls_ehr
    cleartext = base.replace("https://", "http://") + "/auth/x"
    _well_known(script, base, **{endpoint: cleartext})
    resp = _standalone(make_stack, f"{base}/fhir", str(private_ca[0]))
    assert resp.status_code == 502
    assert "Location" not in resp.headers


class ForwardProxy:
    """A plain-HTTP forward proxy: records each absolute URL, then fetches it."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.http = requests.Session()
        self.http.trust_env = False

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        url = str(environ.get("REQUEST_URI", ""))
        self.seen.append(url)
        headers = {k: v for k, v in req.headers.items()
                   if k.lower() not in ("host", "content-length", "proxy-connection")}
        upstream = self.http.request(req.method, url, headers=headers, data=req.get_data(),
                                     allow_redirects=False, timeout=30)
        drop = ("content-encoding", "content-length", "transfer-encoding", "connection")
        resp = Response(upstream.content, status=upstream.status_code,
                        headers=[(k, v) for k, v in upstream.headers.items()
                                 if k.lower() not in drop])
        return resp(environ, start_response)


@pytest.fixture
def forward_proxy() -> Iterator[tuple[str, ForwardProxy]]:
    proxy = ForwardProxy()
    with serve_in_thread(proxy) as url:
        yield url, proxy


def test_outbound_requests_go_through_the_configured_proxy(
    make_stack: StackFactory, forward_proxy: tuple[str, ForwardProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy_url, proxy = forward_proxy
    # An environment proxy is ignored: only the configured one is used. (A public client, so
    # the sandbox, which does honour the environment, need not fetch the app's JWKS.)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    stack = make_stack(auth="public", settings={"http_proxy": proxy_url})
    browser = stack.browser()
    page = browser.get(stack.launch(browser, "ex05-index-1-51-25-infusions"), timeout=30)
    assert page.status_code == 200
    paths = [url.removeprefix(stack.base) for url in proxy.seen]
    assert "/sandbox/fhir/.well-known/smart-configuration" in paths
    assert "/sandbox/auth/token" in paths
    assert any(p.startswith("/sandbox/fhir/Observation?") for p in paths)


def test_no_proxy_hosts_are_reached_directly(
    make_stack: StackFactory, forward_proxy: tuple[str, ForwardProxy]
) -> None:
    proxy_url, proxy = forward_proxy
    stack = make_stack(settings={"http_proxy": proxy_url, "no_proxy": ["127.0.0.1"]})
    browser = stack.browser()
    assert browser.get(stack.launch(browser, "ex05-index-1-51-25-infusions"),
                       timeout=30).status_code == 200
    assert proxy.seen == []
