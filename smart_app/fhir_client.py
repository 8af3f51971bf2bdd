"""Reads one patient's chart in a bounded number of round trips, whatever its size.

An embedded app that makes the clinician wait one round trip per infusion is unusable over a
hospital WAN, so the reads are shaped as *waves* of requests sent in parallel:

1. Patient read + one search per resource type (large ``_count``; medications ``_include``d);
2. the ``next`` page of every search that has one, plus one ``Medication?_id=`` search for
   references neither contained nor included;
3. ... further pages, up to ``max_pages`` per search (then it fails rather than under-count).

With ``_count`` honoured that is one wave for most charts and at most three for heavy ones.
Every request has a timeout; 429 (Retry-After) and 503 are retried a bounded number of times;
a 401 triggers one forced token refresh; a 403 on a search marks that type as withheld (F3).
Every resource returned must be in the launch patient's compartment, or the whole read fails:
mixing two charts must never produce a number. Logs carry resource types and counts only.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests

from .smart.scopes import GrantedScopes

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
MAX_RETRIES = 2
MAX_RETRY_AFTER = 5.0  # seconds; a longer Retry-After is an outage, not a hiccup
MEDICATION_IDS_PER_SEARCH = 100
PATIENT_TYPES = (
    "Observation",
    "MedicationAdministration",
    "MedicationStatement",
    "MedicationRequest",
)
_INCLUDES = {
    "MedicationAdministration": "MedicationAdministration:medication",
    "MedicationStatement": "MedicationStatement:medication",
    "MedicationRequest": "MedicationRequest:medication",
}

#: Returns a bearer token; called with the token the server rejected (401), else None, so
#: parallel requests that all got a 401 for the same token cause one refresh, not several.
TokenProvider = Callable[[str | None], str]


class FhirError(RuntimeError):
    """The chart could not be read; ``message`` is safe to show (no PHI, no token)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ForeignResource(FhirError):
    """The server returned a resource outside the launch patient's compartment."""


@dataclass(frozen=True)
class ChartData:
    resources: tuple[dict[str, Any], ...]
    round_trips: int  # waves of parallel requests
    requests: int  # HTTP requests, retries included
    withheld: tuple[str, ...] = ()  # types the app may not read (scope) or was refused (403)
    outcomes: tuple[str, ...] = ()  # OperationOutcome diagnostics returned inside searches


@dataclass
class _Job:
    label: str  # resource type of the search, for logs and the withheld list
    url: str
    page: int = 1


@dataclass
class _Result:
    job: _Job
    status: int
    body: dict[str, Any] | None
    requests: int


@dataclass
class _Collected:
    by_key: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    withheld: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    requested_medications: set[str] = field(default_factory=set)


def _retry_delay(resp: requests.Response, attempt: int) -> float | None:
    """Seconds to wait before retrying, or None when the response is not worth retrying."""
    if resp.status_code not in (429, 503):
        return None
    header = resp.headers.get("Retry-After")
    if header is None:
        return min(0.25 * float(1 << attempt), MAX_RETRY_AFTER)
    if header.strip().isdigit():
        delay = float(header.strip())
    else:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        delay = max(0.0, when.timestamp() - time.time())
    return float(delay) if delay <= MAX_RETRY_AFTER else None


def in_compartment(resource: Mapping[str, Any], patient_id: str, base: str) -> bool:
    """Patient compartment membership for the types the app reads (Medication has none)."""
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        return resource.get("id") == patient_id
    if rtype in PATIENT_TYPES:
        subject = resource.get("subject")
        ref = subject.get("reference") if isinstance(subject, dict) else None
        return ref in (f"Patient/{patient_id}", f"{base}/Patient/{patient_id}")
    return rtype == "Medication"


def _medication_refs(resource: Mapping[str, Any], base: str) -> Iterable[str]:
    ref = resource.get("medicationReference")
    target = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(target, str) or target.startswith("#"):
        return ()  # contained, or a CodeableConcept: nothing to fetch
    target = target.removeprefix(base + "/")
    parts = target.split("/")
    if len(parts) == 2 and parts[0] == "Medication" and parts[1]:
        return (parts[1],)
    return ()


class FhirClient:
    def __init__(
        self,
        http: requests.Session,
        base: str,
        token: TokenProvider,
        *,
        timeout: float,
        max_pages: int,
        page_size: int = PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._base = base.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._max_pages = max_pages
        self._page_size = page_size
        self._sleep = sleep

    # -- one request -------------------------------------------------------------------

    def _get(self, job: _Job) -> _Result:
        sent = 0
        token = self._token(None)
        forced = False
        attempt = 0
        while True:
            headers = {"Accept": "application/fhir+json", "Authorization": f"Bearer {token}"}
            try:
                resp = self._http.get(
                    job.url, headers=headers, timeout=self._timeout, allow_redirects=False
                )
            except requests.Timeout as exc:
                raise FhirError(f"the EHR did not answer in time ({job.label})") from exc
            except requests.RequestException as exc:
                raise FhirError(f"the EHR could not be reached ({job.label})") from exc
            sent += 1
            if resp.status_code == 401 and not forced:
                forced = True  # the token may have been revoked early: refresh once
                token = self._token(token)
                continue
            delay = _retry_delay(resp, attempt)
            if delay is not None and attempt < MAX_RETRIES:
                attempt += 1
                log.info("FHIR %s: %s, retrying in %.2fs", job.label, resp.status_code, delay)
                self._sleep(delay)
                continue
            body: dict[str, Any] | None = None
            if resp.status_code == 200:
                try:
                    parsed = resp.json()
                except ValueError as exc:
                    raise FhirError(f"the EHR sent a non-JSON response ({job.label})") from exc
                if not isinstance(parsed, dict):
                    raise FhirError(f"the EHR sent an unexpected response ({job.label})")
                body = parsed
            return _Result(job, resp.status_code, body, sent)

    # -- the chart ---------------------------------------------------------------------

    def _url(self, path: str, params: Sequence[tuple[str, str]] = ()) -> str:
        query = urlencode(list(params), safe=":|,")
        return f"{self._base}/{path}" + (f"?{query}" if query else "")

    def initial_jobs(
        self, patient_id: str, granted: GrantedScopes, observation_params: Sequence[tuple[str, str]]
    ) -> tuple[list[_Job], list[str]]:
        jobs: list[_Job] = []
        withheld: list[str] = []
        if granted.can_search("Patient"):
            jobs.append(_Job("Patient", self._url(f"Patient/{patient_id}")))
        else:
            withheld.append("Patient")
        for rtype in PATIENT_TYPES:
            if not granted.can_search(rtype):
                withheld.append(rtype)
                continue
            params: list[tuple[str, str]] = [("patient", patient_id)]
            if rtype == "Observation":
                params.extend(observation_params)
            if rtype in _INCLUDES:
                params.append(("_include", _INCLUDES[rtype]))
            params.append(("_count", str(self._page_size)))
            jobs.append(_Job(rtype, self._url(rtype, params)))
        return jobs, withheld

    def read_chart(
        self,
        patient_id: str,
        granted: GrantedScopes,
        observation_params: Sequence[tuple[str, str]] = (),
    ) -> ChartData:
        jobs, withheld = self.initial_jobs(patient_id, granted, observation_params)
        got = _Collected(withheld=withheld)
        waves = 0
        sent = 0
        with ThreadPoolExecutor(max_workers=6, thread_name_prefix="fhir") as pool:
            while jobs:
                waves += 1
                results = list(pool.map(self._get, jobs))
                sent += sum(r.requests for r in results)
                jobs = []
                for result in results:
                    follow = self._absorb(result, patient_id, got)
                    if follow is not None:
                        jobs.append(follow)
                jobs.extend(self._medication_jobs(got, granted))
        counts: dict[str, int] = {}
        for rtype, _ in got.by_key:
            counts[rtype] = counts.get(rtype, 0) + 1
        log.info("chart read: %s in %d round trips, %d requests", counts, waves, sent)
        return ChartData(
            resources=tuple(got.by_key.values()),
            round_trips=waves,
            requests=sent,
            withheld=tuple(dict.fromkeys(got.withheld)),
            outcomes=tuple(got.outcomes),
        )

    def _absorb(self, result: _Result, patient_id: str, got: _Collected) -> _Job | None:
        job = result.job
        if result.status == 403:
            got.withheld.append(job.label)  # F3: the user's rights may be narrower than scopes
            return None
        if result.status == 404 and job.label == "Patient":
            raise FhirError("the EHR does not know the launch patient", 404)
        if result.status == 401:
            raise FhirError("the EHR no longer accepts this session; relaunch the app", 401)
        if result.status != 200 or result.body is None:
            raise FhirError(f"the EHR answered {result.status} ({job.label})", result.status)
        body = result.body
        if job.label == "Patient":
            self._keep(body, patient_id, got)
            return None
        if body.get("resourceType") != "Bundle":
            raise FhirError(f"the EHR sent no Bundle for a search ({job.label})")
        for entry in body.get("entry", []) or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            if resource.get("resourceType") == "OperationOutcome":
                got.outcomes.extend(self._diagnostics(resource))
                continue
            self._keep(resource, patient_id, got)
        return self._next(body, job)

    def _keep(self, resource: dict[str, Any], patient_id: str, got: _Collected) -> None:
        rtype, rid = resource.get("resourceType"), resource.get("id")
        if not isinstance(rtype, str) or not isinstance(rid, str):
            return
        if rtype != "Medication" and rtype not in PATIENT_TYPES and rtype != "Patient":
            return  # something the engine does not read: ignore it, do not trust it
        if not in_compartment(resource, patient_id, self._base):
            log.warning("FHIR: a %s outside the launch patient's compartment", rtype)
            raise ForeignResource(
                "the EHR returned data of another patient; nothing is shown for safety"
            )
        got.by_key[(rtype, rid)] = resource

    def _next(self, bundle: Mapping[str, Any], job: _Job) -> _Job | None:
        for link in bundle.get("link", []) or []:
            if isinstance(link, dict) and link.get("relation") == "next":
                url = link.get("url")
                if not isinstance(url, str) or not url.startswith(self._base + "/"):
                    raise FhirError(f"the EHR sent a next link to another server ({job.label})")
                if job.page >= self._max_pages:
                    raise FhirError(
                        f"more than {self._max_pages} pages of {job.label}; the chart is too "
                        "large to read completely"
                    )
                return _Job(job.label, url, job.page + 1)
        return None

    def _medication_jobs(self, got: _Collected, granted: GrantedScopes) -> list[_Job]:
        wanted: set[str] = set()
        for (rtype, _), resource in got.by_key.items():
            if rtype in _INCLUDES:
                wanted.update(_medication_refs(resource, self._base))
        have = {rid for (rtype, rid) in got.by_key if rtype == "Medication"}
        missing = sorted(wanted - have - got.requested_medications)
        if not missing:
            return []
        got.requested_medications.update(missing)
        if not granted.can_search("Medication"):
            got.withheld.append("Medication")
            return []
        return [
            _Job(
                "Medication",
                self._url(
                    "Medication",
                    [
                        ("_id", ",".join(missing[i : i + MEDICATION_IDS_PER_SEARCH])),
                        ("_count", str(self._page_size)),
                    ],
                ),
            )
            for i in range(0, len(missing), MEDICATION_IDS_PER_SEARCH)
        ]

    @staticmethod
    def _diagnostics(outcome: Mapping[str, Any]) -> list[str]:
        texts = []
        for issue in outcome.get("issue", []) or []:
            if isinstance(issue, dict):
                text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
                if isinstance(text, str) and text:
                    texts.append(text[:300])
        return texts
