"""Can this launch save a RiskAssessment, and how? (requirements §4.3 items 1, 4 and 5)

Two independent checks, both needed before the button is enabled:

* the granted scopes: v2 ``patient/RiskAssessment.c`` or v1 ``.write`` (T6: the grant may be
  narrower than the request);
* the EHR's CapabilityStatement: RiskAssessment with the ``create`` interaction. Whether it
  also does ``conditionalCreate`` chooses the write path (conditional create, or search then
  create). It is read once per issuer and cached; when it cannot be read the app assumes
  support and lets the write itself answer, so a flaky ``/metadata`` never hides the button.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from flask import current_app

from ...http.bounded import MB, deadline_in, get_json
from ...smart.scopes import GrantedScopes

log = logging.getLogger(__name__)

EXTENSION = "pml_risk.capabilities"
TTL = 3600.0


@dataclass(frozen=True)
class WriteSupport:
    """What the EHR's CapabilityStatement says about RiskAssessment."""

    known: bool  # False: the statement could not be read; assume support
    create: bool
    conditional_create: bool
    search_identifier: bool


UNKNOWN = WriteSupport(known=False, create=True, conditional_create=True, search_identifier=True)


@dataclass(frozen=True)
class SaveState:
    """Whether "Save to chart" is enabled, and the reason shown when it is not."""

    enabled: bool
    code: str  # ok | scope | unsupported | no-estimate
    reason: str
    conditional: bool = True  # False: search by identifier first, then a plain create


def parse_capability(data: Mapping[str, Any]) -> WriteSupport:
    for rest in data.get("rest", []) or []:
        if not isinstance(rest, dict) or rest.get("mode", "server") != "server":
            continue
        for res in rest.get("resource", []) or []:
            if not isinstance(res, dict) or res.get("type") != "RiskAssessment":
                continue
            codes = {i.get("code") for i in res.get("interaction", []) or [] if isinstance(i, dict)}
            params = {p.get("name") for p in res.get("searchParam", []) or []
                      if isinstance(p, dict)}
            return WriteSupport(
                known=True,
                create="create" in codes,
                conditional_create=res.get("conditionalCreate") is True,
                search_identifier="identifier" in params,
            )
    return WriteSupport(known=True, create=False, conditional_create=False,
                        search_identifier=False)


class CapabilityCache:
    def __init__(self, ttl: float = TTL) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[WriteSupport, float]] = {}
        self._lock = threading.Lock()

    def get(self, http: requests.Session, iss: str, timeout: float) -> WriteSupport:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(iss)
            if hit is not None and hit[1] > now:
                return hit[0]
        support = _fetch(http, iss, timeout)
        with self._lock:
            # An unreadable statement is retried after a minute, not after an hour.
            self._entries[iss] = (support, now + (self._ttl if support.known else 60.0))
        return support


def _fetch(http: requests.Session, iss: str, timeout: float) -> WriteSupport:
    try:
        data = get_json(http, iss.rstrip("/") + "/metadata", max_bytes=2 * MB,
                        deadline=deadline_in(2 * min(timeout, 5.0)),
                        headers={"Accept": "application/fhir+json"},
                        timeout=min(timeout, 5.0), allow_redirects=False)
    except (requests.RequestException, ValueError) as exc:
        log.info("CapabilityStatement not readable (%s); assuming RiskAssessment create",
                 type(exc).__name__)
        return UNKNOWN
    if not isinstance(data, dict) or data.get("resourceType") != "CapabilityStatement":
        return UNKNOWN
    return parse_capability(data)


def cache() -> CapabilityCache:
    """One cache per app (on ``app.extensions``), created on first use."""
    found = current_app.extensions.get(EXTENSION)
    if not isinstance(found, CapabilityCache):
        found = CapabilityCache()
        current_app.extensions[EXTENSION] = found
    return found


def save_state(granted: GrantedScopes, support: WriteSupport, complete: bool) -> SaveState:
    if not complete:
        return SaveState(False, "no-estimate",
                         "Nothing can be saved: there is no estimate (see what is missing).")
    if not granted.can_create("RiskAssessment"):
        return SaveState(
            False, "scope",
            "Read-only: the EHR did not grant this app permission to save a RiskAssessment "
            "(scope patient/RiskAssessment.c or patient/RiskAssessment.write). Download the "
            "result or copy the summary into a note instead.",
        )
    if not support.create:
        return SaveState(
            False, "unsupported",
            "Read-only: this EHR does not accept RiskAssessment resources (its "
            "CapabilityStatement has no RiskAssessment create). Download the result or copy "
            "the summary into a note instead.",
        )
    conditional = support.conditional_create or not (
        support.search_identifier and granted.can_search("RiskAssessment")
    )
    return SaveState(True, "ok", "", conditional=conditional)
