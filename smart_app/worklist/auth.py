"""SMART Backend Services: a ``client_credentials`` token signed with the app's own keys.

The assertion comes from ``smart.client_auth.client_assertion``, the builder the app's code
exchange uses (RS384/ES384, ``kid``, ``exp`` five minutes ahead, a fresh ``jti`` each call), not
authlib's ``PrivateKeyJWT``, whose one-hour ``exp``, missing ``kid`` and RS-only PEM import
servers reject. Backend tokens live minutes and come without a refresh token, so the provider
re-authenticates before expiry, and once more when a server answers 401 to a token it issued.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from ..config import Tenant
from ..http.bounded import MB, deadline_in
from ..http.bounded import request as bounded_request
from ..smart.client_auth import ASSERTION_TYPE, client_assertion
from ..smart.keys import SigningKeys
from .errors import WorklistError

#: What the worklist reads. ``Group`` is not needed: the export addresses the group by id.
SYSTEM_TYPES = ("Patient", "Observation", "MedicationAdministration", "MedicationStatement",
                "MedicationRequest", "Medication", "DiagnosticReport", "ImagingStudy", "Procedure")
DEFAULT_LIFETIME = 300  # seconds, when a token response has no expires_in
MARGIN = 30  # re-authenticate this long before the token expires


def system_scopes(tenant: Tenant, types: Sequence[str] = SYSTEM_TYPES) -> str:
    """``system/`` read scopes: SMART v2 (``.rs``) or, for a v1 tenant, ``.read``."""
    suffix = "read" if tenant.scopes == "v1" else "rs"
    return " ".join(f"system/{t}.{suffix}" for t in types)


class BackendAuth:
    """A token provider: ``token()`` returns a live bearer token, fetching one when needed.

    ``token(rejected)`` with the token a server just refused forces a new one, unless another
    thread already replaced it (parallel searches that all got a 401 cause one re-auth).
    """

    def __init__(
        self,
        http: requests.Session,
        tenant: Tenant,
        keys: SigningKeys,
        token_endpoint: str,
        *,
        scope: str,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if tenant.auth != "private_key_jwt":
            raise WorklistError(f"tenant {tenant.name}: Backend Services needs auth = "
                                "\"private_key_jwt\" (asymmetric keys)")
        self._http = http
        self._tenant = tenant
        self._key = keys.for_alg(tenant.signing_alg)
        self._endpoint = token_endpoint
        self._scope = scope
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0
        self.granted = ""
        self.fetches = 0

    def token(self, rejected: str | None = None) -> str:
        with self._lock:
            stale = self._token is None or self._clock() >= self._expires
            if stale or (rejected is not None and rejected == self._token):
                self._fetch()
            assert self._token is not None
            return self._token

    def _fetch(self) -> None:
        alg = self._tenant.signing_alg
        client_id = self._tenant.backend_client_id or self._tenant.client_id
        assertion = client_assertion(self._key, alg, client_id=client_id,
                                     token_endpoint=self._endpoint, now=self._clock())
        form = {"grant_type": "client_credentials", "scope": self._scope,
                "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
        try:
            resp = bounded_request(
                self._http, "POST", self._endpoint, max_bytes=1 * MB,
                deadline=deadline_in(3 * self._timeout), timeout=self._timeout, data=form,
                headers={"Accept": "application/json"}, allow_redirects=False)
            body: Any = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise WorklistError(f"the backend token request failed ({type(exc).__name__})") \
                from exc
        if resp.status_code != 200 or not isinstance(body, dict) or \
                not isinstance(body.get("access_token"), str):
            code = body.get("error") if isinstance(body, dict) else None
            said = body.get("error_description") if isinstance(body, dict) else None
            said = "".join(c for c in said[:200] if c.isprintable()) \
                if isinstance(said, str) else ""
            raise WorklistError(f"the EHR refused the backend token (HTTP {resp.status_code}"
                                f"{', ' + str(code)[:40] if isinstance(code, str) else ''}"
                                f"{': ' + repr(said) if said else ''}); "
                                "check the client registration, its JWKS and system scopes "
                                f"(asked for: {self._scope[:300]})")
        lifetime = body.get("expires_in")
        seconds = lifetime if isinstance(lifetime, int | float) and lifetime > 0 \
            else DEFAULT_LIFETIME
        self._token = body["access_token"]
        self._expires = self._clock() + max(seconds - min(MARGIN, seconds / 5), 1)
        granted = body.get("scope")
        self.granted = granted if isinstance(granted, str) else self._scope
        self.fetches += 1
