"""Prefetch: what the services ask the EHR to send along, and how what it sent is read.

``patient-view`` fires on every chart opened, so the templates stay within CDS Hooks 2.0's
recommended query subset (instance read, type search, token ``=``, date prefixes, ``_count``;
no ``_include``) and ask for little:

* ``patient``: ``Patient/{{context.patientId}}``;
* ``observations``: the anti-JCV results by code (the tenant's codes and the defaults), any
  date;
* ``labs`` (only with the tenant's ``lab_category``, for anti-JCV results under unmapped local
  codes): laboratory results since a date ``text_search_years`` before the discovery document
  was built (a 2.0 template cannot say "today"; the service drops what the app's own bounded
  search would not have returned, so the bound only ever loosens);
* ``administrations``, ``statements``, ``requests``: the patient's medication records, or, with
  the tenant's ``medication_code_search`` (its server searches medications by code), only
  those coded natalizumab or an immunosuppressant. Without ``_include``: the Medications they
  reference are read afterwards in one search (``fallback.py``), or the call ends in 412.

CDS Hooks 2.0 §Prefetch lets the EHR fulfil any subset, so every key is read for what it says:

* key absent: not sent; the service fetches it (``fallback.py``) or answers 412;
* ``null``: the EHR looked and there is nothing: no data, nothing to fetch;
* an OperationOutcome: the EHR's own fetch failed: fetched like an absent key;
* a Bundle with a ``next`` link: only a first page; the type is fetched whole, since a partial
  list of infusions would under-count the exposure;
* otherwise the Bundle's entries (or the single resource), each checked to be this patient's.

Every copy is kept: two keys (or one Bundle) may hold different copies of one resource, and
which one counts is the extractor's copy rule (``fhir.extract``: the newest by version, else
no estimate where they disagree), as for every other input. Never "the last one wins".
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
from ..fhir.codes import Vocabulary

PATIENT = "{{context.patientId}}"
CHART_TYPES = ("Observation", "MedicationAdministration", "MedicationStatement",
               "MedicationRequest")
#: Resource types the engine reads; anything else in a prefetch Bundle is ignored.
READ_TYPES = frozenset({"Patient", *CHART_TYPES, "Medication"})
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
            if settings.observation_category and _lab_category(tenant):
                found["labs"] = rtype
        else:
            found[_MEDICATION_KEYS[rtype]] = rtype
    return found


def _lab_category(tenant: Tenant | None) -> bool:
    return tenant is not None and tenant.cds is not None and tenant.cds.lab_category


def _medication_codes(settings: Settings) -> str:
    """Natalizumab and every immunosuppressant code in force (defaults and configured)."""
    vocab = Vocabulary.from_config(settings.codes)
    found = set(vocab.natalizumab).union(*vocab.immunosuppressants.values())
    return ",".join(sorted(found))


def _codes(settings: Settings, tenant: Tenant | None) -> str:
    extra = tenant.cds.observation_codes if tenant is not None and tenant.cds else ()
    return ",".join(dict.fromkeys([*extra, *jcv_codes(settings.codes)]))


def _query(rtype: str, params: Sequence[tuple[str, str]]) -> str:
    # Templates stay readable: only characters that would break the query are escaped.
    return rtype + "?" + "&".join(
        f"{k}={v if v == PATIENT else quote(v, safe=':/|,.-_~')}" for k, v in params
    )


def templates(settings: Settings, tenant: Tenant | None = None,
              today: date | None = None) -> dict[str, str]:
    """The ``prefetch`` of the discovery document (per tenant: its codes, types, page size)."""
    size = (tenant.page_size if tenant is not None else None) or settings.fhir_page_size
    count = ("_count", str(size))
    by_code = tenant is not None and tenant.cds is not None and (
        tenant.cds.medication_code_search)
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
            params.append(("date", "ge" + labs_since(settings, today or date.today()).isoformat()))
        elif by_code:
            params.append(("code", _medication_codes(settings)))
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
    :class:`ForeignPrefetch`. Every copy of a resource is kept for the extractor's copy rule.
    ``labs`` entries dated before ``since`` (or undated) are dropped unless another key holds
    the same resource: the app's own search is bounded so."""
    given = prefetch if isinstance(prefetch, dict) else {}
    resources: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
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
                resources.append(kept)
                seen.add((kept["resourceType"], kept["id"]))
        status[key] = "provided"
    floor = since.isoformat() if since is not None else None
    for lab in labs:
        day = _effective_day(lab)
        if (lab["resourceType"], lab["id"]) in seen or floor is None or (
                day is not None and day >= floor[: len(day)]):
            resources.append(lab)  # a copy of one held elsewhere is a copy all the same
    return Prefetched(tuple(resources), status, dict(types))


def _checked(item: Any, patient_id: str, base: str) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    rtype, rid = item.get("resourceType"), item.get("id")
    if rtype not in READ_TYPES or not isinstance(rid, str) or not rid:
        return None  # OperationOutcome entries, other types: not the engine's input
    if not in_compartment(item, patient_id, base):
        raise ForeignPrefetch(f"a prefetched {rtype} belongs to another patient")
    return item
