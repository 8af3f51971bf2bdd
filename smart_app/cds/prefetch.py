"""Prefetch: what the services ask the EHR to send along, and how what it sent is read.

The templates ask for what the app reads at launch (``fhir.client.plan``): the Patient; the
anti-JCV results by code, any date (``observations``); the laboratory Observations, for
unmapped local codes recognised by their text (``labs``); and the MedicationAdministrations,
MedicationStatements and MedicationRequests with their Medications ``_include``d; each in one
large page. The app bounds its laboratory search to the last ``text_search_years``; a CDS Hooks
2.0 template cannot name a date relative to today, so ``labs`` is unbounded and the service
drops, from it, what the app's bounded search would not have returned. The card's figure is
therefore the app's.

CDS Hooks 2.0 §Prefetch lets the EHR fulfil any subset, so every key is read for what it says:

* key absent: not sent; the service fetches it (``fallback.py``) or answers 412;
* ``null``: the EHR looked and there is nothing: no data, nothing to fetch;
* an OperationOutcome: the EHR's own fetch failed: fetched like an absent key;
* a Bundle with a ``next`` link: only a first page; the type is fetched whole, since a partial
  list of infusions would under-count the exposure;
* otherwise the Bundle's entries (or the single resource), each checked to be this patient's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

from ..config import Settings, Tenant
from ..fhir.client import in_compartment
from ..fhir.client.plan import jcv_codes

PATIENT = "{{context.patientId}}"
CHART_TYPES = ("Observation", "MedicationAdministration", "MedicationStatement",
               "MedicationRequest")
#: Resource types the engine reads; anything else in a prefetch Bundle is ignored.
READ_TYPES = frozenset({"Patient", *CHART_TYPES, "Medication"})
_INCLUDE = {"MedicationAdministration", "MedicationStatement", "MedicationRequest"}
_MEDICATION_KEYS = {"MedicationAdministration": "administrations",
                    "MedicationStatement": "statements", "MedicationRequest": "requests"}


class ForeignPrefetch(ValueError):
    """A prefetched resource belongs to another patient: the request is refused (400)."""


def chart_types(tenant: Tenant | None) -> tuple[str, ...]:
    """The chart's types this tenant's EHR offers (``read_types``; empty: all of them)."""
    limit = tenant.read_types if tenant is not None else ()
    return tuple(t for t in CHART_TYPES if not limit or t in limit)


def keys(settings: Settings, tenant: Tenant | None) -> dict[str, str]:
    """Prefetch key -> the resource type it holds, for this tenant."""
    found = {"patient": "Patient"}
    for rtype in chart_types(tenant):
        if rtype == "Observation":
            found["observations"] = rtype
            if settings.observation_category:
                found["labs"] = rtype
        else:
            found[_MEDICATION_KEYS[rtype]] = rtype
    return found


def _codes(settings: Settings, tenant: Tenant | None) -> str:
    extra = tenant.cds.observation_codes if tenant is not None and tenant.cds else ()
    return ",".join(dict.fromkeys([*extra, *jcv_codes(settings.codes)]))


def _query(rtype: str, params: Sequence[tuple[str, str]]) -> str:
    # Templates stay readable: only characters that would break the query are escaped.
    return rtype + "?" + "&".join(
        f"{k}={v if v == PATIENT else quote(v, safe=':/|,.-_~')}" for k, v in params
    )


def templates(settings: Settings, tenant: Tenant | None = None) -> dict[str, str]:
    """The ``prefetch`` of the discovery document (per tenant: its codes, types, page size)."""
    size = (tenant.page_size if tenant is not None else None) or settings.fhir_page_size
    count = ("_count", str(size))
    found = {}
    for key, rtype in keys(settings, tenant).items():
        if key == "patient":
            found[key] = f"Patient/{PATIENT}"
            continue
        params: list[tuple[str, str]] = [("patient", PATIENT)]
        if key == "observations":
            params.append(("code", _codes(settings, tenant)))
        elif key == "labs":
            params.append(("category", settings.observation_category))
        if rtype in _INCLUDE:
            params.append(("_include", f"{rtype}:medication"))
        params.append(count)
        found[key] = _query(rtype, params)
    return found


def labs_since(settings: Settings, today: date) -> date:
    """The start of the app's date-bounded laboratory search (``plan.observation_searches``)."""
    return today.replace(year=today.year - settings.text_search_years, day=min(today.day, 28))


@dataclass(frozen=True)
class Prefetched:
    """What the request's prefetch gave: resources, and per key what happened to it."""

    resources: tuple[dict[str, Any], ...]
    status: Mapping[str, str]  # key -> provided | empty | absent | failed | paged | invalid
    types: Mapping[str, str]  # key -> resource type

    @property
    def missing(self) -> tuple[str, ...]:
        """Keys whose data must still be fetched."""
        return tuple(k for k, s in self.status.items() if s not in ("provided", "empty"))

    @property
    def missing_types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.types[k] for k in self.missing))


def _has_next(bundle: Mapping[str, Any]) -> bool:
    links = bundle.get("link")
    return isinstance(links, list) and any(
        isinstance(link, dict) and link.get("relation") == "next" for link in links
    )


def _items(value: Any, rtype: str) -> list[Any] | str:
    """The resources a key holds, or what is wrong with it (a status)."""
    if value is None:
        return "empty"
    if not isinstance(value, dict):
        return "invalid"
    kind = value.get("resourceType")
    if kind == "OperationOutcome":
        return "failed"
    if kind == rtype:
        return [value]
    if kind != "Bundle":
        return "invalid"
    if _has_next(value):
        return "paged"
    entries = value.get("entry") or []
    if not isinstance(entries, list):
        return "invalid"
    return [e.get("resource") for e in entries if isinstance(e, dict)]


def _effective_day(resource: Mapping[str, Any]) -> str | None:
    """The latest day of an Observation's ``date`` (effective[x]), as the search compares it."""
    period = resource.get("effectivePeriod")
    found = resource.get("effectiveDateTime") or resource.get("effectiveInstant") or (
        (period.get("end") or period.get("start")) if isinstance(period, dict) else None)
    return found[:10] if isinstance(found, str) and len(found) >= 4 else None


def read(prefetch: Any, patient_id: str, fhir_base: str, types: Mapping[str, str],
         since: date | None = None) -> Prefetched:
    """Read the request's ``prefetch`` for the keys in ``types``; raises
    :class:`ForeignPrefetch`. ``labs`` entries dated before ``since`` (or undated) are dropped
    unless another key holds them too: the app's own search is bounded so."""
    given = prefetch if isinstance(prefetch, dict) else {}
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    status: dict[str, str] = {}
    labs: list[dict[str, Any]] = []
    for key, rtype in types.items():
        if key not in given:
            status[key] = "absent"
            continue
        items = _items(given[key], rtype)
        if isinstance(items, str):
            status[key] = items
            continue
        for item in items:
            kept = _checked(item, patient_id, fhir_base)
            if kept is None:
                continue
            if key == "labs":
                labs.append(kept)
            else:
                resources[(kept["resourceType"], kept["id"])] = kept
        status[key] = "provided"
    floor = since.isoformat() if since is not None else None
    for lab in labs:
        day = _effective_day(lab)
        if floor is None or (day is not None and day >= floor[: len(day)]):
            resources.setdefault((lab["resourceType"], lab["id"]), lab)
    return Prefetched(tuple(resources.values()), status, dict(types))


def _checked(item: Any, patient_id: str, base: str) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    rtype, rid = item.get("resourceType"), item.get("id")
    if rtype not in READ_TYPES or not isinstance(rid, str) or not rid:
        return None  # OperationOutcome entries, other types: not the engine's input
    if not in_compartment(item, patient_id, base):
        raise ForeignPrefetch(f"a prefetched {rtype} belongs to another patient")
    return item
