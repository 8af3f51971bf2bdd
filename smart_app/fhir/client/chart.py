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

The first wave also fetches the app's own earlier results, RiskAssessments and clinical notes
(history; its failure only hides the history).

The read is kept as the visit's snapshot (``ChartData``, JSON via ``to_json``/``from_json``);
``changed_since`` is the cheap check before a save: one parallel round of
``_lastUpdated=ge<read time>`` searches, compared with the snapshot.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from ...http.bounded import deadline_in
from ...smart.context import is_fhir_id
from ...smart.scopes import GrantedScopes
from ..extract import unversioned
from ..note import marker_identifier
from ..riskassessment import IDENTIFIER_SYSTEM
from .plan import REQUIRED_PARAMS, ReadPlan
from .transport import FhirError, FhirTransport, ForeignResource, _Job, _Result

log = logging.getLogger(__name__)

HISTORY = "RiskAssessment"
NOTE_HISTORY = "DocumentReference"  # the app's results written as clinical notes
HISTORY_TYPES = (HISTORY, NOTE_HISTORY)
HISTORY_COUNT = 20
#: How far before the server's clock at the read the freshness check looks back. Changes in
#: that margin that the snapshot already holds are recognised and ignored, so a wide margin
#: costs a few entries, never a false "changed".
FRESHNESS_MARGIN = timedelta(minutes=2)
#: The same without the server's clock (no Date header): the app's clock may differ more.
FRESHNESS_MARGIN_NO_DATE = timedelta(hours=1)
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
    # Brain MRIs, for the monitoring due date (searched by code in the same wave).
    "DiagnosticReport",
    "ImagingStudy",
    "Procedure",
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
    #: This app's earlier results for the patient (RiskAssessments and notes), read in the
    #: same wave.
    history: tuple[dict[str, Any], ...] = ()
    #: "ok" | "not-requested" | "not-granted" | "not-offered" | "unsupported" (4xx) |
    #: "failed" (5xx)
    history_status: str = "not-requested"
    #: ``_lastUpdated`` lower bound for the freshness check (FHIR instant), from the server's
    #: clock at the read when it sent one.
    since: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The snapshot as JSON, for the (encrypted) session store (shallow: the resources
        are serialised as they are, not deep-copied)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChartData:
        return cls(
            resources=tuple(data["resources"]),
            round_trips=int(data["round_trips"]),
            requests=int(data["requests"]),
            withheld=tuple(data.get("withheld", ())),
            not_offered=tuple(data.get("not_offered", ())),
            outcomes=tuple(data.get("outcomes", ())),
            history=tuple(data.get("history", ())),
            history_status=str(data.get("history_status", "not-requested")),
            since=data.get("since"),
        )

    def with_history(self, history: Sequence[dict[str, Any]]) -> ChartData:
        """The same snapshot with the app's results as the EHR now lists them (after a save)."""
        return replace(self, history=tuple(history), history_status="ok")


@dataclass(frozen=True)
class Freshness:
    """The answer of the check before a save: did the chart change since the snapshot?"""

    changed: bool
    requests: int
    round_trips: int
    #: Why, in words safe to log (types and counts, no PHI).
    reason: str = ""
    #: The results of the extra searches sent in the same round (``lookups``), by label.
    found: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    #: The HTTP status of each lookup (200, or why its result is not usable).
    lookup_status: Mapping[str, int] = field(default_factory=dict)
    #: The new or changed resources (when ``changed``), to see whether they change the result.
    updates: tuple[dict[str, Any], ...] = ()
    #: More changes than one page: what they are is not known, only that there are some.
    overflow: bool = False
    #: The whole chart as read again, when the server could not filter (replaces the snapshot).
    reread: tuple[dict[str, Any], ...] | None = None

    def merged(self, resources: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
        """The snapshot's resources with the changes applied (deletions are not seen)."""
        if self.reread is not None:
            return self.reread
        by_key = {(r.get("resourceType"), r.get("id")): r for r in resources}
        for resource in self.updates:
            by_key[(resource.get("resourceType"), resource.get("id"))] = resource
        return tuple(by_key.values())


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
    history_status: dict[str, str] = field(default_factory=dict)
    dates: list[str] = field(default_factory=list)  # Date headers of the first wave


def in_compartment(resource: Mapping[str, Any], patient_id: str, base: str) -> bool:
    """Patient compartment membership for the types the app reads (Medication has none)."""
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        return resource.get("id") == patient_id
    if rtype in PATIENT_TYPES or rtype in HISTORY_TYPES:
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
        note_type: str | None = None,
    ) -> tuple[list[_Job], list[str], list[str]]:
        """The first wave, the types withheld by the grant, and the types not offered.

        ``note_type`` ("system|code"): the EHR keeps no identifier on notes, so the app's notes
        are searched by their type (and kept only when their text names a result)."""
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
            searches = plan.searches(rtype)
            for extra in searches:
                params: list[tuple[str, str]] = [("patient", patient_id), *extra]
                if include:
                    params.append(("_include", _INCLUDES[rtype]))
                params.append(("_count", str(self._page_size)))
                jobs.append(self._search_job(rtype, params, self._page_size, include))
        for rtype in HISTORY_TYPES if history_system else ():
            if not (granted.can_search(rtype) and plan.offered(rtype)):
                continue
            # In the same wave as the chart: the history costs no extra round trip.
            params = [("patient", patient_id), ("identifier", f"{history_system}|"),
                      ("_sort", "-date"), ("_count", str(HISTORY_COUNT))]
            if rtype == NOTE_HISTORY and note_type:
                params = [("patient", patient_id), ("type", note_type),
                          ("_count", str(HISTORY_COUNT))]
            jobs.append(self._search_job(rtype, params, HISTORY_COUNT, False))
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
        note_type: str | None = None,
    ) -> ChartData:
        """The chart, plus (``history_system`` given) the app's earlier results."""
        started = datetime.now(UTC)
        plan = plan or ReadPlan()
        jobs, withheld, not_offered = self.initial_jobs(patient_id, granted, plan,
                                                        history_system, note_type)
        got = _Collected(withheld=withheld, not_offered=not_offered)
        for rtype in HISTORY_TYPES if history_system else ():
            got.history_status[rtype] = (
                "not-offered" if not plan.offered(rtype)
                else "ok" if granted.can_search(rtype) else "not-granted")
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
                if waves == 1:
                    got.dates = [r.date for r in results if r.date]
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
            history_status=_history_status(got.history_status),
            since=_since(got.dates, started),
        )

    def _absorb(self, result: _Result, patient_id: str, got: _Collected) -> _Job | None:
        job = result.job
        if job.label in HISTORY_TYPES:
            self._absorb_history(result, patient_id, got)
            return None
        if result.status == 403 or (result.status == 404 and job.label != "Patient"):
            # The user's rights may be narrower than the scopes, and a server may not
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
        rtype = result.job.label
        if result.status == 400 and result.job.fallback is not None:
            got.history_status[rtype] = "unsupported"  # no retry: the history is a nicety
            return
        if result.status != 200 or result.body is None:
            got.history_status[rtype] = "failed" if result.status >= 500 else "unsupported"
            log.info("FHIR %s history: %s", rtype, result.status)
            return
        entries = result.body.get("entry", []) or []
        try:
            self._check_page_size(entries, result.job)
        except FhirError:
            got.history_status[rtype] = "failed"  # an oversized page only hides the history
            log.warning("FHIR %s history: more entries than _count", rtype)
            return
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or resource.get("resourceType") != rtype:
                continue
            if not in_compartment(resource, patient_id, self._base):
                log.warning("FHIR: a %s outside the launch patient's compartment", rtype)
                raise ForeignResource(
                    "the EHR returned data of another patient; nothing is shown for safety"
                )
            if rtype == NOTE_HISTORY and not _app_note(resource):
                continue  # another note of the same type (searched by type): not kept
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

    def changed_since(
        self,
        patient_id: str,
        granted: GrantedScopes,
        snapshot: ChartData,
        plan: ReadPlan | None = None,
        lookups: Sequence[tuple[str, str, Sequence[tuple[str, str]]]] = (),
    ) -> Freshness:
        """Did any input of the snapshot change? One parallel round, before a save.

        Each searched type is asked for what changed since the snapshot
        (``_lastUpdated=ge<since>``); an entry the snapshot already holds unchanged is not a
        change (the look-back margin covers clock differences). ``lookups`` ("label", type,
        params) are extra searches sent in the same round, e.g. the identifier search of a
        search-then-create. A server that cannot filter by ``_lastUpdated`` (400) costs one
        full re-read instead. Deletions are not seen (a search does not list them).
        """
        plan = plan or ReadPlan()
        if snapshot.since is None:
            return self._compare_reread(patient_id, granted, snapshot, plan, lookups,
                                        "no read time")
        known = _fingerprints(snapshot.resources)
        jobs: list[_Job] = []
        for rtype in PATIENT_TYPES:
            if (rtype in snapshot.withheld or not plan.offered(rtype)
                    or not granted.can_search(rtype)):
                continue
            searches = plan.searches(rtype)
            for extra in searches:  # the same searches as the read, narrowed to changes
                params: list[tuple[str, str]] = [("patient", patient_id), *extra,
                                                 ("_lastUpdated", f"ge{snapshot.since}"),
                                                 ("_count", str(self._page_size))]
                jobs.append(_Job(rtype, self._url(rtype, params), count=self._page_size))
        checks = len(jobs)
        jobs += [_Job(rtype, self._url(rtype, list(params)), count=HISTORY_COUNT)
                 for _, rtype, params in lookups]
        deadline = deadline_in(self._budget)
        with ThreadPoolExecutor(max_workers=6, thread_name_prefix="fhir") as pool:
            results = list(pool.map(lambda job: self._get(job, deadline), jobs))
        sent = sum(r.requests for r in results)
        found, statuses = self._lookups(results[checks:], lookups, patient_id)
        reasons: list[str] = []
        updates: list[dict[str, Any]] = []
        overflow = False
        reread = False
        for result in results[:checks]:
            rtype = result.job.label
            if result.status == 401:
                raise FhirError("the EHR no longer accepts this session; relaunch the app", 401)
            if result.status == 400:
                reread = True  # no _lastUpdated here: compare a full read instead
                continue
            if result.status == 403:
                reasons.append(f"{rtype} no longer readable")
                continue
            if result.status != 200 or result.body is None:
                raise FhirError(f"the EHR answered {result.status} ({rtype}) when the app "
                                "checked the chart for changes", result.status)
            newer, more = self._changed_entries(result, patient_id, known)
            if newer or more:
                reasons.append(f"{rtype}: {len(newer)}{'+' if more else ''} new or changed")
                updates += newer
                overflow = overflow or more
        if reread and not reasons:
            again = self._compare_reread(patient_id, granted, snapshot, plan, (),
                                         "no _lastUpdated search")
            return Freshness(again.changed, sent + again.requests, 1 + again.round_trips,
                             again.reason, found, statuses, reread=again.reread)
        return Freshness(bool(reasons), sent, 1, "; ".join(reasons), found, statuses,
                         tuple(updates), overflow or bool(reasons and reread))

    def _changed_entries(self, result: _Result, patient_id: str,
                         known: Mapping[tuple[str, str], str]
                         ) -> tuple[list[dict[str, Any]], bool]:
        """The entries of a freshness page not in the snapshot as they are now, and whether
        there are more pages of them."""
        assert result.body is not None
        rtype = result.job.label
        if result.body.get("resourceType") != "Bundle":
            raise FhirError(f"the EHR sent no Bundle for a search ({rtype})")
        entries = result.body.get("entry", []) or []
        self._check_page_size(entries, result.job)
        changed: list[dict[str, Any]] = []
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or resource.get("resourceType") != rtype:
                continue
            if not in_compartment(resource, patient_id, self._base):
                raise ForeignResource(
                    "the EHR returned data of another patient; nothing is shown for safety")
            key = (rtype, str(resource.get("id")))
            if known.get(key) != _fingerprint(resource):
                changed.append(resource)
        more = any(isinstance(link, dict) and link.get("relation") == "next"
                   for link in result.body.get("link", []) or [])
        return changed, more

    def _lookups(self, results: Sequence[_Result],
                 lookups: Sequence[tuple[str, str, Sequence[tuple[str, str]]]],
                 patient_id: str,
                 ) -> tuple[dict[str, tuple[dict[str, Any], ...]], dict[str, int]]:
        found: dict[str, tuple[dict[str, Any], ...]] = {}
        statuses: dict[str, int] = {}
        for result, (label, rtype, _) in zip(results, lookups, strict=True):
            statuses[label] = result.status
            if result.status != 200 or result.body is None:
                continue
            hits = []
            for entry in result.body.get("entry", []) or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and resource.get("resourceType") == rtype:
                    if not in_compartment(resource, patient_id, self._base):
                        raise ForeignResource("the EHR returned data of another patient; "
                                              "nothing is shown for safety")
                    hits.append(resource)
            found[label] = tuple(hits)
        return found, statuses

    def _compare_reread(
        self,
        patient_id: str,
        granted: GrantedScopes,
        snapshot: ChartData,
        plan: ReadPlan,
        lookups: Sequence[tuple[str, str, Sequence[tuple[str, str]]]],
        why: str,
    ) -> Freshness:
        """The fallback: read the chart again and compare it with the snapshot."""
        log.info("freshness check by a full re-read (%s)", why)
        again = self.read_chart(patient_id, granted, plan)
        before = {k: v for k, v in _fingerprints(snapshot.resources).items()
                  if k[0] in PATIENT_TYPES}
        after = {k: v for k, v in _fingerprints(again.resources).items()
                 if k[0] in PATIENT_TYPES}
        found: dict[str, tuple[dict[str, Any], ...]] = {}
        statuses: dict[str, int] = {}
        requests = again.requests
        for label, rtype, params in lookups:
            try:
                found[label] = tuple(self._search_page(rtype, params, patient_id))
                statuses[label] = 200
            except FhirError as exc:
                statuses[label] = exc.status or 0
            requests += 1
        changed = before != after
        return Freshness(changed, requests, again.round_trips + (1 if lookups else 0),
                         "the chart differs from the snapshot" if changed else "", found,
                         statuses, reread=again.resources)

    def _search_page(self, rtype: str, params: Sequence[tuple[str, str]],
                     patient_id: str) -> list[dict[str, Any]]:
        result = self._get(_Job(rtype, self._url(rtype, list(params))))
        if result.status != 200 or result.body is None:
            raise FhirError(f"the EHR answered {result.status} ({rtype})", result.status)
        found, _ = self._lookups([result], [("x", rtype, params)], patient_id)
        return list(found.get("x", ()))


def _fingerprint(resource: Mapping[str, Any]) -> str:
    """The content of a resource without ``meta`` (a server may touch it without a change)."""
    return json.dumps({k: v for k, v in resource.items() if k != "meta"}, sort_keys=True,
                      separators=(",", ":"))


def _fingerprints(resources: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    return {(str(r.get("resourceType")), str(r.get("id"))): _fingerprint(r) for r in resources}


def _app_note(resource: Mapping[str, Any]) -> bool:
    """A note the app wrote: its identifier system, or its text naming a result."""
    return marker_identifier(resource) is not None or any(
        isinstance(i, dict) and i.get("system") == IDENTIFIER_SYSTEM
        for i in resource.get("identifier", []) or [])


def _history_status(statuses: Mapping[str, str]) -> str:
    """One status for the history list: "ok" when either kind of result could be listed."""
    if not statuses:
        return "not-requested"
    if "ok" in statuses.values():
        return "ok"
    return statuses.get(HISTORY) or next(iter(statuses.values()))


def _since(dates: Sequence[str], started: datetime) -> str:
    """The freshness check's lower bound: the server's clock at the read, less a margin."""
    parsed = []
    for value in dates:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        if moment.tzinfo is not None:
            parsed.append(moment)
    bound = min(parsed) - FRESHNESS_MARGIN if parsed else started - FRESHNESS_MARGIN_NO_DATE
    return bound.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
