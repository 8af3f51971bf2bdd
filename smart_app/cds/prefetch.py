"""Prefetch: what the services ask the EHR to send along, and how what it sent is read.

The templates ask for exactly what the app reads at launch (``fhir_client.read_chart``): the
Patient, the laboratory Observations, and the MedicationAdministrations, MedicationStatements and
MedicationRequests with their Medications ``_include``d, each in one large page. The card's
figure can therefore equal the app's.

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
from typing import Any
from urllib.parse import quote

from ..config import Settings, Tenant
from ..fhir.client import in_compartment
from ..fhir.codes import Vocabulary

PATIENT = "{{context.patientId}}"

#: Prefetch key -> the resource type it holds, in the order the chart is read.
KEYS: Mapping[str, str] = {
    "patient": "Patient",
    "observations": "Observation",
    "administrations": "MedicationAdministration",
    "statements": "MedicationStatement",
    "requests": "MedicationRequest",
}
#: Resource types the engine reads; anything else in a prefetch Bundle is ignored.
READ_TYPES = frozenset({*KEYS.values(), "Medication"})
_INCLUDE = {"MedicationAdministration", "MedicationStatement", "MedicationRequest"}


class ForeignPrefetch(ValueError):
    """A prefetched resource belongs to another patient: the request is refused (400)."""


def observation_params(settings: Settings, tenant: Tenant | None) -> list[tuple[str, str]]:
    """The Observation search narrowing: by code when the tenant lists codes, else the app's
    category. A code search always includes every anti-JCV antibody and index code the engine
    knows (defaults and ``[codes]``): an index left out would silently change the row."""
    codes = tenant.cds.observation_codes if tenant is not None and tenant.cds else ()
    if codes:
        vocab = Vocabulary.from_config(settings.codes)
        known = sorted(vocab.jcv_antibody | vocab.jcv_index)
        return [("code", ",".join(dict.fromkeys([*codes, *known])))]
    category = settings.observation_category
    return [("category", category)] if category else []


def _query(rtype: str, params: Sequence[tuple[str, str]]) -> str:
    # Templates stay readable: only characters that would break the query are escaped.
    return rtype + "?" + "&".join(
        f"{k}={v if v == PATIENT else quote(v, safe=':/|,.-_~')}" for k, v in params
    )


def templates(settings: Settings, tenant: Tenant | None = None) -> dict[str, str]:
    """The ``prefetch`` of the discovery document (per tenant when its codes differ)."""
    count = ("_count", str(settings.fhir_page_size))
    found = {"patient": f"Patient/{PATIENT}"}
    for key, rtype in KEYS.items():
        if rtype == "Patient":
            continue
        params: list[tuple[str, str]] = [("patient", PATIENT)]
        if rtype == "Observation":
            params += observation_params(settings, tenant)
        if rtype in _INCLUDE:
            params.append(("_include", f"{rtype}:medication"))
        params.append(count)
        found[key] = _query(rtype, params)
    return found


@dataclass(frozen=True)
class Prefetched:
    """What the request's prefetch gave: resources, and per key what happened to it."""

    resources: tuple[dict[str, Any], ...]
    status: Mapping[str, str]  # key -> provided | empty | absent | failed | paged | invalid

    @property
    def missing(self) -> tuple[str, ...]:
        """Keys whose data must still be fetched."""
        return tuple(k for k, s in self.status.items() if s not in ("provided", "empty"))

    @property
    def missing_types(self) -> tuple[str, ...]:
        return tuple(KEYS[k] for k in self.missing)


def _has_next(bundle: Mapping[str, Any]) -> bool:
    links = bundle.get("link")
    return isinstance(links, list) and any(
        isinstance(link, dict) and link.get("relation") == "next" for link in links
    )


def read(prefetch: Any, patient_id: str, fhir_base: str) -> Prefetched:
    """Read the request's ``prefetch`` object; raises :class:`ForeignPrefetch`."""
    given = prefetch if isinstance(prefetch, dict) else {}
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    status: dict[str, str] = {}
    for key, rtype in KEYS.items():
        if key not in given:
            status[key] = "absent"
            continue
        value = given[key]
        if value is None:
            status[key] = "empty"
            continue
        if not isinstance(value, dict):
            status[key] = "invalid"
            continue
        kind = value.get("resourceType")
        if kind == "OperationOutcome":
            status[key] = "failed"
            continue
        if kind == "Bundle":
            if _has_next(value):
                status[key] = "paged"
                continue
            entries = value.get("entry") or []
            items = [e.get("resource") for e in entries if isinstance(e, dict)] if isinstance(
                entries, list) else None
            if items is None:
                status[key] = "invalid"
                continue
        elif kind == rtype:
            items = [value]
        else:
            status[key] = "invalid"
            continue
        for item in items:
            _keep(item, patient_id, fhir_base, resources)
        status[key] = "provided"
    return Prefetched(tuple(resources.values()), status)


def _keep(item: Any, patient_id: str, base: str,
          into: dict[tuple[str, str], dict[str, Any]]) -> None:
    if not isinstance(item, dict):
        return
    rtype, rid = item.get("resourceType"), item.get("id")
    if rtype not in READ_TYPES or not isinstance(rid, str) or not rid:
        return  # OperationOutcome entries, other types: not the engine's input
    if not in_compartment(item, patient_id, base):
        raise ForeignPrefetch(f"a prefetched {rtype} belongs to another patient")
    into[(rtype, rid)] = item
