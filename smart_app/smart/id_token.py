"""OpenID Connect ``id_token`` validation and ``fhirUser`` resolution (O1).

The anchors decode the id_token without verifying it (requirements §2.1); this app verifies the
signature against the issuer's JWKS, then ``iss``, ``aud``, ``exp`` and ``iat``, because the user
id ends up in the audit trail and in ``RiskAssessment.performer``. ``fhirUser`` is resolved to a
``Type/id`` reference on the launch's own FHIR server (F2: never a reference elsewhere).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from ..http.bounded import MB, deadline_in, get_json
from .discovery import SmartConfiguration

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384"]
USER_TYPES = ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson", "Person")
LEEWAY = 60


class IdTokenError(RuntimeError):
    """The id_token is invalid; the launch must not proceed with an unverified user."""


@dataclass(frozen=True)
class Identity:
    subject: str
    fhir_user: str | None  # "Practitioner/123", on the launch's FHIR server
    issuer: str


def resolve_fhir_user(value: Any, iss: str) -> str | None:
    """Absolute (Epic sends these) or relative; only references on ``iss`` are kept."""
    if not isinstance(value, str) or not value:
        return None
    base = iss.rstrip("/") + "/"
    relative = value.removeprefix(base) if value.startswith(base) else value
    if "://" in relative:
        return None  # a user on another server: not ours to dereference
    parts = relative.strip("/").split("/")
    if len(parts) != 2 or parts[0] not in USER_TYPES or not parts[1]:
        return None
    return f"{parts[0]}/{parts[1]}"


class JwksCache:
    """The EHR's published keys per JWKS URL; refetched once when a ``kid`` is unknown."""

    def __init__(self, ttl: int = 3600, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[KeySet, float]] = {}
        self._lock = threading.Lock()

    def get(self, http: requests.Session, url: str, timeout: float, *, fresh: bool) -> KeySet:
        with self._lock:
            cached = self._entries.get(url)
            if cached is not None and cached[1] > self._clock() and not fresh:
                return cached[0]
        try:
            data = get_json(http, url, max_bytes=1 * MB, deadline=deadline_in(2 * timeout),
                            timeout=timeout, allow_redirects=False)
            keys = KeySet.import_key_set(data)
        except (requests.RequestException, ValueError, JoseError) as exc:
            raise IdTokenError(f"could not read the issuer's JWKS: {type(exc).__name__}") from exc
        with self._lock:
            self._entries[url] = (keys, self._clock() + self._ttl)
        return keys


def _oidc_metadata(
    http: requests.Session, config: SmartConfiguration, timeout: float
) -> tuple[str, str]:
    """(issuer, jwks_uri): from the SMART configuration, else OpenID discovery."""
    if config.issuer and config.jwks_uri:
        return config.issuer, config.jwks_uri
    issuer = config.issuer or config.iss
    try:
        data = get_json(
            http,
            issuer.rstrip("/") + "/.well-known/openid-configuration",
            max_bytes=1 * MB,
            deadline=deadline_in(2 * timeout),
            timeout=timeout,
            allow_redirects=False,
        )
    except (requests.RequestException, ValueError) as exc:
        raise IdTokenError("could not read the OpenID configuration") from exc
    if not isinstance(data, dict) or not isinstance(data.get("jwks_uri"), str):
        raise IdTokenError("the OpenID configuration has no jwks_uri")
    return str(data.get("issuer") or issuer), str(data["jwks_uri"])


def validate(
    token: str,
    *,
    http: requests.Session,
    config: SmartConfiguration,
    client_id: str,
    jwks: JwksCache,
    timeout: float,
    now: float | None = None,
    nonce: str | None = None,
) -> Identity:
    """Signature, ``iss``, ``aud``, ``exp``/``iat``, ``sub``, and ``nonce`` when one was sent.

    A ``nonce`` claim that differs from the one sent is rejected (an id_token from another
    sign-in). One that is absent is tolerated: ``state`` and PKCE already bind the response to
    this browser, and some EHR servers do not echo it.
    """
    issuer, jwks_uri = _oidc_metadata(http, config, timeout)
    keys = jwks.get(http, jwks_uri, timeout, fresh=False)
    try:
        try:
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        except InvalidKeyIdError:  # unknown kid: the issuer may have rotated its keys
            keys = jwks.get(http, jwks_uri, timeout, fresh=True)
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise IdTokenError(f"id_token signature not valid: {type(exc).__name__}") from exc
    claims = decoded.claims
    at = now if now is not None else time.time()
    if claims.get("iss") != issuer:
        raise IdTokenError("id_token issuer does not match the EHR's issuer")
    aud = claims.get("aud")
    if not (aud == client_id or (isinstance(aud, list) and client_id in aud)):
        raise IdTokenError("id_token audience is not this app")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or exp + LEEWAY < at:
        raise IdTokenError("id_token has expired")
    if not isinstance(iat, int | float) or iat - LEEWAY > at:
        raise IdTokenError("id_token is issued in the future")
    if nonce is not None and "nonce" in claims and claims["nonce"] != nonce:
        raise IdTokenError("id_token nonce does not match this sign-in")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise IdTokenError("id_token has no subject")
    return Identity(
        subject=subject,
        fhir_user=resolve_fhir_user(claims.get("fhirUser"), config.iss),
        issuer=issuer,
    )
