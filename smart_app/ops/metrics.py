"""Operational metrics in the Prometheus text format (``GET /metrics``).

Operations teams watch an app like this one through Prometheus/Grafana or an agent that scrapes
the same format. The figures are derived from what the app already says: the audit trail's
events (launches, assessments, write-backs, CDS calls and refusals) are counted as they are
written, the shared HTTP session times every EHR request, and the session store is timed where
it is opened. No label ever carries a patient, launch, user or request id, or anything taken
verbatim from a request: every label value is one of a fixed set (unknown values read
``other``), so the series stay few and free of PHI.

Under gunicorn every worker is a process of its own: ``pml-risk serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a private folder before the workers start, each worker writes
its samples there, and a scrape sums them over all workers (prometheus_client's multi-process
mode). Without that variable (tests, the demo) the samples live in the process.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess
from prometheus_client import values as _values

EXTENSION = "pml_risk.metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: FHIR resource types (and endpoints) the app talks to; any other path segment is "other".
RESOURCE_TYPES = frozenset({
    "Patient", "Observation", "MedicationAdministration", "MedicationStatement",
    "MedicationRequest", "Medication", "RiskAssessment", "DocumentReference", "Practitioner",
    "PractitionerRole", "Encounter", "Group", "DiagnosticReport", "ImagingStudy", "Procedure",
    "metadata", "smart-configuration", "token", "$export", "jwks", "introspect", "revoke",
})
#: Services of smart_app.cds; a call to any other path is counted as "other".
CDS_SERVICES = frozenset({"pml-risk-patient-view", "pml-risk-order"})
_CODE = re.compile(r"[a-z][a-z0-9_.-]{0,39}")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

T = TypeVar("T")


def _code(value: Any, allowed: Iterable[str] | None = None) -> str:
    """A label value from a short code (audit error codes are such codes), else ``other``.

    Codes are lower-case words; anything longer, with digits first, spaces or capitals, or
    outside ``allowed`` when given, is not a code and cannot go into a label.
    """
    text = str(value or "").split(":", 1)[0].strip().lower()
    if not text or not _CODE.fullmatch(text):
        return "other"
    if allowed is not None and text not in allowed:
        return "other"
    return text


def resource_of(url: str) -> str:
    """The FHIR resource type (or endpoint) a URL addresses, never an id from it."""
    segments = [s for s in urlsplit(url).path.split("/") if s]
    for segment in reversed(segments):
        if segment in RESOURCE_TYPES:
            return segment
        if segment.endswith("jwks.json"):
            return "jwks"
    return "other"


def status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status and 100 <= status < 600 else "error"


class Metrics:
    """The app's metric families; one instance per app (never a module-level registry)."""

    def __init__(self, multiprocess: bool | None = None) -> None:
        self.multiprocess = (bool(os.environ.get(MULTIPROC_ENV)) if multiprocess is None
                             else multiprocess)
        # In multi-process mode samples go to the shared folder, and a scrape reads them all
        # through a fresh collector; registering the families too would count them twice.
        self._registry = CollectorRegistry()
        # prometheus_client picks how samples are stored once, when first imported, from the
        # environment; a process that imported it before (or after) the variable was set would
        # keep the wrong kind. The choice is made here, for the families made just below.
        _values.ValueClass = (_values.MultiProcessValue()  # type: ignore[no-untyped-call]
                              if self.multiprocess else _values.MutexValue)
        reg = None if self.multiprocess else self._registry
        self.launches = Counter("pml_risk_launches", "SMART launches by outcome",
                                ["outcome"], registry=reg)
        self.ehr_requests = Counter("pml_risk_ehr_requests", "Requests to EHR servers",
                                    ["resource", "status_class"], registry=reg)
        self.ehr_latency = Histogram("pml_risk_ehr_request_seconds",
                                     "EHR request latency, headers received",
                                     ["resource"], buckets=LATENCY_BUCKETS, registry=reg)
        self.assessments = Counter("pml_risk_assessments", "Assessments by status",
                                   ["status"], registry=reg)
        self.writebacks = Counter("pml_risk_writebacks", "Write-backs by rung and outcome",
                                  ["rung", "outcome"], registry=reg)
        self.cds_calls = Counter("pml_risk_cds_calls", "CDS Hooks calls by service and outcome",
                                 ["service", "outcome"], registry=reg)
        self.cds_latency = Histogram("pml_risk_cds_call_seconds", "CDS Hooks call latency",
                                     ["service"], buckets=LATENCY_BUCKETS, registry=reg)
        self.jwt_refusals = Counter("pml_risk_cds_jwt_refusals",
                                    "CDS client JWTs refused, by reason", ["reason"],
                                    registry=reg)
        self.store_latency = Histogram("pml_risk_session_store_seconds",
                                       "Session store operation latency", ["operation"],
                                       buckets=LATENCY_BUCKETS, registry=reg)
        self.store_errors = Counter("pml_risk_session_store_errors",
                                    "Session store operations that failed", ["operation"],
                                    registry=reg)
        self.worklist_runs = Counter("pml_risk_worklist_runs", "Worklist runs by status",
                                     ["status"], registry=reg)
        mode: dict[str, Any] = {"multiprocess_mode": "mostrecent"} if self.multiprocess else {}
        self.worklist_patients = Gauge("pml_risk_worklist_patients",
                                       "Patients listed by the latest worklist run",
                                       registry=reg, **mode)
        self.worklist_estimates = Gauge("pml_risk_worklist_estimates",
                                        "Patients with an estimate in the latest worklist run",
                                        registry=reg, **mode)
        self.worklist_seconds = Gauge("pml_risk_worklist_run_seconds",
                                      "Duration of the latest worklist run", registry=reg,
                                      **mode)

    # -- what the audit trail says ----------------------------------------------------------

    def observe_event(self, name: str, fields: Mapping[str, Any]) -> None:
        """Count one audit event (called by ``ops.audit.event`` for every line written)."""
        error = fields.get("error")
        if name == "launch.established":
            self.launches.labels("established").inc()
        elif name == "launch.refused":
            self.launches.labels(_code(f"refused-{_code(error)}")).inc()
        elif name == "token.exchange" and fields.get("status") == "failed":
            self.launches.labels("token-failed").inc()
        elif name == "id_token.rejected":
            self.launches.labels("id-token-rejected").inc()
        elif name == "assessment.computed":
            self.assessments.labels(_assessment_status(fields.get("status"))).inc()
        elif name.endswith(".write"):
            rung = _code(name.removesuffix(".write"), {"riskassessment", "documentreference"})
            self.writebacks.labels(rung, _code(fields.get("status"))).inc()
        elif name == "cds.call":
            outcome = _code(error) if error else ("cards" if fields.get("cards") else "no-card")
            self.cds_calls.labels(_code(fields.get("service"), CDS_SERVICES), outcome).inc()
        elif name == "cds.refused":
            self.jwt_refusals.labels(_code(error)).inc()
            self.cds_calls.labels(_code(fields.get("service"), CDS_SERVICES), "refused").inc()

    def observe_worklist(self, *, status: str, patients: int | None, estimates: int | None,
                         seconds: float) -> None:
        self.worklist_runs.labels(_code(status)).inc()
        if patients is not None:
            self.worklist_patients.set(patients)
        if estimates is not None:
            self.worklist_estimates.set(estimates)
        self.worklist_seconds.set(seconds)

    # -- timings ------------------------------------------------------------------------------

    def observe_ehr(self, url: str, status: int | None, seconds: float) -> None:
        resource = resource_of(url)
        self.ehr_requests.labels(resource, status_class(status)).inc()
        self.ehr_latency.labels(resource).observe(seconds)

    def observe_cds(self, service: str, seconds: float) -> None:
        self.cds_latency.labels(_code(service, CDS_SERVICES)).observe(seconds)

    def timed_store(self, operation: str, call: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return call()
        except Exception:
            self.store_errors.labels(operation).inc()
            raise
        finally:
            self.store_latency.labels(operation).observe(time.perf_counter() - start)

    # -- the scrape ---------------------------------------------------------------------------

    def render(self) -> bytes:
        if self.multiprocess:
            registry = CollectorRegistry()
            _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self._registry)


def _assessment_status(status: Any) -> str:
    if status in ("ok", "estimate"):
        return "estimate"
    if status in ("incomplete", "no-estimate", "no_estimate"):
        return "no-estimate"
    return "error"


def allowed(remote_addr: str | None, networks: Iterable[str]) -> bool:
    """Is the scraper's address inside one of the configured networks?"""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


def worker_exited(pid: int) -> None:
    """gunicorn's ``child_exit`` hook: drop a dead worker's live-only samples."""
    if os.environ.get(MULTIPROC_ENV):
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
