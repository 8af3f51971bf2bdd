"""Helpers for the sandbox tests: fixture bundles and ``Smart``, a scripted SMART client.

Kept out of conftest.py under a unique module name so that other test packages' conftest
files cannot shadow it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from smart_app.sandbox import SandboxClient

REDIRECT = "http://app.test/callback"
LOINC_JCV = "http://loinc.org|JCV-AB"
SCOPE = (
    "launch openid fhirUser online_access patient/Patient.r patient/Observation.rs "
    "patient/MedicationAdministration.rs patient/Medication.rs patient/RiskAssessment.cs"
)


def _obs(pid: str, n: int, code: str, when: str, status: str = "final") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"{pid}-obs-{n}",
        "status": status,
        "identifier": [{"system": "urn:lab", "value": f"{pid}-{n}"}],
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": n},
    }


def _bundle(resources: list[dict[str, Any]], urn: bool = False) -> dict[str, Any]:
    entries = []
    for r in resources:
        full = f"urn:uuid:{uuid.uuid4()}" if urn else f"http://x.test/{r['resourceType']}/{r['id']}"
        entries.append({"fullUrl": full, "resource": r})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def write_fixtures(directory: Path) -> None:
    """alice: a small chart; bob: another patient; many: 1,200 Observations for paging/perf."""
    alice: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": "alice",
            "name": [{"given": ["Alice"], "family": "Adams"}],
        },
        _obs("alice", 1, "JCV-AB", "2024-01-15T10:00:00Z"),
        _obs("alice", 2, "JCV-AB", "2024-07-15"),
        _obs("alice", 3, "JCV-IDX", "2025-01-15T10:00:00Z"),
        _obs("alice", 4, "JCV-AB", "2025-06-01T10:00:00Z", status="preliminary"),
        _obs("alice", 5, "PLT", "2023-03-01T10:00:00Z", status="entered-in-error"),
        {
            "resourceType": "Medication",
            "id": "natalizumab",
            "code": {
                "coding": [
                    {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "354770"}
                ]
            },
        },
        *[
            {
                "resourceType": "MedicationAdministration",
                "id": f"alice-ma-{i}",
                "status": "completed",
                "medicationReference": {"reference": "Medication/natalizumab"},
                "subject": {"reference": "Patient/alice"},
                "effectiveDateTime": f"2024-0{i}-01T09:00:00Z",
            }
            for i in range(1, 4)
        ],
        {
            "resourceType": "RiskAssessment",
            "id": "alice-ra-dup-1",
            "status": "final",
            "identifier": [{"system": "urn:dup", "value": "twice"}],
            "subject": {"reference": "Patient/alice"},
        },
        {
            "resourceType": "RiskAssessment",
            "id": "alice-ra-dup-2",
            "status": "final",
            "identifier": [{"system": "urn:dup", "value": "twice"}],
            "subject": {"reference": "Patient/alice"},
        },
    ]
    bob = [
        {"resourceType": "Patient", "id": "bob", "name": [{"text": "Bob <b>Brown</b>"}]},
        _obs("bob", 1, "JCV-AB", "2024-02-01T10:00:00Z"),
        _obs("bob", 2, "JCV-AB", "2024-03-01T10:00:00Z"),
    ]
    many = [{"resourceType": "Patient", "id": "many", "name": [{"text": "Many Labs"}]}]
    many += [
        _obs("many", i, "PLT" if i % 2 else "JCV-AB", f"20{10 + i % 15}-0{1 + i % 9}-01")
        for i in range(1200)
    ]
    (directory / "alice.json").write_text(json.dumps(_bundle(alice)))
    (directory / "bob.json").write_text(json.dumps(_bundle(bob, urn=True)))
    (directory / "many.json").write_text(json.dumps(_bundle(many)))
    index = [
        {"id": "alice", "file": "alice.json", "name": "Alice Adams", "summary": "small chart"},
        {"id": "bob", "file": "bob.json", "name": "Bob <script>x</script>", "summary": "a&b"},
        {"id": "many", "file": "many.json", "name": "Many Labs", "summary": "1,200 labs"},
    ]
    (directory / "index.json").write_text(json.dumps(index))


def clients(rsa_key: RSAKey, jwks_url: str) -> tuple[SandboxClient, ...]:
    return (
        SandboxClient("app-public", "public", (REDIRECT,)),
        SandboxClient("app-basic", "client_secret_basic", (REDIRECT,), client_secret="s3cret"),
        SandboxClient(
            "app-rs384",
            "private_key_jwt",
            (REDIRECT,),
            jwks=KeySet([rsa_key]).as_dict(private=False),
        ),
        SandboxClient("app-es384", "private_key_jwt", (REDIRECT,), jwks_uri=jwks_url),
    )


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass
class Smart:
    """Drives the sandbox like a SMART app would, one HTTP call at a time."""

    root: str
    rsa_key: RSAKey
    ec_key: ECKey
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def base(self) -> str:
        return f"{self.root}/sandbox"

    @property
    def fhir(self) -> str:
        return f"{self.base}/fhir"

    @property
    def token_url(self) -> str:
        return f"{self.base}/auth/token"

    def control(self, **changes: Any) -> dict[str, Any]:
        if changes:
            r = self.http.post(f"{self.base}/_control", json=changes, timeout=10)
        else:
            r = self.http.get(f"{self.base}/_control", timeout=10)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def launch(self, patient: str = "alice", **extra: str) -> str:
        r = self.http.get(
            f"{self.base}/launch", params={"patient": patient, **extra}, allow_redirects=False
        )
        assert r.status_code == 302, r.text
        query = parse_qs(urlparse(r.headers["Location"]).query)
        assert query["iss"] == [self.fhir]
        return query["launch"][0]

    def authorize(
        self,
        client_id: str = "app-public",
        scope: str = SCOPE,
        *,
        launch: str | None = "new",
        challenge: str | None = None,
        verifier: str | None = None,
        **overrides: str | None,
    ) -> tuple[requests.Response, str]:
        """GET the authorize endpoint; returns the (unfollowed) response and the verifier."""
        if verifier is None:
            verifier, made = pkce_pair()
            challenge = challenge if challenge is not None else made
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": "st-123",
            "aud": self.fhir,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if launch == "new":
            launch = self.launch()
        if launch is not None:
            params["launch"] = launch
        params.update(overrides)
        sent = {k: v for k, v in params.items() if v is not None}
        r = self.http.get(f"{self.base}/auth/authorize", params=sent, allow_redirects=False)
        return r, verifier

    @staticmethod
    def redirect_params(r: requests.Response) -> dict[str, str]:
        assert r.status_code == 302, r.text
        location = r.headers["Location"]
        assert location.startswith(REDIRECT), location
        return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}

    def assertion(
        self,
        client_id: str,
        *,
        alg: str = "RS384",
        aud: str | None = None,
        exp_in: int = 240,
        jti: str | None = None,
        kid: str | None = "default",
    ) -> str:
        key = self.rsa_key if alg.startswith("RS") else self.ec_key
        header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        if kid == "default":
            header["kid"] = key.kid
        elif kid is not None:
            header["kid"] = kid
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": aud or self.token_url,
            "exp": now + exp_in,
            "iat": now,
            "jti": jti or secrets.token_hex(16),
        }
        return jwt.encode(header, claims, key, algorithms=[alg])

    def client_auth(self, client_id: str) -> tuple[dict[str, str], Any]:
        """Form fields and requests ``auth`` for the registered auth kind of ``client_id``."""
        if client_id == "app-basic":
            return {}, (client_id, "s3cret")
        if client_id not in ("app-rs384", "app-es384"):
            return {"client_id": client_id}, None
        alg = "RS384" if client_id == "app-rs384" else "ES384"
        return {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.assertion(client_id, alg=alg),
        }, None

    def exchange(
        self, client_id: str, code: str, verifier: str | None, **extra: str
    ) -> requests.Response:
        fields, auth = self.client_auth(client_id)
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        if verifier is not None:
            data["code_verifier"] = verifier
        data.update(fields)
        data.update(extra)
        return self.http.post(self.token_url, data=data, auth=auth, timeout=10)

    def refresh(self, client_id: str, refresh_token: str) -> requests.Response:
        fields, auth = self.client_auth(client_id)
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **fields}
        return self.http.post(self.token_url, data=data, auth=auth, timeout=10)

    def login(
        self, client_id: str = "app-public", scope: str = SCOPE, **authorize: Any
    ) -> dict[str, Any]:
        """A full authorization-code flow; returns the token response JSON."""
        r, verifier = self.authorize(client_id, scope, **authorize)
        params = self.redirect_params(r)
        assert params.get("state") == "st-123"
        assert "code" in params, params
        t = self.exchange(client_id, params["code"], verifier)
        assert t.status_code == 200, t.text
        return dict(t.json())

    def get(self, token: str | None, path: str, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = path if path.startswith("http") else f"{self.fhir}/{path}"
        return self.http.get(url, params=params, headers=headers, timeout=10)

    def post(
        self, token: str, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> requests.Response:
        h = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
        h.update(headers or {})
        return self.http.post(f"{self.fhir}/{path}", data=json.dumps(body), headers=h, timeout=10)
