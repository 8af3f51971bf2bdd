"""Reading what the prefetch left out, with the EHR's ``fhirAuthorization``, or not at all.

The request's ``fhirServer`` is only used when it *equals the tenant's configured FHIR base*:
the access token then goes back to the server that issued it and nowhere else. Open-source
services that fetch from whatever ``fhirServer`` the request names hand the token, and their
own reads, to anyone who can make a call; here any other value means "cannot fetch" (412).

The token is used for this request only: it is held in a local variable, sent in the
``Authorization`` header of the reads, never stored, logged or audited (CDS Hooks best practice
§FHIR Access). All reads of one call share one wall-clock budget (``DEADLINE``, 1.75 s, so
that even a 412 leaves within the 2 s the service promises): an EHR
waits about 500 ms for cards, so a slow server ends in a 412 the EHR can act on, not in a
hanging call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import requests

from ..config import Settings, Tenant
from ..fhir.capability import UNKNOWN, ServerCapabilities
from ..fhir.client import FhirClient, FhirError
from ..fhir.client.plan import ReadPlan, observation_searches
from ..smart.scopes import GrantedScopes

#: What the service reads with ``fhirAuthorization``: the chart's types and their Medications.
WANTED_SCOPES = ("patient/Patient.r patient/Observation.rs patient/MedicationAdministration.rs "
                 "patient/MedicationStatement.rs patient/MedicationRequest.rs "
                 "patient/Medication.rs")
DEADLINE = 1.75  # seconds for every FHIR read of one call: with the rest, the answer is < 2 s
MEDICATION_IDS_PER_SEARCH = 100


class CannotFetch(Exception):
    """The missing data cannot be read; ``reason`` is an audit code, ``message`` is safe to
    return in the 412's OperationOutcome (no token, no PHI)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class FhirAccess:
    """A usable ``fhirAuthorization``: the tenant's own FHIR base and a bearer token."""

    base: str
    token: str
    granted: GrantedScopes


@dataclass(frozen=True)
class Fetched:
    resources: tuple[dict[str, Any], ...]
    requests: int
    round_trips: int
    unread: tuple[str, ...] = ()  # types the server refused (403) although the token allows
    not_offered: tuple[str, ...] = ()  # types this EHR does not offer: nothing to read


def access(
    fhir_server: Any, authorization: Any, tenant_base: str, patient_id: str
) -> FhirAccess | CannotFetch:
    """The access to use, or why there is none (``fhirServer`` must be the tenant's base)."""
    if not isinstance(authorization, dict):
        return CannotFetch("no-fhir-authorization",
                           "the request carries no fhirAuthorization to read FHIR with")
    if not isinstance(fhir_server, str) or fhir_server.rstrip("/") != tenant_base.rstrip("/"):
        return CannotFetch("foreign-fhir-server",
                           "fhirServer is not this tenant's registered FHIR server; the "
                           "service reads only from the registered server")
    token = authorization.get("access_token")
    if not isinstance(token, str) or not token or len(token) > 8192:
        return CannotFetch("bad-fhir-authorization", "fhirAuthorization has no access_token")
    if str(authorization.get("token_type", "")).lower() != "bearer":
        return CannotFetch("bad-fhir-authorization", "fhirAuthorization.token_type is not Bearer")
    bound = authorization.get("patient")
    if bound is not None and str(bound).removeprefix("Patient/") != patient_id:
        return CannotFetch("bad-fhir-authorization",
                           "fhirAuthorization is bound to another patient than the context")
    scope = authorization.get("scope")
    # Epic writes the grant as API names ("Observation.Read (Labs) (R4) Observation.Search
    # (Labs) (R4) …"): read as SMART it allows nothing. As at launch, a grant with no SMART
    # scope in it stands for what the service asks, and the server's 403 says what it refuses.
    return FhirAccess(tenant_base.rstrip("/"), token,
                      GrantedScopes.effective(scope if isinstance(scope, str) else "",
                                              WANTED_SCOPES))


def _client(http: requests.Session, fhir: FhirAccess, settings: Settings, tenant: Tenant,
            budget: float) -> FhirClient:
    token = fhir.token
    return FhirClient(
        http, fhir.base, lambda _rejected: token,
        timeout=min(settings.fhir_timeout, budget), max_pages=settings.fhir_max_pages,
        page_size=tenant.page_size or settings.fhir_page_size, deadline=budget,
    )


def fetch(
    http: requests.Session,
    fhir: FhirAccess,
    settings: Settings,
    tenant: Tenant,
    patient_id: str,
    types: Sequence[str],
    today: date,
    have: Iterable[Mapping[str, Any]],
    *,
    statement: ServerCapabilities = UNKNOWN,
    deadline: float = DEADLINE,
) -> Fetched:
    """Read ``types`` for the patient with the app's own read plan (the same searches, the
    same ``_include``s, the same types skipped as not offered by the EHR's CapabilityStatement
    or the tenant's ``read_types``), then any Medication that the resources reference and
    nobody sent. Raises :class:`CannotFetch`."""
    started = time.monotonic()
    plan = ReadPlan(observation_searches=observation_searches(settings, today),
                    capabilities=statement, read_types=tenant.read_types)
    not_offered = tuple(t for t in types if t != "Patient" and not plan.offered(t))
    types = [t for t in types if t not in not_offered]
    refused = [t for t in types if not fhir.granted.can_search(t)]
    if refused:
        raise CannotFetch("scope", "fhirAuthorization does not allow reading "
                          + ", ".join(refused))
    found: list[dict[str, Any]] = []
    unread: tuple[str, ...] = ()
    sent = trips = 0
    if types:
        wanted = [f"patient/{t}.rs" for t in types]
        if fhir.granted.can_search("Medication"):
            wanted.append("patient/Medication.rs")
        try:
            data = _client(http, fhir, settings, tenant, deadline).read_chart(
                patient_id, GrantedScopes.parse(" ".join(wanted)), plan)
        except FhirError as exc:
            raise CannotFetch("fhir", f"the FHIR server could not be read: {exc.message}") \
                from exc
        found.extend(data.resources)
        sent, trips = data.requests, data.round_trips
        # Refused by the server (403) although granted: unknown to the engine, as in the app.
        unread = tuple(t for t in data.withheld if t in types)
    missing = unresolved_medications([*have, *found], fhir.base)
    if missing and fhir.granted.can_search("Medication"):
        left = deadline - (time.monotonic() - started)
        if left <= 0.05:
            raise CannotFetch("fhir", f"the FHIR server did not answer within {deadline:g} s")
        client = _client(http, fhir, settings, tenant, left)
        trips += 1
        for i in range(0, len(missing), MEDICATION_IDS_PER_SEARCH):
            ids = ",".join(missing[i:i + MEDICATION_IDS_PER_SEARCH])
            try:
                found.extend(client.search_one("Medication", [("_id", ids)]))
            except FhirError as exc:
                raise CannotFetch("fhir", f"the FHIR server could not be read: {exc.message}") \
                    from exc
            sent += 1
    return Fetched(tuple(found), sent, trips, unread, not_offered)


def unresolved_medications(resources: Iterable[Mapping[str, Any]], base: str) -> list[str]:
    """Ids of ``Medication/<id>`` references that no resource at hand satisfies."""
    resources = list(resources)
    have = {r.get("id") for r in resources if r.get("resourceType") == "Medication"}
    wanted: set[str] = set()
    for resource in resources:
        ref = resource.get("medicationReference")
        target = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(target, str) or target.startswith("#"):
            continue
        parts = target.removeprefix(base.rstrip("/") + "/").split("/")
        if len(parts) in (2, 4) and parts[0] == "Medication" and parts[1]:
            wanted.add(parts[1])
    return sorted(wanted - {h for h in have if isinstance(h, str)})
