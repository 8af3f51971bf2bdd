"""What an EHR's CapabilityStatement (``GET [base]/metadata``) says the app may ask of it.

Production EHRs differ in what they offer: MedicationStatement has no R4 API at Epic or Oracle
Health, Medication is not a standalone R4 resource at Oracle, neither offers RiskAssessment, and
``_include`` is honoured only where listed. The app reads the statement once per EHR (cached)
and decides from it which types to search (a type the server does not offer is *not offered*,
not *withheld*: it is simply not a source there), which ``_include`` to send, and how to
write back.

When the statement cannot be read, nothing is assumed missing: every type counts as offered
(the searches themselves then answer), but no ``_include`` is sent, since an unknown parameter
can fail a whole search on some servers. An unreadable statement is retried after a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from ..config import Tenant
from ..http.bounded import MB, deadline_in, get_json
from ..smart.scopes import READ_TYPES, WRITE_TYPES

log = logging.getLogger(__name__)

TTL = 3600.0
UNKNOWN_TTL = 60.0
MAX_TIMEOUT = 5.0


@dataclass(frozen=True)
class TypeSupport:
    """One ``rest.resource`` entry of the statement."""

    interactions: frozenset[str] = frozenset()
    search_params: frozenset[str] = frozenset()
    search_includes: frozenset[str] = frozenset()
    conditional_create: bool = False

    @property
    def searchable(self) -> bool:
        """``search-type`` listed (an entry that lists no interactions at all is taken as
        searchable: some statements name types without detailing them)."""
        return not self.interactions or "search-type" in self.interactions


@dataclass(frozen=True)
class ServerCapabilities:
    """The server-mode REST capabilities; ``known`` False when the statement was unreadable."""

    known: bool
    types: Mapping[str, TypeSupport] = field(default_factory=dict)

    def offers(self, resource_type: str) -> bool:
        """The server has this type at all (unknown statement: assume it does)."""
        return not self.known or resource_type in self.types

    def searchable(self, resource_type: str) -> bool:
        if not self.known:
            return True
        support = self.types.get(resource_type)
        return support is not None and support.searchable

    def includes(self, resource_type: str, include: str) -> bool:
        """``include`` (e.g. ``MedicationRequest:medication``) is listed in ``searchInclude``."""
        support = self.types.get(resource_type)
        return support is not None and include in support.search_includes

    def not_offered(self, resource_types: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t for t in resource_types if not self.offers(t))


UNKNOWN = ServerCapabilities(known=False)


def offered_types(tenant: Tenant, statement: ServerCapabilities) -> frozenset[str] | None:
    """The types of ``READ_TYPES`` and ``WRITE_TYPES`` this tenant's EHR offers (its
    ``read_types`` limit the reads); None when neither says anything (ask for everything)."""
    if not statement.known and not tenant.read_types:
        return None
    reads = {t for t in READ_TYPES if statement.offers(t)
             and (not tenant.read_types or t in tenant.read_types)}
    return frozenset(reads | {t for t in WRITE_TYPES if statement.offers(t)})


def metadata_headers(tenant: Tenant) -> dict[str, str]:
    """Extra headers for the unauthenticated ``/metadata`` read.

    Epic asks apps to name themselves there with ``Epic-Client-ID`` (organisations may
    tailor the statement per client, and it attributes the call); nothing else needs one.
    """
    return {"Epic-Client-ID": tenant.client_id} if tenant.vendor == "epic" else {}


def _strings(items: Any, key: str) -> frozenset[str]:
    if not isinstance(items, list):
        return frozenset()
    return frozenset(
        str(i.get(key)) for i in items if isinstance(i, dict) and isinstance(i.get(key), str)
    )


def parse(data: Mapping[str, Any]) -> ServerCapabilities:
    """The ``rest`` entries in server mode; types listed twice merge their capabilities."""
    if data.get("resourceType") != "CapabilityStatement":
        return UNKNOWN
    types: dict[str, TypeSupport] = {}
    rests = data.get("rest")
    for rest in rests if isinstance(rests, list) else []:
        if not isinstance(rest, dict) or rest.get("mode", "server") != "server":
            continue
        resources = rest.get("resource")
        for res in resources if isinstance(resources, list) else []:
            if not isinstance(res, dict) or not isinstance(res.get("type"), str):
                continue
            includes = res.get("searchInclude")
            entry = TypeSupport(
                interactions=_strings(res.get("interaction"), "code"),
                search_params=_strings(res.get("searchParam"), "name"),
                search_includes=frozenset(
                    i for i in includes if isinstance(i, str)
                ) if isinstance(includes, list) else frozenset(),
                conditional_create=res.get("conditionalCreate") is True,
            )
            old = types.get(res["type"])
            if old is not None:
                entry = TypeSupport(
                    old.interactions | entry.interactions,
                    old.search_params | entry.search_params,
                    old.search_includes | entry.search_includes,
                    old.conditional_create or entry.conditional_create,
                )
            types[res["type"]] = entry
    return ServerCapabilities(known=True, types=types)


def fetch(http: requests.Session, iss: str, timeout: float,
          headers: Mapping[str, str] | None = None) -> ServerCapabilities:
    """``GET [iss]/metadata`` (no token: SMART servers serve it openly); UNKNOWN on failure."""
    timeout = min(timeout, MAX_TIMEOUT)
    try:
        data = get_json(http, iss.rstrip("/") + "/metadata", max_bytes=2 * MB,
                        deadline=deadline_in(2 * timeout),
                        headers={"Accept": "application/fhir+json", **(headers or {})},
                        timeout=timeout, allow_redirects=False)
    except (requests.RequestException, ValueError) as exc:
        log.info("CapabilityStatement not readable (%s)", type(exc).__name__)
        return UNKNOWN
    if not isinstance(data, dict):
        return UNKNOWN
    return parse(data)


class CapabilityCache:
    """One statement per FHIR base, for an hour (a minute when it could not be read)."""

    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[ServerCapabilities, float]] = {}
        self._lock = threading.Lock()

    def get(self, http: requests.Session, iss: str, timeout: float,
            headers: Mapping[str, str] | None = None) -> ServerCapabilities:
        with self._lock:
            hit = self._entries.get(iss)
            if hit is not None and hit[1] > self._clock():
                return hit[0]
        found = fetch(http, iss, timeout, headers)
        with self._lock:
            ttl = self._ttl if found.known else UNKNOWN_TTL
            self._entries[iss] = (found, self._clock() + ttl)
        return found

    def forget(self, iss: str) -> None:
        """Read this EHR's statement again next time (it refused what the statement promised)."""
        with self._lock:
            self._entries.pop(iss, None)
