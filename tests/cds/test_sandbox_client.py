"""The sandbox as a CDS client on its own: what it sends, and that it shows a hostile service's
cards as text (an EHR must not run markup a CDS service sends)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.wrappers import Response

from smart_app.sandbox import SandboxConfig, create_sandbox
from smart_app.sandbox.testing import mounted, serve_in_thread

from .conftest import FIXTURES

pytestmark = pytest.mark.integration

HOSTILE = '<script>window.__x = 1</script><img src=x onerror="alert(1)">'


@pytest.fixture
def service() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A CDS service that records what it receives and answers a hostile card."""
    seen: list[dict[str, Any]] = []
    app = Flask("hostile-cds")

    @app.get("/cds-services")
    def discovery() -> Response:
        return jsonify({"services": [{"hook": "patient-view", "id": "evil", "description": "x",
                                      "prefetch": {"patient": "Patient/{{context.patientId}}",
                                                   "unknown": "Observation?x={{context.nope}}"}}]})

    @app.post("/cds-services/evil")
    def call() -> Response:
        seen.append({"headers": dict(request.headers), "body": request.get_json()})
        return jsonify({"cards": [{
            "uuid": "u-1", "summary": HOSTILE, "indicator": "critical",
            "source": {"label": HOSTILE},
            "detail": f"**bold** {HOSTILE}\n\n| a | b |\n|---|---|\n| {HOSTILE} | x |",
            "links": [{"label": "js", "url": "javascript:alert(1)", "type": "absolute"},
                      {"label": HOSTILE, "url": "https://example.org/", "type": "absolute"}],
        }]})

    with serve_in_thread(app) as base:
        yield base, seen


def test_hostile_cards_are_shown_as_text(service: tuple[str, list[dict[str, Any]]]) -> None:
    base, seen = service
    sandbox = create_sandbox(SandboxConfig(fixtures_dir=FIXTURES,
                                           cds_services=f"{base}/cds-services"))
    with serve_in_thread(mounted(sandbox)) as root:
        page = requests.get(f"{root}/sandbox/chart/ex01-negative-30", timeout=30)
        assert page.status_code == 200
        assert "<script>" not in page.text and "<img" not in page.text
        assert "&lt;script&gt;window.__x = 1&lt;/script&gt;" in page.text
        assert "javascript:" not in page.text
        assert "<strong>bold</strong>" in page.text
        assert "script-src" not in page.headers["Content-Security-Policy"]  # no script at all
        # What the client sent: a signed JWT for the service URL, verifiable with its JWKS.
        (sent,) = seen
        token = sent["headers"]["Authorization"].removeprefix("Bearer ")
        keys = KeySet.import_key_set(requests.get(f"{root}/sandbox/cds/jwks.json",
                                                  timeout=10).json())
        claims = jwt.decode(token, keys, algorithms=["ES384"]).claims
        assert claims["aud"] == f"{base}/cds-services/evil"
        assert claims["iss"] == f"{root}/sandbox"
        assert claims["exp"] - claims["iat"] == 300 and claims["jti"]
        body = sent["body"]
        assert body["context"]["patientId"] == "ex01-negative-30"
        assert body["fhirServer"] == f"{root}/sandbox/fhir"
        # A template with an unknown token is not fulfilled: the key is simply absent.
        assert set(body["prefetch"]) == {"patient"}
        assert body["prefetch"]["patient"]["id"] == "ex01-negative-30"


def test_the_control_endpoint_needs_allow_control(
        service: tuple[str, list[dict[str, Any]]]) -> None:
    base, _ = service
    sandbox = create_sandbox(SandboxConfig(fixtures_dir=FIXTURES,
                                           cds_services=f"{base}/cds-services"))
    with serve_in_thread(mounted(sandbox)) as root:
        resp = requests.post(f"{root}/sandbox/_cds", json={"hook": "patient-view",
                                                           "patient": "ex01-negative-30"},
                             timeout=10)
        assert resp.status_code == 404
        bad = requests.get(f"{root}/sandbox/chart/ex01-negative-30?prefetch=some", timeout=10)
        assert bad.status_code == 400
        assert requests.get(f"{root}/sandbox/chart/nobody", timeout=10).status_code == 404
