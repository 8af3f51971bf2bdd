"""Configuration of one sandbox EHR instance.

Everything a sandbox needs is passed in here, frozen, so that two sandboxes in one process (for
example two tests, or a demo next to a test) can never influence each other through shared module
state. Runtime changes (misbehaviour switches, tokens, created resources) live on the Flask app.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .profiles import find_profile

ClientAuth = Literal["public", "client_secret_basic", "private_key_jwt"]

#: How each registration kind authenticates at the token endpoint (RFC 7591 method names).
TOKEN_AUTH_METHOD: Mapping[str, str] = {
    "public": "none",
    "client_secret_basic": "client_secret_basic",
    "private_key_jwt": "private_key_jwt",
}


@dataclass(frozen=True)
class SandboxClient:
    """A registered SMART client.

    ``redirect_uris`` are matched exactly. A redirect URI that starts with ``/`` is taken as
    relative to the origin that serves the sandbox (scheme, host and port of the authorize
    request), which lets a demo or test register ``/callback`` before it knows its port.

    ``private_key_jwt`` clients need ``jwks`` (a JWK Set dict) or ``jwks_uri`` (fetched on every
    token request, so key rotation in a test takes effect at once).
    """

    client_id: str
    auth: ClientAuth
    redirect_uris: tuple[str, ...]
    client_secret: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None

    def __post_init__(self) -> None:
        if self.auth not in TOKEN_AUTH_METHOD:
            raise ValueError(f"client {self.client_id}: unknown auth {self.auth!r}")
        if self.auth == "client_secret_basic" and not self.client_secret:
            raise ValueError(f"client {self.client_id}: client_secret_basic needs client_secret")
        if self.auth == "private_key_jwt" and not (self.jwks or self.jwks_uri):
            raise ValueError(f"client {self.client_id}: private_key_jwt needs jwks or jwks_uri")
        if not self.redirect_uris:
            raise ValueError(f"client {self.client_id}: at least one redirect_uri is required")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SandboxClient:
        """Build a client from the JSON accepted by ``POST /sandbox/_control``."""
        uris = data.get("redirect_uris", ())
        if isinstance(uris, str):
            uris = (uris,)
        return cls(
            client_id=str(data["client_id"]),
            auth=data.get("auth", "public"),
            redirect_uris=tuple(str(u) for u in uris),
            client_secret=data.get("client_secret"),
            jwks=data.get("jwks"),
            jwks_uri=data.get("jwks_uri"),
        )


@dataclass(frozen=True)
class SandboxConfig:
    """Static settings of a sandbox.

    ``launch_url`` is where ``/sandbox/launch`` sends the browser (with ``iss`` and ``launch``);
    a value starting with ``/`` is resolved against the serving origin.

    ``issuer`` is the OpenID issuer written into id_tokens and discovery. ``None`` (the default)
    means "the FHIR base URL as seen by the current request", which is what a test on port 0
    wants; set it only when the sandbox runs behind a proxy that rewrites hosts.
    """

    fixtures_dir: Path
    clients: tuple[SandboxClient, ...] = ()
    launch_url: str = "/launch"
    issuer: str | None = None
    #: Access-token ``expires_in``; None: the EHR profile's (oracle-like: 570), else 3600.
    token_lifetime: int | None = None
    refresh_token_lifetime: int = 86400
    code_lifetime: int = 600
    launch_lifetime: int = 3600
    allow_control: bool = False
    tenant: str | None = None
    default_practitioner: str = "dr-ada"
    max_assertion_lifetime: int = 300
    clock_skew: int = 10
    latency_ms: int = 0
    v1_only: bool = False
    no_risk_assessment: bool = False
    not_offered: tuple[str, ...] = ()
    #: How the EHR behaves (``profiles.PROFILES``): ``full``, ``notes-only``,
    #: ``no-conditional-create``, ``read-only``, ``epic-like``, ``oracle-like``.
    ehr_profile: str = "full"
    signing_key: dict[str, Any] | None = None
    jwks_fetch_timeout: float = 5.0
    #: CDS Hooks client (``cds_client.py``): the CDS services' discovery URL (``/path`` = on the
    #: serving origin), the ``iss`` of its JWTs (None: the sandbox's base URL) and its private
    #: EC P-384 JWK (None: a new key per sandbox).
    cds_services: str | None = None
    cds_issuer: str | None = None
    cds_signing_key: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        find_profile(self.ehr_profile)  # an unknown name fails here, not on the first write
