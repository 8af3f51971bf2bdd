"""A stand-in for an EHR's CDS client: its signing keys, its JWKS served on loopback, and JWTs
built any way a test wants, forged ones included. The app under test is served on loopback too,
so every call goes over real HTTP; the prefetch comes from a fixture bundle, so no FHIR server
is needed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from flask import Flask, jsonify
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from werkzeug.wrappers import Response

from smart_app.app import create_app
from smart_app.config import Settings, from_mapping
from smart_app.sandbox.testing import LateApp, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fhir_fixtures"
ISSUER = "https://ehr.example.org/cds-client"
FHIR_BASE = "https://fhir.example.org/r4"
PATIENT = "ex05-index-1-51-25-infusions"
SERVICE = "pml-risk-patient-view"
ALGS = ["RS384", "ES384", "RS256", "ES256"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def prefetch_from(fixture: str, patient: str) -> dict[str, Any]:
    """The five prefetch keys filled from a fixture bundle, as an EHR would send them."""
    bundle = json.loads((FIXTURES / fixture).read_text("utf-8"))
    resources = [e["resource"] for e in bundle["entry"]]

    def searchset(*types: str) -> dict[str, Any]:
        found = [r for r in resources if r["resourceType"] in types]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(found),
                "entry": [{"resource": r} for r in found]}

    patient_resource = next(r for r in resources if r["resourceType"] == "Patient")
    assert patient_resource["id"] == patient
    return {
        "patient": patient_resource,
        "observations": searchset("Observation"),  # a superset of the JCV-coded ones
        "labs": searchset("Observation"),
        "administrations": searchset("MedicationAdministration", "Medication"),
        "statements": searchset("MedicationStatement"),
        "requests": searchset("MedicationRequest"),
    }


def hook_body(patient: str = PATIENT, fixture: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hookInstance": str(uuid.uuid4()), "hook": "patient-view",
        "context": {"userId": "Practitioner/dr-ada", "patientId": patient},
        "prefetch": prefetch_from(fixture or f"{patient}.json", patient),
    }
    body.update(extra)
    return body


@dataclass
class Ehr:
    """The EHR side: keys, its JWKS endpoint (fetches counted), and the app it calls."""

    rsa: RSAKey
    ec: ECKey
    base: str = ""  # the app's base URL
    jwks_url: str = ""
    published: list[Any] = field(default_factory=list)
    fetches: int = 0
    settings: Settings | None = None
    app: Flask | None = None

    def endpoint(self, service: str = SERVICE, tenant: str | None = None) -> str:
        prefix = f"/t/{tenant}" if tenant else ""
        return f"{self.base}{prefix}/cds-services/{service}"

    def claims(self, aud: str | None = None, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": ISSUER, "sub": "ehr-cds-client",
                                  "aud": aud or self.endpoint(), "iat": now, "exp": now + 300,
                                  "jti": secrets.token_urlsafe(16)}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, alg: str = "RS384", *, header: dict[str, Any] | None = None,
              key: Any = None, **claims: Any) -> str:
        signer = key or (self.rsa if alg.startswith("RS") else self.ec)
        head: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": signer.kid}
        head.update(header or {})
        head = {k: v for k, v in head.items() if v is not None}
        return jwt.encode(head, self.claims(**claims), signer, algorithms=ALGS)

    def unsigned(self, header: dict[str, Any], signature: bytes = b"", **claims: Any) -> str:
        """A token with any header: ``alg: none``, or an HMAC made with the public key."""
        signing_input = (b64(json.dumps(header).encode()) + "."
                         + b64(json.dumps(self.claims(**claims)).encode()))
        if header.get("alg") == "HS256":
            secret = json.dumps(self.rsa.as_dict(private=False)).encode()
            signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + b64(signature)

    def call(self, token: str | None, body: dict[str, Any] | None = None,
             url: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return requests.post(url or self.endpoint(), json=body or hook_body(), headers=headers,
                             timeout=30)


class AuditLines(logging.Handler):
    """Collects the audit trail's JSON lines (whatever ``audit.configure`` did before)."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[str] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock2:
            self.raw.append(record.getMessage())

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        with self._lock2:
            parsed = [json.loads(line) for line in self.raw]
        return [e for e in parsed if name is None or e["event"] == name]


def serve_ehr(tmp: Path, *, cds: dict[str, Any] | None = None, store: str | None = None,
              keys: tuple[RSAKey, ECKey] | None = None, secret: str | None = None,
              jwks_headers: dict[str, str] | None = None) -> Iterator[Ehr]:
    """The EHR's JWKS server and the app, each on its own loopback port."""
    rsa, ec = keys or (
        RSAKey.generate_key(2048, parameters={"alg": "RS384", "use": "sig"}, private=True,
                            auto_kid=True),
        ECKey.generate_key("P-384", parameters={"alg": "ES384", "use": "sig"}, private=True,
                           auto_kid=True))
    ehr = Ehr(rsa=rsa, ec=ec, published=[rsa, ec])
    keyserver = Flask("ehr-keys")

    @keyserver.get("/jwks.json")
    def _jwks() -> Response:
        ehr.fetches += 1
        resp = jsonify({"keys": [k.as_dict(private=False) for k in ehr.published]})
        for name, value in (jwks_headers or {}).items():
            resp.headers[name] = value
        return resp

    with ExitStack() as stack:
        ehr.jwks_url = stack.enter_context(serve_in_thread(keyserver)) + "/jwks.json"
        late = LateApp()
        ehr.base = stack.enter_context(serve_in_thread(late))
        ehr.settings = from_mapping({
            "base_url": ehr.base,
            "secret_key": secret or secrets.token_urlsafe(40),
            "session_store": store or f"sqlite:///{tmp / 'sessions.sqlite3'}",
            "keys_file": str(tmp / "no-keys.json"),  # public client: no key file needed
            "tenants": [{"name": "Example Health", "iss": FHIR_BASE, "client_id": "pml-risk",
                         "auth": "public",
                         "cds": {"issuer": ISSUER, "jwks_url": ehr.jwks_url, "slug": "example",
                                 **(cds or {})}}],
        })
        ehr.app = create_app(ehr.settings)
        late.target = ehr.app
        yield ehr
