"""Token-endpoint client authentication per tenant: public, client_secret_basic, private_key_jwt.

authlib's stock ``PrivateKeyJWT`` breaks SMART: RS256 by default, a one-hour
``exp``, no ``kid``, and one ``jti`` reused for every request when claims are passed, which a
server enforcing replay protection rejects on the first refresh. ``SmartPrivateKeyJWT`` builds
fresh claims for every request instead (SMART App Launch 2.2 asymmetric client authentication:
``kid`` and ``typ`` in the header, ``exp`` at most five minutes ahead, a fresh ``jti``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import requests
from authlib.common.urls import add_params_to_qs
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from ..config import Tenant
from ..http.session import route_like
from .keys import SigningKeys

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300  # SMART: exp no more than five minutes in the future


def client_assertion(
    key: RSAKey | ECKey,
    alg: str,
    *,
    client_id: str,
    token_endpoint: str,
    lifetime: int = MAX_ASSERTION_LIFETIME,
    now: float | None = None,
) -> str:
    """One signed assertion: ``kid`` and ``typ`` in the header, a fresh ``jti`` every call.

    ``nbf`` equals ``iat``: SMART does not ask for it, Epic's client-assertion rules list it, and
    a server that checks it then sees a token valid from the moment it was signed.
    """
    if not 0 < lifetime <= MAX_ASSERTION_LIFETIME:
        raise ValueError("a SMART client assertion may live at most 300 seconds")
    issued = int(now if now is not None else time.time())
    header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": secrets.token_urlsafe(32),
    }
    return jwt.encode(header, claims, key, algorithms=[alg])


class SmartPrivateKeyJWT:
    """An authlib client-auth method (``name`` + call signature) for ``private_key_jwt``."""

    name = "private_key_jwt"

    def __init__(
        self,
        key: RSAKey | ECKey,
        alg: str,
        token_endpoint: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._alg = alg
        self._token_endpoint = token_endpoint
        self._clock = clock

    def __call__(
        self, auth: Any, method: str, uri: str, headers: dict[str, str], body: str
    ) -> tuple[str, dict[str, str], str]:
        assertion = client_assertion(
            self._key,
            self._alg,
            client_id=auth.client_id,
            token_endpoint=self._token_endpoint,
            now=self._clock(),
        )
        body = add_params_to_qs(
            body or "",
            [("client_assertion_type", ASSERTION_TYPE), ("client_assertion", assertion)],
        )
        if "Content-Length" in headers:
            headers["Content-Length"] = str(len(body))
        return uri, headers, body


def oauth_session(
    tenant: Tenant,
    *,
    token_endpoint: str,
    keys: SigningKeys | None,
    redirect_uri: str,
    scope: str | None = None,
    token: dict[str, Any] | None = None,
    outbound: requests.Session | None = None,
) -> OAuth2Session:
    """An authlib session set up for this tenant's client authentication.

    ``code_challenge_method="S256"`` is passed always: without it authlib silently drops PKCE.
    Proxies from the environment are ignored; ``outbound`` (the
    app's shared session) gives the configured egress proxy and CA bundle.
    """
    method = {"public": "none", "client_secret_basic": "client_secret_basic"}.get(
        tenant.auth, "private_key_jwt"
    )
    session = OAuth2Session(
        client_id=tenant.client_id,
        client_secret=tenant.client_secret if tenant.auth == "client_secret_basic" else None,
        token_endpoint_auth_method=method,
        scope=scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token=token,
        token_endpoint=token_endpoint,
    )
    session.trust_env = False
    if outbound is not None:
        route_like(session, outbound, token_endpoint)
    if tenant.auth == "private_key_jwt":
        if keys is None:
            raise RuntimeError("private_key_jwt needs the app's signing keys (keys_file)")
        session.register_client_auth_method(
            SmartPrivateKeyJWT(keys.for_alg(tenant.signing_alg), tenant.signing_alg, token_endpoint)
        )
    return session
