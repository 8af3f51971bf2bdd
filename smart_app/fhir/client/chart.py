"""Searches and paging: one patient's chart in a bounded number of round trips, any size.

An embedded app that makes the clinician wait one round trip per infusion is unusable over a
hospital WAN, so the reads are shaped as *waves* of requests sent in parallel:

1. Patient read + one search per resource type the EHR offers (large ``_count``; medications
   ``_include``d where the EHR lists it; Observations by code and by text, see ``plan``);
2. the ``next`` page of every search that has one, plus one ``Medication?_id=`` search for
   references neither contained nor included;
3. ... further pages, up to ``max_pages`` per search (then it fails rather than under-count).

With ``_count`` honoured that is one wave for most charts and at most three for heavy ones.
Every request has a timeout; 429 (Retry-After) and 503 are retried a bounded number of times;
a 401 triggers one forced token refresh; a 403 or 404 on a search marks that type as withheld
(not read: unknown to the engine, never "none on record"); a 400 is retried once with only the
search's required parameters (``plan.REQUIRED_PARAMS``).
Every resource returned must be in the launch patient's compartment, or the whole read fails:
mixing two charts must never produce a number. Logs carry resource types and counts only.

The first wave also fetches the app's own earlier RiskAssessments (history; its failure only
hides the history).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from ...http.bounded import deadline_in
from ...smart.context import is_fhir_id
from ...smart.scopes import GrantedScopes
from ..extract import unversioned
from .plan import REQUIRED_PARAMS, ReadPlan
from .transport import FhirError, FhirTransport, ForeignResource, _Job, _Result

log = logging.getLogger(__name__)

HISTORY = "RiskAssessment"
HISTORY_COUNT = 20
MEDICATION_IDS_PER_SEARCH = 100
MAX_RESOURCES = 20_000  # entries absorbed per chart read (duplicates included)
MAX_REQUESTS = 150  # HTTP requests per chart read, retries included
MAX_MEDICATION_IDS = 2_000  # distinct unresolved Medication references fetched per chart read
MAX_OUTCOMES_PER_PAGE = 20  # OperationOutcome entries tolerated on top of _count
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


@dataclass(frozen=True)
class ChartData:
    resources: tuple[dict[str, Any], ...]
    round_trips: int  # waves of parallel requests
    requests: int  # HTTP requests, retries included
    withheld: tuple[str, ...] = ()  # types the app may not read (scope) or was refused (403)
    #: Types the EHR does not offer (CapabilityStatement, tenant ``read_types``): not sources
    #: there, which is not the same as withheld (unknown).
    not_offered: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()  # OperationOutcome diagnostics returned inside searches
    #: This app's earlier RiskAssessments for the patient (newest first), read in the same wave.
    history: tuple[dict[str, Any], ...] = ()
    #: "ok" | "not-requested" | "not-granted" | "not-offered" | "unsupported" (4xx) |
    #: "failed" (5xx)
    history_status: str = "not-requested"


@dataclass
class _Collected:
    #: Every distinct copy of each resource: an EHR that sends one type/id twice with
    #: different content must not have one copy silently chosen (the engine weighs them).
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    withheld: list[str] = field(default_factory=list)
    not_offered: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    requested_medications: set[str] = field(default_factory=set)
    entries: int = 0  # entries absorbed so far (duplicates included), against MAX_RESOURCES
    history: list[dict[str, Any]] = field(default_factory=list)
    history_status: str = "not-requested"


def in_compartment(resource: Mapping[str, Any], patient_id: str, base: str) -> bool:
    """Patient compartment membership for the types the app reads (Medication has none)."""
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        return resource.get("id") == patient_id
    if rtype in PATIENT_TYPES or rtype == HISTORY:
        subject = resource.get("subject")
        ref = subject.get("reference") if isinstance(subject, dict) else None
        if not isinstance(ref, str):
            return False
        ref = unversioned(ref)  # Patient/p1/_history/2 is still Patient/p1
        return ref in (f"Patient/{patient_id}", f"{base}/Patient/{patient_id}")
    return rtype == "Medication"


def _medication_refs(resource: Mapping[str, Any], base: str) -> Iterable[str]:
    ref = resource.get("medicationReference")
    target = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(target, str) or target.startswith("#"):
        return ()  # contained, or a CodeableConcept: nothing to fetch
    target = unversioned(target.removeprefix(base + "/"))
    parts = target.split("/")
    if len(parts) == 2 and parts[0] == "Medication" and parts[1]:
        return (parts[1],)
    return ()



class ChartReads(FhirTransport):
    """The chart read: the first wave of searches, then pages and medications."""

    def initial_jobs(
        self,
        patient_id: str,
        granted: GrantedScopes,
        plan: ReadPlan,
        history_system: str | None = None,
    ) -> tuple[list[_Job], list[str], list[str]]:
        """The first wave, the types withheld by the grant, and the types not offered."""
        if not is_fhir_id(patient_id):  # "..": GET {base}/Patient/.. would read {base}/
            raise FhirError("the launch's patient id is not a FHIR id")
        jobs: list[_Job] = []
        withheld: list[str] = []
        not_offered: list[str] = []
        if granted.can_search("Patient"):
            jobs.append(_Job("Patient", self._url(f"Patient/{patient_id}")))
        else:
            withheld.append("Patient")
        for rtype in PATIENT_TYPES:
            if not plan.offered(rtype):
                not_offered.append(rtype)  # not a source on this EHR: nothing to ask for
                continue
            if not granted.can_search(rtype):
                withheld.append(rtype)
                continue
            include = rtype in _INCLUDES and plan.include(rtype, _INCLUDES[rtype])
            searches = plan.observation_searches if rtype == "Observation" else ((),)
            for extra in searches:
                params: list[tuple[str, str]] = [("patient", patient_id), *extra]
                if include:
                    params.append(("_include", _INCLUDES[rtype]))
                params.append(("_count", str(self._page_size)))
                jobs.append(self._search_job(rtype, params, self._page_size, include))
        if history_system and granted.can_search(HISTORY) and plan.offered(HISTORY):
            # In the same wave as the chart: the history costs no extra round trip.
            params = [("patient", patient_id), ("identifier", f"{history_system}|"),
                      ("_sort", "-date"), ("_count", str(HISTORY_COUNT))]
            jobs.append(self._search_job(HISTORY, params, HISTORY_COUNT, False))
        return jobs, withheld, not_offered

    def _search_job(self, rtype: str, params: Sequence[tuple[str, str]], count: int,
                    include: bool) -> _Job:
        """A first-page search and, when it has optional parameters, its 400-retry URL."""
        required = [(k, v) for k, v in params if k in REQUIRED_PARAMS]
        fallback = self._url(rtype, required) if len(required) < len(params) else None
        return _Job(rtype, self._url(rtype, params), count=count, include=include,
                    fallback=fallback)

    def read_chart(
        self,
        patient_id: str,
        granted: GrantedScopes,
        plan: ReadPlan | None = None,
        history_system: str | None = None,
    ) -> ChartData:
        """The chart, plus (``history_system`` given) the app's earlier RiskAssessments."""
        plan = plan or ReadPlan()
        jobs, withheld, not_offered = self.initial_jobs(patient_id, granted, plan,
                                                        history_system)
        got = _Collected(withheld=withheld, not_offered=not_offered)
        if history_system:
            got.history_status = (
                "not-offered" if not plan.offered(HISTORY)
                else "ok" if granted.can_search(HISTORY) else "not-granted")
        waves = 0
        sent = 0
        deadline = deadline_in(self._budget)
        with ThreadPoolExecutor(max_workers=6, thread_name_prefix="fhir") as pool:
            while jobs:
                if sent + len(jobs) > MAX_REQUESTS:
                    raise FhirError(f"reading the chart would take more than {MAX_REQUESTS} "
                                    "requests; the chart is too large to read completely")
                if time.monotonic() >= deadline:
                    raise FhirError(f"the chart could not be read within {self._budget:g} "
                                    "seconds")
                waves += 1
                results = list(pool.map(lambda job: self._get(job, deadline), jobs))
                sent += sum(r.requests for r in results)
                jobs = []
                for result in results:
                    follow = self._absorb(result, patient_id, got)
                    if follow is not None:
                        jobs.append(follow)
                jobs.extend(self._medication_jobs(got, granted, plan))
        counts: dict[str, int] = {}
        for rtype, _ in got.by_key:
            counts[rtype] = counts.get(rtype, 0) + 1
        log.info("chart read: %s in %d round trips, %d requests", counts, waves, sent)
        return ChartData(
            resources=tuple(r for copies in got.by_key.values() for r in copies),
            round_trips=waves,
            requests=sent,
            withheld=tuple(dict.fromkeys(got.withheld)),
            not_offered=tuple(dict.fromkeys(got.not_offered)),
            outcomes=tuple(got.outcomes),
            history=tuple(got.history),
            history_status=got.history_status,
        )

    def _absorb(self, result: _Result, patient_id: str, got: _Collected) -> _Job | None:
        job = result.job
        if job.label == HISTORY:
            self._absorb_history(result, patient_id, got)
            return None
        if result.status == 403 or (result.status == 404 and job.label != "Patient"):
            # F3: the user's rights may be narrower than the scopes, and a server may not
            # search a type at all: either way that type is not read (unknown, not empty).
            got.withheld.append(job.label)
            return None
        if result.status == 404 and job.label == "Patient":
            raise FhirError("the EHR does not know the launch patient", 404)
        if result.status == 401:
            raise FhirError("the EHR no longer accepts this session; relaunch the app", 401)
        if result.status == 400 and job.fallback is not None:
            # An unknown or unsupported parameter: once more with only what the search needs.
            log.info("FHIR %s: 400, retrying with the required parameters only", job.label)
            return _Job(job.label, job.fallback)
        if result.status != 200 or result.body is None:
            raise FhirError(f"the EHR answered {result.status} ({job.label})", result.status)
        body = result.body
        if job.label == "Patient":
            if body.get("resourceType") != "Patient":  # e.g. a Bundle for ``GET {base}/``
                raise FhirError("the EHR answered the read of the launch patient with another "
                                "kind of resource")
            self._keep(body, patient_id, got)
            return None
        if body.get("resourceType") != "Bundle":
            raise FhirError(f"the EHR sent no Bundle for a search ({job.label})")
        entries = body.get("entry", []) or []
        self._check_page_size(entries, job)
        got.entries += len(entries) if isinstance(entries, list) else 0
        if got.entries > MAX_RESOURCES:
            raise FhirError(f"more than {MAX_RESOURCES} resources in the chart; it is too large "
                            "to read completely")
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            if resource.get("resourceType") == "OperationOutcome":
                got.outcomes.extend(self._diagnostics(resource))
                continue
            self._keep(resource, patient_id, got)
        return self._next(body, job)

    def _absorb_history(self, result: _Result, patient_id: str, got: _Collected) -> None:
        """The history is a nicety: an EHR without RiskAssessment must not block the estimate."""
        if result.status == 401:
            raise FhirError("the EHR no longer accepts this session; relaunch the app", 401)
        if result.status == 400 and result.job.fallback is not None:
            got.history_status = "unsupported"  # no retry: the history is a nicety
            return
        if result.status != 200 or result.body is None:
            got.history_status = "failed" if result.status >= 500 else "unsupported"
            log.info("FHIR RiskAssessment history: %s", result.status)
            return
        entries = result.body.get("entry", []) or []
        try:
            self._check_page_size(entries, result.job)
        except FhirError:
            got.history_status = "failed"  # an oversized history page only hides the history
            log.warning("FHIR RiskAssessment history: more entries than _count")
            return
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or resource.get("resourceType") != HISTORY:
                continue
            if not in_compartment(resource, patient_id, self._base):
                log.warning("FHIR: a RiskAssessment outside the launch patient's compartment")
                raise ForeignResource(
                    "the EHR returned data of another patient; nothing is shown for safety"
                )
            got.history.append(resource)

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
        copies = got.by_key.setdefault((rtype, rid), [])
        if resource not in copies:
            copies.append(resource)

    @staticmethod
    def _check_page_size(entries: Any, job: _Job) -> None:
        """A page may hold at most ``_count`` matches (plus as many includes, when asked for)."""
        if not isinstance(entries, list):
            raise FhirError(f"the EHR sent a malformed Bundle ({job.label})")
        if job.count is None:
            return
        matches = includes = outcomes = 0
        for entry in entries:
            entry = entry if isinstance(entry, dict) else {}
            search = entry.get("search")
            mode = search.get("mode") if isinstance(search, dict) else None
            resource = entry.get("resource")
            rtype = resource.get("resourceType") if isinstance(resource, dict) else None
            if mode is None:  # some servers leave it out: infer it from the type
                mode = ("outcome" if rtype == "OperationOutcome"
                        else "match" if rtype == job.label else "include")
            if mode == "include":
                includes += 1
            elif mode == "outcome":
                outcomes += 1
            else:
                matches += 1
        if (matches > job.count or includes > (job.count if job.include else 0)
                or outcomes > MAX_OUTCOMES_PER_PAGE):
            raise FhirError(
                f"the EHR sent a page of {len(entries)} entries when {job.count} were asked "
                f"for ({job.label})"
            )

    def _same_base(self, url: str) -> bool:
        """``url`` is on this FHIR base: same scheme, host and port, path below the base path.

        Compared component by component after parsing; dot segments (also percent-encoded),
        encoded slashes, backslashes and user info are refused outright, since the HTTP stack
        or the server would resolve them to a path outside the base.
        """
        if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
            return False  # whitespace / control characters: parsers disagree on them
        try:
            got, base = urlsplit(url), urlsplit(self._base)
            got_port, base_port = got.port, base.port
        except ValueError:
            return False
        default = {"http": 80, "https": 443}
        scheme = got.scheme.lower()
        if scheme not in default or scheme != base.scheme.lower():
            return False
        if got.username is not None or got.password is not None or "\\" in url.split("?")[0]:
            return False
        if (got.hostname or "").lower() != (base.hostname or "").lower() or not got.hostname:
            return False
        if (got_port or default[scheme]) != (base_port or default[base.scheme.lower()]):
            return False
        segments = got.path.split("/")
        for segment in segments:
            decoded = segment
            for _ in range(3):  # %252e%252e and the like
                decoded = unquote(decoded)
            if decoded in (".", "..") or "/" in decoded or "\\" in decoded:
                return False
        prefix = base.path.rstrip("/").split("/")
        return segments[: len(prefix)] == prefix  # the base itself (HAPI: base?_getpages=)

    def _next(self, bundle: Mapping[str, Any], job: _Job) -> _Job | None:
        for link in bundle.get("link", []) or []:
            if isinstance(link, dict) and link.get("relation") == "next":
                url = link.get("url")
                if not isinstance(url, str) or not self._same_base(url):
                    raise FhirError(f"the EHR sent a next link to another server ({job.label})")
                if job.page >= self._max_pages:
                    raise FhirError(
                        f"more than {self._max_pages} pages of {job.label}; the chart is too "
                        "large to read completely"
                    )
                return _Job(job.label, url, job.page + 1, job.count, job.include)
        return None

    def _medication_jobs(self, got: _Collected, granted: GrantedScopes,
                         plan: ReadPlan) -> list[_Job]:
        wanted: set[str] = set()
        for (rtype, _), copies in got.by_key.items():
            if rtype in _INCLUDES:
                for resource in copies:
                    wanted.update(_medication_refs(resource, self._base))
        have = {rid for (rtype, rid) in got.by_key if rtype == "Medication"}
        missing = sorted(wanted - have - got.requested_medications)
        if not missing:
            return []
        if len(got.requested_medications) + len(missing) > MAX_MEDICATION_IDS:
            raise FhirError(f"more than {MAX_MEDICATION_IDS} medications to look up; the chart "
                            "is too large to read completely")
        got.requested_medications.update(missing)
        if not plan.offered("Medication"):
            got.not_offered.append("Medication")  # e.g. Oracle: no standalone Medication
            return []
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
                count=self._page_size,
            )
            for i in range(0, len(missing), MEDICATION_IDS_PER_SEARCH)
        ]
