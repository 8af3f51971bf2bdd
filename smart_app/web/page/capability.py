"""Where "Save to chart" writes, and how: the write-back ladder.

Per tenant (``writeback``, default ``auto``), decided from two independent checks:

* the granted scopes: ``patient/RiskAssessment.c`` / ``patient/DocumentReference.c`` (v2) or
  ``.write`` (v1); the grant may be narrower than the request;
* the EHR's CapabilityStatement: the type with the ``create`` interaction. Whether it also does
  ``conditionalCreate`` chooses the write path (conditional create, or search then create).
  It is read once per issuer and cached (``fhir.capability``); when it cannot be read the app
  assumes support and lets the write itself answer, so a flaky ``/metadata`` never hides the
  button.

The rungs, in order: 1. a RiskAssessment; 2. a clinical note (DocumentReference) holding the
same summary; 3. read-only (print, download, copy), with the reason on the page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
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


RISK_ASSESSMENT = "RiskAssessment"
NOTE = "DocumentReference"


@dataclass(frozen=True)
class WriteSupport:
    """What the EHR's CapabilityStatement says about creating one resource type."""

    known: bool  # False: the statement could not be read; assume support
    create: bool
    conditional_create: bool
    search_identifier: bool


UNKNOWN = WriteSupport(known=False, create=True, conditional_create=True, search_identifier=True)


@dataclass(frozen=True)
class Capabilities:
    """The write support of the types the ladder can write."""

    risk_assessment: WriteSupport
    note: WriteSupport

    def of(self, resource_type: str) -> WriteSupport:
        return self.risk_assessment if resource_type == RISK_ASSESSMENT else self.note


ASSUMED = Capabilities(UNKNOWN, UNKNOWN)


@dataclass(frozen=True)
class SaveState:
    """Whether "Save to chart" is enabled, what it writes, and the reason shown when it is not."""

    enabled: bool
    code: str  # ok | scope | unsupported | disabled | no-estimate
    reason: str
    conditional: bool = True  # False: search by identifier first, then a plain create
    #: The EHR does not say it deduplicates (no conditional create): the app's write ledger
    #: answers a second save of the same result.
    ledger: bool = False
    target: str | None = None  # RiskAssessment | DocumentReference (enabled only)
    destination: str = ""  # said next to the button, before the click

    @property
    def note(self) -> bool:
        return self.target == NOTE


NONE = WriteSupport(known=True, create=False, conditional_create=False, search_identifier=False)


def write_support(statement: ServerCapabilities,
                  resource_type: str = RISK_ASSESSMENT) -> WriteSupport:
    """What the statement says about creating one type (an unreadable one: assume support)."""
    if not statement.known:
        return UNKNOWN
    support = statement.types.get(resource_type)
    if support is None:
        return NONE
    return WriteSupport(
        known=True,
        create="create" in support.interactions,
        conditional_create=support.conditional_create,
        search_identifier="identifier" in support.search_params,
    )


def capabilities(statement: ServerCapabilities) -> Capabilities:
    return Capabilities(write_support(statement, RISK_ASSESSMENT), write_support(statement, NOTE))


def parse_capabilities(data: Mapping[str, Any]) -> Capabilities:
    return capabilities(fhir_capability.parse(data))


def parse_capability(data: Mapping[str, Any]) -> WriteSupport:
    """RiskAssessment's write support alone."""
    return parse_capabilities(data).risk_assessment


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
            headers: Mapping[str, str] | None = None) -> Capabilities:
        return capabilities(self.statement(http, iss, timeout, headers))

    def forget(self, iss: str) -> None:
        """The EHR refused a create its statement promised: read the statement again."""
        self._statements.forget(iss)


def cache() -> CapabilityCache:
    """One cache per app, sharing the statements the chart read uses (``Services``)."""
    found = current_app.extensions.get(EXTENSION)
    if not isinstance(found, CapabilityCache):
        found = CapabilityCache(statements=services().capabilities)
        current_app.extensions[EXTENSION] = found
    return found


#: What a clinician calls each record the app can save (the reason Save is off says these).
_SAVED_AS = {"RiskAssessment": "risk assessment records", "DocumentReference": "clinical notes"}
_FALLBACK = "Print it, download it or copy the summary into a note instead."


def _rung(target: str, granted: GrantedScopes, support: WriteSupport,
          destination: str) -> SaveState:
    """One rung on its own: enabled, or why not (the EHR's lack of the type first: then no
    scope for it was asked for either)."""
    v2, v1 = f"patient/{target}.c", f"patient/{target}.write"
    if not support.create:
        return SaveState(False, "unsupported", f"this EHR does not accept "
                         f"{_SAVED_AS.get(target, target)} from apps like this one")
    if not granted.can_create(target):
        return SaveState(False, "scope", f"the EHR did not grant this app permission to save a "
                         f"{target} (scope {v2} or {v1})")
    conditional = support.conditional_create or not (
        support.search_identifier and granted.can_search(target)
    )
    return SaveState(True, "ok", "", conditional=conditional,
                     ledger=not support.conditional_create, target=target,
                     destination=destination)


def save_state(granted: GrantedScopes, support: Capabilities | WriteSupport, complete: bool,
               *, writeback: str = "auto", note_label: str = "Progress note") -> SaveState:
    """The ladder for this launch: the first rung the tenant allows and the EHR takes."""
    if not complete:
        return SaveState(False, "no-estimate",
                         "Nothing can be saved: there is no estimate (see what is missing).")
    if isinstance(support, WriteSupport):  # RiskAssessment only (no note support known)
        support = Capabilities(support, NONE)
    if writeback == "none":
        return SaveState(False, "disabled", "Read-only: saving to the chart is turned off for "
                         f"this EHR in the app's configuration. {_FALLBACK}")
    rungs: list[SaveState] = []
    if writeback in ("auto", "riskassessment"):
        rungs.append(_rung(RISK_ASSESSMENT, granted, support.risk_assessment,
                           "Saves this result to the chart as a RiskAssessment"))
    if writeback in ("auto", "note"):
        label = note_label[:1].lower() + note_label[1:]
        rungs.append(_rung(NOTE, granted, support.note,
                           f"Saves a {label} with this result to the chart"))
    for rung in rungs:
        if rung.enabled:
            return rung
    first = rungs[0]
    if len(rungs) == 1:
        return replace(first, reason=f"Read-only: {first.reason}. {_FALLBACK}")
    code = "scope" if any(r.code == "scope" for r in rungs) else "unsupported"
    return SaveState(False, code, "Read-only: neither a RiskAssessment nor a clinical note can "
                     f"be saved: {rungs[0].reason}; and {rungs[1].reason}. {_FALLBACK}")


def no_encounter(note_label: str = "Progress note") -> SaveState:
    """The note rung off: this EHR files a note only against a visit of the patient, and the
    app was opened outside one (Epic and Oracle Health refuse a note without
    ``context.encounter``)."""
    label = note_label[:1].lower() + note_label[1:]
    return SaveState(False, "no-encounter",
                     f"Read-only: this EHR files a {label} only within a visit, and the app was "
                     "opened outside one. To save, open the app from the patient's current "
                     f"visit (encounter). {_FALLBACK}")
