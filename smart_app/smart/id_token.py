"""OpenID Connect ``id_token`` validation and ``fhirUser`` resolution (SMART App Launch 2.2).

Common SMART client libraries decode the id_token without verifying it; this app verifies the
signature, then ``iss``, ``aud``, ``exp`` and ``iat``, because the user id ends up in the audit
trail and in ``RiskAssessment.performer``. ``fhirUser`` is resolved to a ``Type/id`` reference
on the launch's own FHIR server (the token is never sent to another server).

Where the issuer and its keys are is not the same everywhere. SMART's configuration may carry
``issuer`` and ``jwks_uri``; Oracle Health's carries ``jwks_uri`` but no ``issuer``, and its
id_tokens are issued by a per-tenant path on the *authorization* host
(fhir.cerner.com, "OpenID Connect"). So an ``iss`` is accepted when it is the discovered issuer,
the tenant's configured ``oidc_issuer``, the FHIR base, or a URL on the host of the discovered
authorize or token endpoint; the keys come from the discovered ``jwks_uri``, and OpenID
discovery is only ever fetched from an accepted issuer (never from a host the token alone names).

A signature by a key the issuer does not publish, even after one refetch of its key set, does
not fail the clinician's launch: the user is then *not verified* (no performer is written, and
the audit trail says so). A signature that does not verify with a published key is refused.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from joserfc import jws, jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from ..http.bounded import MB, deadline_in, get_json
from .discovery import SmartConfiguration, transport_ok

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384"]
USER_TYPES = ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson", "Person")
LEEWAY = 60
REFETCH_FLOOR = 30.0  # seconds: an unknown kid refetches a key set at most this often


class IdTokenError(RuntimeError):
    """The id_token is invalid; the launch must not proceed with an unverified user."""


@dataclass(frozen=True)
class Identity:
    subject: str
    fhir_user: str | None  # "Practitioner/123", on the launch's FHIR server
    issuer: str
    #: False: signed with a key the issuer does not publish; nothing here may be trusted, so
    #: ``subject`` and ``fhir_user`` are empty and the launch goes on without a known user.
    verified: bool = True
    #: The ``name`` claim (OpenID ``profile``): printed on paper so a printout names who made
    #: it. Display only; never used to identify or authorise anyone.
    name: str | None = None


def _comparable(url: str) -> str:
    """A URL as servers treat it: scheme and host in any case, the default port implied, and the
    path in any case (Epic's servers answer ``…/api/FHIR/R4`` and ``…/api/fhir/r4`` alike, and
    an organisation's configured ``iss`` need not match the case of Epic's own ``fhirUser``)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return url
    host = (parts.hostname or "").lower()
    if port is not None and port != {"https": 443, "http": 80}.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return f"{parts.scheme.lower()}://{host}{parts.path}".lower()


def resolve_fhir_user(value: Any, iss: str) -> str | None:
    """Absolute (Epic sends these, e.g. ``https://host/…/api/FHIR/R4/Practitioner/<id>``) or
    relative; only references on ``iss`` are kept."""
    if not isinstance(value, str) or not value:
        return None
    base = iss.rstrip("/") + "/"
    relative = value
    if value.startswith(base):
        relative = value.removeprefix(base)
    elif "://" in value:
        head, sep, tail = value.rstrip("/").rpartition("/")
        head, sep2, kind = head.rpartition("/")
        if sep and sep2 and _comparable(head + "/") == _comparable(base):
            relative = f"{kind}/{tail}"
    if "://" in relative:
        return None  # a user on another server: not ours to dereference
    parts = relative.strip("/").split("/")
    if len(parts) != 2 or parts[0] not in USER_TYPES or not parts[1]:
        return None
    return f"{parts[0]}/{parts[1]}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _same(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def accepted_issuer(claimed: str, config: SmartConfiguration,
                    oidc_issuer: str | None = None) -> bool:
    """Whether an id_token ``iss`` belongs to this EHR (see the module docstring)."""
    if not claimed.startswith(("https://", "http://")):
        return False
    exact = [config.iss, *(x for x in (config.issuer, oidc_issuer) if x)]
    if any(_same(claimed, x) for x in exact):
        return True
    hosts = {_origin(config.authorization_endpoint), _origin(config.token_endpoint)}
    return _origin(claimed) in hosts


def _key_origins(config: SmartConfiguration, issuer: str,
                 oidc_issuer: str | None) -> set[str]:
    """Where an OpenID configuration may point for its keys: this EHR's own hosts."""
    urls: Iterable[str] = (issuer, config.iss, config.authorization_endpoint,
                           config.token_endpoint, *(x for x in (config.issuer, oidc_issuer) if x))
    return {_origin(u) for u in urls}


def peek_claims(token: str) -> dict[str, Any]:
    """The claims of a compact JWS, *unverified*: only to learn which issuer to ask for keys."""
    try:
        payload = json.loads(jws.extract_compact(token.encode()).payload)
    except (JoseError, ValueError, UnicodeDecodeError) as exc:
        raise IdTokenError("id_token is not a signed JWT") from exc
    if not isinstance(payload, dict):
        raise IdTokenError("id_token claims are not a JSON object")
    return payload


class JwksCache:
    """The EHR's published keys per JWKS URL (refetched at most every ``REFETCH_FLOOR``
    seconds when a ``kid`` is unknown), and OpenID configurations per issuer."""

    def __init__(self, ttl: int = 3600, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[KeySet, float, float]] = {}  # keys, expiry, fetched
        self._configs: dict[str, tuple[str, float]] = {}  # issuer -> (jwks_uri, expiry)
        self._lock = threading.Lock()

    def get(self, http: requests.Session, url: str, timeout: float, *, fresh: bool) -> KeySet:
        with self._lock:
            cached = self._entries.get(url)
            now = self._clock()
            if cached is not None and cached[1] > now and (
                not fresh or now - cached[2] < REFETCH_FLOOR
            ):
                return cached[0]
        try:
            data = get_json(http, url, max_bytes=1 * MB, deadline=deadline_in(2 * timeout),
                            timeout=timeout, allow_redirects=False)
            keys = KeySet.import_key_set(data)
        except (requests.RequestException, ValueError, TypeError, KeyError, JoseError) as exc:
            raise IdTokenError(f"could not read the issuer's JWKS: {type(exc).__name__}") from exc
        with self._lock:
            now = self._clock()
            self._entries[url] = (keys, now + self._ttl, now)
        return keys

    def jwks_uri(self, http: requests.Session, issuer: str, allowed: set[str],
                 timeout: float) -> str:
        """``jwks_uri`` from ``{issuer}/.well-known/openid-configuration`` (OIDC Discovery §4),
        whose ``issuer`` must be ``issuer`` (§4.3) and whose keys must be on ``allowed``."""
        with self._lock:
            hit = self._configs.get(issuer)
            if hit is not None and hit[1] > self._clock():
                return hit[0]
        try:
            data = get_json(http, issuer.rstrip("/") + "/.well-known/openid-configuration",
                            max_bytes=1 * MB, deadline=deadline_in(2 * timeout),
                            timeout=timeout, allow_redirects=False)
        except (requests.RequestException, ValueError) as exc:
            raise IdTokenError("could not read the OpenID configuration") from exc
        if not isinstance(data, dict) or not isinstance(data.get("jwks_uri"), str):
            raise IdTokenError("the OpenID configuration has no jwks_uri")
        if not _same(str(data.get("issuer") or ""), issuer):
            raise IdTokenError("the OpenID configuration names another issuer")
        uri = str(data["jwks_uri"])
        if not transport_ok(uri, issuer):
            raise IdTokenError("the OpenID configuration names a jwks_uri that is not https")
        if _origin(uri) not in allowed:
            raise IdTokenError("the OpenID configuration's keys are on another host")
        with self._lock:
            self._configs[issuer] = (uri, self._clock() + self._ttl)
        return uri


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
    oidc_issuer: str | None = None,
) -> Identity:
    """Signature, ``iss``, ``aud``, ``exp``/``iat``, ``sub``, and ``nonce`` when one was sent.

    A ``nonce`` claim that differs from the one sent is rejected (an id_token from another
    sign-in). One that is absent is tolerated: ``state`` and PKCE already bind the response to
    this browser, and some EHR servers do not echo it.
    """
    claimed = peek_claims(token).get("iss")
    if not isinstance(claimed, str) or not accepted_issuer(claimed, config, oidc_issuer):
        raise IdTokenError("id_token issuer does not match the EHR's issuer")
    jwks_uri = config.jwks_uri or jwks.jwks_uri(
        http, claimed, _key_origins(config, claimed, oidc_issuer), timeout)
    keys = jwks.get(http, jwks_uri, timeout, fresh=False)
    try:
        try:
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        except InvalidKeyIdError:  # unknown kid: the issuer may have rotated its keys
            keys = jwks.get(http, jwks_uri, timeout, fresh=True)
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
    except InvalidKeyIdError:
        return Identity(subject="", fhir_user=None, issuer=claimed, verified=False)
    except (JoseError, ValueError) as exc:
        raise IdTokenError(f"id_token signature not valid: {type(exc).__name__}") from exc
    claims = decoded.claims
    at = now if now is not None else time.time()
    if claims.get("iss") != claimed:
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
        issuer=claimed,
        name=claims["name"][:200] if isinstance(claims.get("name"), str) else None,
    )
