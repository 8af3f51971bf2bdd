"""Per-patient searches for what the export cannot deliver (e.g. MedicationAdministration on
servers whose Bulk export omits it), under the same backend token, a few patients at a time.

A patient whose search fails is not assessed from the rest of the chart: natalizumab infusions
that could not be read would make a lower band look certain. The run names them instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..fhir.extract import subject_patient
from .export import BulkClient, origin, outcome_codes, retry_after

PAGE_SIZE = 1000
MAX_PAGES = 20
MAX_RETRIES = 2


@dataclass(frozen=True)
class PatientSearch:
    patient_id: str
    kind: str  # the resource type searched
    resources: tuple[dict[str, Any], ...]
    error: str | None  # why the chart part could not be read (safe to show)
    requests: int


def _search(client: BulkClient, kind: str, patient_id: str,
            extra: Sequence[tuple[str, str]] = ()) -> PatientSearch:
    include = f"{kind}:medication" if kind.startswith("Medication") and kind != "Medication" \
        else None
    params = [("_id" if kind == "Patient" else "patient", patient_id), *extra,
              ("_count", str(PAGE_SIZE))]
    if include:
        params.append(("_include", include))
    url: str | None = f"{client.base}/{kind}?{urlencode(params)}"
    found: list[dict[str, Any]] = []
    sent = 0
    pages = 0
    retries = 0
    while url is not None:
        resp = client.send("GET", url)
        sent += 1
        if resp.status_code in (429, 503) and retries < MAX_RETRIES:
            retries += 1
            client.sleep(min(retry_after(resp) or 1.0, 10.0))
            continue
        if resp.status_code != 200:
            codes, _ = outcome_codes(resp)
            return PatientSearch(patient_id, kind, (), f"{kind} could not be read (HTTP "
                                 f"{resp.status_code}{', ' + codes[0] if codes else ''})", sent)
        try:
            bundle = resp.json()
        except ValueError:
            return PatientSearch(patient_id, kind, (), f"{kind} could not be read (not JSON)", sent)
        for entry in bundle.get("entry") or [] if isinstance(bundle, dict) else []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            kind_found = resource.get("resourceType")
            if kind_found == kind and subject_patient(resource) != patient_id:
                return PatientSearch(patient_id, kind, (), f"{kind}: the EHR answered with another "
                                     "patient's data", sent)
            if kind_found in (kind, "Medication"):
                found.append(resource)
        pages += 1
        url = _next(bundle, client.base)
        if url is not None and pages >= MAX_PAGES:
            return PatientSearch(patient_id, kind, (), f"{kind}: more than {MAX_PAGES} pages", sent)
    return PatientSearch(patient_id, kind, tuple(found), None, sent)


def _next(bundle: Any, base: str) -> str | None:
    """The ``next`` link, only when it stays on the FHIR server (the token goes with it)."""
    for link in bundle.get("link") or [] if isinstance(bundle, dict) else []:
        if isinstance(link, dict) and link.get("relation") == "next" and \
                isinstance(link.get("url"), str):
            return link["url"] if origin(link["url"]) == origin(base) else None
    return None


def search_patients(client: BulkClient, kinds: Sequence[str], patient_ids: Sequence[str],
                    concurrency: int,
                    extra: Mapping[str, Sequence[tuple[str, str]]] | None = None,
                    ) -> Iterator[PatientSearch]:
    """Every (type, patient) search, ``concurrency`` at a time, yielded as they finish in
    submission order (so the caller writes them from one thread). ``extra`` adds search
    parameters per type (the Observation narrowing the export used)."""
    jobs = [(kind, pid) for pid in patient_ids for kind in kinds]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="worklist-search") as pool:
        window = concurrency * 4  # bounded: never every patient's results in memory at once
        pending = []
        for kind, pid in jobs:
            pending.append(pool.submit(_search, client, kind, pid, (extra or {}).get(kind, ())))
            if len(pending) >= window:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()
