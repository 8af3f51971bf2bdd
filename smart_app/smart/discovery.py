"""SMART discovery (SMART App Launch 2.2 conformance): ``.well-known/smart-configuration``,
else the CapabilityStatement.

Only ever called with the ``iss`` of a configured tenant (the ``iss`` allowlist), so the URLs
fetched here are the allowlisted ones. Relative endpoint URLs are resolved against the FHIR base (as
SMART 2.1 asks), and results are cached per issuer so a launch normally costs no discovery round
trip at all.

For an https tenant every endpoint must be https too: the authorization code, the PKCE verifier,
the client secret or assertion and the refresh token all travel to these URLs, so a discovery
document naming an ``http://`` token endpoint or ``jwks_uri`` (a mistake, or a downgrade by
whoever controls the document) is refused rather than followed. A plain-http tenant (a sandbox on
loopback during development) keeps plain-http endpoints.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin

import requests

from ..http.bounded import MB, deadline_in
from ..http.bounded import get as bounded_get

log = logging.getLogger(__name__)

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


class DiscoveryError(RuntimeError):
    """The EHR's SMART configuration could not be read or is unusable."""


@dataclass(frozen=True)
class SmartConfiguration:
    """The fields of SMART conformance §Metadata the client acts on."""

    iss: str
    authorization_endpoint: str
    token_endpoint: str
    source: str  # "well-known" | "capability-statement"
    issuer: str | None = None
    jwks_uri: str | None = None
    capabilities: tuple[str, ...] = ()
    code_challenge_methods_supported: tuple[str, ...] = ()
    token_endpoint_auth_methods_supported: tuple[str, ...] = ()
    token_endpoint_auth_signing_alg_values_supported: tuple[str, ...] = ()
    scopes_supported: tuple[str, ...] = ()
    grant_types_supported: tuple[str, ...] = ()
    revocation_endpoint: str | None = None
    introspection_endpoint: str | None = None

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities


def _base(iss: str) -> str:
    return iss.rstrip("/") + "/"


def _url(data: Mapping[str, Any], key: str, iss: str, *, required: bool) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise DiscoveryError(f"SMART configuration of {iss}: {key} is missing")
    resolved = urljoin(_base(iss), value)
    if not resolved.startswith(("https://", "http://")):
        raise DiscoveryError(f"SMART configuration of {iss}: {key} is not an http(s) URL")
    if not transport_ok(resolved, iss):
        raise DiscoveryError(f"SMART configuration of {iss}: {key} is not an https URL")
    return resolved


def transport_ok(url: str, iss: str) -> bool:
    """An https tenant's endpoints must be https; an http (development) tenant's may be http."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "https":
        return True
    return scheme == "http" and not iss.lower().startswith("https://")


def _strings(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def parse_well_known(iss: str, data: Mapping[str, Any],
                     backend: bool = False) -> SmartConfiguration:
    """``backend``: a SMART Backend Services client (the worklist, check-config), which needs no
    ``authorization_endpoint``; SMART 2.2 requires one only of servers offering ``launch-*``,
    so a Backend-Services-only server without it is accepted (the field is then "")."""
    launch = any(c.startswith("launch-") for c in _strings(data, "capabilities"))
    authorize = _url(data, "authorization_endpoint", iss,
                     required=not backend or launch) or ""
    token = _url(data, "token_endpoint", iss, required=True)
    assert token is not None
    issuer = data.get("issuer")
    return SmartConfiguration(
        iss=iss,
        authorization_endpoint=authorize,
        token_endpoint=token,
        source="well-known",
        issuer=issuer if isinstance(issuer, str) and issuer else None,
        jwks_uri=_url(data, "jwks_uri", iss, required=False),
        capabilities=_strings(data, "capabilities"),
        code_challenge_methods_supported=_strings(data, "code_challenge_methods_supported"),
        token_endpoint_auth_methods_supported=_strings(
            data, "token_endpoint_auth_methods_supported"
        ),
        token_endpoint_auth_signing_alg_values_supported=_strings(
            data, "token_endpoint_auth_signing_alg_values_supported"
        ),
        scopes_supported=_strings(data, "scopes_supported"),
        grant_types_supported=_strings(data, "grant_types_supported"),
        revocation_endpoint=_url(data, "revocation_endpoint", iss, required=False),
        introspection_endpoint=_url(data, "introspection_endpoint", iss, required=False),
    )


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_capability_statement(iss: str, data: Mapping[str, Any]) -> SmartConfiguration:
    """The deprecated SMART 1.0 route: ``rest[].security.extension[oauth-uris]``."""
    uris: dict[str, str] = {}
    for rest in _items(data.get("rest")):
        security = rest.get("security", {}) if isinstance(rest, dict) else {}
        for ext in _items(security.get("extension")) if isinstance(security, dict) else []:
            if not isinstance(ext, dict) or ext.get("url") != OAUTH_URIS:
                continue
            for item in _items(ext.get("extension")):
                if isinstance(item, dict) and isinstance(item.get("valueUri"), str):
                    uris[str(item.get("url"))] = item["valueUri"]
    mapped = {
        "authorization_endpoint": uris.get("authorize"),
        "token_endpoint": uris.get("token"),
        "revocation_endpoint": uris.get("revoke"),
        "introspection_endpoint": uris.get("introspect"),
    }
    config = parse_well_known(iss, {k: v for k, v in mapped.items() if v})
    return replace(config, source="capability-statement")


def fetch(http: requests.Session, iss: str, timeout: float,
          metadata_headers: Mapping[str, str] | None = None,
          backend: bool = False) -> SmartConfiguration:
    """``.well-known/smart-configuration``, then the CapabilityStatement only when the well-known
    document does not exist (404/410).

    ``metadata_headers`` go with both reads (Epic: ``Epic-Client-ID``, without which Epic
    says the configuration may name the wrong token and authorize endpoints).
    """
    headers = {"Accept": "application/json", **(metadata_headers or {})}
    url = _base(iss) + ".well-known/smart-configuration"
    deadline = deadline_in(3 * timeout)
    try:
        resp = bounded_get(http, url, max_bytes=1 * MB, deadline=deadline, headers=headers,
                           timeout=timeout, allow_redirects=False)
        if resp.status_code in (404, 410):
            log.warning("no .well-known/smart-configuration; using the CapabilityStatement")
            meta = bounded_get(
                http,
                _base(iss) + "metadata",
                max_bytes=2 * MB,
                deadline=deadline,
                headers={"Accept": "application/fhir+json", **(metadata_headers or {})},
                timeout=timeout,
                allow_redirects=False,
            )
            meta.raise_for_status()
            return parse_capability_statement(iss, meta.json())
        resp.raise_for_status()
        data = resp.json()
    except (requests.RequestException, ValueError, RecursionError) as exc:
        reason = type(exc).__name__
        raise DiscoveryError(f"could not read the SMART configuration: {reason}") from exc
    if not isinstance(data, dict):
        raise DiscoveryError("the SMART configuration is not a JSON object")
    return parse_well_known(iss, data, backend)


class DiscoveryCache:
    """Per-issuer cache with a TTL; one fetch at a time per issuer."""

    def __init__(self, ttl: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[SmartConfiguration, float]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, http: requests.Session, iss: str, timeout: float,
            metadata_headers: Mapping[str, str] | None = None) -> SmartConfiguration:
        with self._guard:
            lock = self._locks.setdefault(iss, threading.Lock())
        with lock:
            cached = self._entries.get(iss)
            if cached is not None and cached[1] > self._clock():
                return cached[0]
            config = fetch(http, iss, timeout, metadata_headers)
            self._entries[iss] = (config, self._clock() + self._ttl)
            return config

    def forget(self, iss: str) -> None:
        with self._guard:
            self._entries.pop(iss, None)
