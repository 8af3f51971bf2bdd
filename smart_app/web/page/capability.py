"""Can this launch save a RiskAssessment, and how? (requirements §4.3 items 1, 4 and 5)

Two independent checks, both needed before the button is enabled:

* the granted scopes: v2 ``patient/RiskAssessment.c`` or v1 ``.write`` (T6: the grant may be
  narrower than the request);
* the EHR's CapabilityStatement: RiskAssessment with the ``create`` interaction. Whether it
  also does ``conditionalCreate`` chooses the write path (conditional create, or search then
  create). It is read once per issuer and cached (``fhir.capability``); when it cannot be read
  the app assumes support and lets the write itself answer, so a flaky ``/metadata`` never
  hides the button.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from flask import current_app

from ...fhir import capability as fhir_capability
from ...fhir.capability import ServerCapabilities
from ...smart.scopes import GrantedScopes
from ..services import services

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


def write_support(statement: ServerCapabilities) -> WriteSupport:
    """What the statement says about RiskAssessment (an unreadable one: assume support)."""
    if not statement.known:
        return UNKNOWN
    support = statement.types.get("RiskAssessment")
    if support is None:
        return WriteSupport(known=True, create=False, conditional_create=False,
                            search_identifier=False)
    return WriteSupport(
        known=True,
        create="create" in support.interactions,
        conditional_create=support.conditional_create,
        search_identifier="identifier" in support.search_params,
    )


def parse_capability(data: Mapping[str, Any]) -> WriteSupport:
    return write_support(fhir_capability.parse(data))


class CapabilityCache:
    """The EHR's statement per issuer (``fhir.capability.CapabilityCache``), read once for the
    chart read (which types, which ``_include``) and the save (how to write)."""

    def __init__(self, ttl: float = TTL,
                 statements: fhir_capability.CapabilityCache | None = None) -> None:
        self._statements = statements or fhir_capability.CapabilityCache(ttl)

    def statement(self, http: requests.Session, iss: str, timeout: float,
                  headers: Mapping[str, str] | None = None) -> ServerCapabilities:
        return self._statements.get(http, iss, timeout, headers)

    def get(self, http: requests.Session, iss: str, timeout: float,
            headers: Mapping[str, str] | None = None) -> WriteSupport:
        return write_support(self.statement(http, iss, timeout, headers))


def cache() -> CapabilityCache:
    """One cache per app, sharing the statements the chart read uses (``Services``)."""
    found = current_app.extensions.get(EXTENSION)
    if not isinstance(found, CapabilityCache):
        found = CapabilityCache(statements=services().capabilities)
        current_app.extensions[EXTENSION] = found
    return found


def save_state(granted: GrantedScopes, support: WriteSupport, complete: bool) -> SaveState:
    if not complete:
        return SaveState(False, "no-estimate",
                         "Nothing can be saved: there is no estimate (see what is missing).")
    # The EHR's lack of the type first: then no scope for it was asked for either.
    if not support.create:
        return SaveState(
            False, "unsupported",
            "Read-only: this EHR does not accept RiskAssessment resources (its "
            "CapabilityStatement has no RiskAssessment create). Download the result or copy "
            "the summary into a note instead.",
        )
    if not granted.can_create("RiskAssessment"):
        return SaveState(
            False, "scope",
            "Read-only: the EHR did not grant this app permission to save a RiskAssessment "
            "(scope patient/RiskAssessment.c or patient/RiskAssessment.write). Download the "
            "result or copy the summary into a note instead.",
        )
    conditional = support.conditional_create or not (
        support.search_identifier and granted.can_search("RiskAssessment")
    )
    return SaveState(True, "ok", "", conditional=conditional)
