"""Which calls the CDS services answer: the JWT rules of CDS Hooks 2.0 "Trusting CDS Clients".

Every call (service and feedback) carries ``Authorization: Bearer <JWT>`` signed by the EHR.
The checks run in this order, cheapest and unauthenticated first, so that an anonymous caller
learns nothing and costs little; the ``jti`` is claimed last, so a forged token cannot use up
the ``jti`` of a real one:

1. the header (its JSON and the payload's read with bounded nesting): ``alg`` asymmetric
   (``none``, HMAC and everything else are refused: an HMAC "signature" made with a public key
   is the classic forgery) and among the tenant's ``algorithms`` (default RS384 and ES384; a
   tenant whose EHR signs with ES256 or RS256, as Oracle Health documents, lists them), a
   ``kid``;
2. ``iss`` is a tenant's configured ``[tenants.cds] issuer`` (on ``/t/<slug>/…``, that tenant's);
3. a ``jku`` header, when present, equals that tenant's ``jwks_url``: no other URL is fetched;
4. ``aud`` names this endpoint's URL, or the tenant's configured ``audience``;
5. ``exp``, ``nbf`` and ``iat`` hold within ±60 s, and the token lives at most 15 minutes
   (Epic's tokens live exactly that long);
6. the signature verifies with the ``kid``'s key from the JWKS (see ``jwks.py``);
7. the ``jti`` was never seen: it is claimed in the session store (SQLite, Redis or memory, so
   every instance shares it) for longer than any accepted token can live.

Any failure raises :class:`Untrusted`; the view answers a bare 401 and audits the reason with
the claimed ``iss`` and ``jti``, never the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jws import extract_compact

from ..config import CDS_ALGORITHMS, Settings, Tenant
from ..http import jsondepth
from .jwks import CdsJwks, KeyUnavailable

ALGORITHMS = CDS_ALGORITHMS  # the most any tenant may allow; each tenant narrows it
KEY_TYPES = {alg: "EC" if alg.startswith("ES") else "RSA" for alg in ALGORITHMS}
MAX_JSON_DEPTH = 8  # a JWT header or claim set is flat: a deeper one is not a CDS client's
SKEW = 60  # seconds of clock difference tolerated on exp, nbf and iat
MAX_LIFETIME = 900  # seconds from iat to exp; longer-lived tokens are refused
JTI_TTL = MAX_LIFETIME + 2 * SKEW  # a jti is remembered for longer than its token can live
MAX_TOKEN = 16 * 1024  # characters; real ones are about 1 KB
MAX_JTI = 256


class Untrusted(Exception):
    """The call is refused. ``reason`` is a short code for the audit trail, never shown."""

    def __init__(self, reason: str, *, iss: str | None = None, jti: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.iss = iss
        self.jti = jti


@dataclass(frozen=True)
class TrustedClient:
    """A verified caller: the tenant its issuer belongs to, and the claims worth auditing."""

    tenant: Tenant
    issuer: str
    jti: str
    subject: str | None  # Epic: the CDS client id


def cds_tenant(settings: Settings, *, issuer: str | None = None,
               slug: str | None = None) -> Tenant | None:
    """The tenant whose ``[tenants.cds]`` has this issuer (or slug); None when there is none."""
    for tenant in settings.tenants:
        cds = tenant.cds
        if cds is None:
            continue
        if (issuer is None or cds.issuer == issuer.rstrip("/")) and (
                slug is None or cds.slug == slug):
            return tenant
    return None


def _bearer(authorization: str | None) -> str:
    scheme, _, value = (authorization or "").partition(" ")
    token = value.strip()
    if scheme.lower() != "bearer" or not token:
        raise Untrusted("no-bearer")
    if len(token) > MAX_TOKEN or token.count(".") != 2:
        raise Untrusted("malformed")
    return token


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Untrusted(f"bad-{name}")
    return float(value)


class CdsTrust:
    """Verifies the CDS client JWT of one request (see the module docstring for the rules)."""

    def __init__(
        self,
        settings: Settings,
        jwks: CdsJwks,
        claim_jti: Callable[[str, int], bool],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._jwks = jwks
        self._claim_jti = claim_jti
        self._clock = clock

    def verify(
        self, authorization: str | None, endpoint: str, slug: str | None = None
    ) -> TrustedClient:
        """``endpoint`` is this request's absolute URL (the ``aud`` it must carry)."""
        token = _bearer(authorization)
        try:
            parts = extract_compact(token.encode("ascii"))
            header = parts.headers()
            claims = jsondepth.loads(parts.payload, max_depth=MAX_JSON_DEPTH)
        except (JoseError, ValueError, UnicodeError, RecursionError) as exc:
            raise Untrusted("malformed") from exc
        if not isinstance(claims, dict):
            raise Untrusted("malformed")
        iss = claims.get("iss") if isinstance(claims.get("iss"), str) else None
        raw_jti = claims.get("jti")
        jti = raw_jti[:MAX_JTI] if isinstance(raw_jti, str) else None

        def refuse(reason: str) -> Untrusted:
            return Untrusted(reason, iss=iss[:200] if iss else None, jti=jti)

        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise refuse("alg")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise refuse("no-kid")
        if "typ" in header and str(header["typ"]).upper() != "JWT":
            raise refuse("typ")
        if iss is None:
            raise refuse("no-iss")
        tenant = cds_tenant(self._settings, issuer=iss, slug=slug)
        if tenant is None or tenant.cds is None:
            raise refuse("unknown-iss")
        cds = tenant.cds
        if alg not in cds.algorithms:
            raise refuse("alg")
        if "jku" in header and header["jku"] != cds.jwks_url:
            raise refuse("jku")  # never fetched: a jku is only a hint pointing at the allowlist
        self._audience(claims.get("aud"), endpoint, cds.audience, refuse)
        self._times(claims, refuse)
        if not isinstance(raw_jti, str) or not raw_jti or len(raw_jti) > MAX_JTI:
            raise refuse("no-jti")
        try:
            key = self._jwks.key(cds.jwks_url, kid)
        except KeyUnavailable as exc:
            raise refuse(exc.reason) from exc
        if key.key_type != KEY_TYPES[alg] or key.get("use", "sig") != "sig" or (
                key.get("alg") not in (None, alg)):
            raise refuse("key-mismatch")
        try:
            jwt.decode(token, key, algorithms=[alg])
        except (JoseError, ValueError) as exc:
            raise refuse("signature") from exc
        if not self._claim_jti(f"{cds.issuer}\n{raw_jti}", JTI_TTL):
            raise refuse("replay")
        sub = claims.get("sub")
        return TrustedClient(tenant=tenant, issuer=cds.issuer, jti=raw_jti,
                             subject=sub if isinstance(sub, str) else None)

    @staticmethod
    def _audience(aud: Any, endpoint: str, configured: str | None,
                  refuse: Callable[[str], Untrusted]) -> None:
        wanted = {endpoint.rstrip("/")} | ({configured.rstrip("/")} if configured else set())
        values = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(v, str) and v.rstrip("/") in wanted for v in values):
            raise refuse("aud")

    def _times(self, claims: Mapping[str, Any], refuse: Callable[[str], Untrusted]) -> None:
        now = self._clock()
        try:
            exp, iat, nbf = (_number(claims, n) for n in ("exp", "iat", "nbf"))
        except Untrusted as exc:
            raise refuse(exc.reason) from exc
        if exp is None:
            raise refuse("no-exp")
        if iat is None:
            raise refuse("no-iat")
        if exp + SKEW < now:
            raise refuse("expired")
        if iat - SKEW > now or (nbf is not None and nbf - SKEW > now):
            raise refuse("not-yet-valid")
        if exp - iat > MAX_LIFETIME or exp <= iat:
            raise refuse("lifetime")
