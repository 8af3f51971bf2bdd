""""Save to chart": the RiskAssessment the clinician reviewed, written once, or exactly why not.

The design of requirements §4.3:

* what is written is what the page showed (kept server-side by its identifier when the page was
  rendered); without that record, the assessment is recomputed from the chart with the same
  overrides, and a different identifier means the chart changed: 409, nothing written;
* conditional create with ``If-None-Exist: identifier=<system>|<value>``, so saving twice,
  double-clicking or relaunching yields one resource (201 first, then 200); where the EHR lacks
  conditional create but allows search, search by identifier first, then create;
* retries only on 5xx and timeouts, with the same identifier (inside ``FhirClient.create``);
* a 4xx is a refusal: the answer offers the JSON download and the plain-text summary;
* success is reported only with the EHR's 200/201 *and* a resource id the EHR gave back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import url_for

from ...fhir.client import FhirClient, FhirError, WriteResult
from ...fhir.riskassessment import IDENTIFIER_SYSTEM
from ...ops import audit
from ...risk.records import Overrides
from ...smart.launches import Launch
from ...smart.tokens import TokenExpired
from ..services import Services
from . import capability, history
from .assessment import assess_launch, launch_client, launch_tenant, session_ended
from .render import remember_shown, shown_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SaveResponse:
    status: int  # of our API response
    body: dict[str, Any]


def _failure(status: int, error: str, title: str, message: str, *, identifier: str | None,
             launch: Launch, retryable: bool = False, http_status: int | None = None,
             fallback: dict[str, Any] | None = None) -> SaveResponse:
    body: dict[str, Any] = {
        "saved": False,
        "error": error,
        "title": title,
        "message": message,
        "retryable": retryable,
        "identifier": identifier,
        "httpStatus": http_status,
    }
    if fallback is not None and identifier is not None:
        body["download"] = url_for("views.riskassessment_json", launch_id=launch.id,
                                   identifier=identifier)
        body["summary"] = fallback.get("summary")
    return SaveResponse(status, body)


def _record(svc: Services, launch: Launch, identifier: str | None,
            overrides: Overrides) -> tuple[dict[str, Any] | None, SaveResponse | None]:
    """The shown record to write, or the reason there is none."""
    if identifier:
        shown = svc.repo.get_shown(launch.id, identifier)
        if shown is not None and shown.get("resource"):
            return shown, None
    la = assess_launch(svc, launch, overrides)
    if la.identifier is None:
        return None, _failure(
            409, "no-estimate", "Nothing to save",
            "There is no estimate to save: " + "; ".join(
                f.message for f in la.chart.assessment.missing),
            identifier=None, launch=launch)
    remember_shown(svc, la)
    if identifier and identifier != la.identifier:
        return None, _failure(
            409, "changed", "The chart changed",
            "The chart or the what-if values changed since this result was shown; nothing was "
            "saved. Review the updated result, then save again.",
            identifier=la.identifier, launch=launch)
    return shown_record(la), None


def save(svc: Services, launch: Launch, *, identifier: str | None,
         overrides: Overrides) -> SaveResponse:
    record, problem = _record(svc, launch, identifier, overrides)
    if problem is not None or record is None:
        assert problem is not None
        _audit(launch, problem.body.get("identifier"), status="refused",
               error=str(problem.body["error"]))
        return problem
    resource: dict[str, Any] = record["resource"]
    ident = str(resource["identifier"][0]["value"])
    granted = launch.granted()
    support = capability.write_support(svc.statement(launch_tenant(svc, launch)))
    state = capability.save_state(granted, support, complete=True)
    if not state.enabled:
        _audit(launch, ident, status="refused", error=f"read-only-{state.code}")
        return _failure(403, "read-only", "Read-only", state.reason, identifier=ident,
                        launch=launch, fallback=record)
    lc = launch_client(svc, launch)
    try:
        result = _write(lc.client, resource, ident, conditional=state.conditional)
    except TokenExpired as exc:
        raise session_ended() from exc
    except FhirError as exc:  # only the search-first path raises
        result = WriteResult(exc.status or 0, None, None, 1, exc.message)
    return _answer(svc, lc.launch, result, resource, ident, record)


def _write(client: FhirClient, resource: dict[str, Any], ident: str, *,
           conditional: bool) -> WriteResult:
    token = f"{IDENTIFIER_SYSTEM}|{ident}"
    if conditional:
        return client.create(resource, if_none_exist=f"identifier={token}")
    # §4.3 item 4: no conditional create on this EHR; search first (a small race window).
    patient = str(resource["subject"]["reference"]).split("/", 1)[1]
    found = client.search_one("RiskAssessment", [("patient", patient), ("identifier", token)])
    if found:
        return WriteResult(200, found[0], None, 1)
    return client.create(resource, if_none_exist=None)


def _answer(svc: Services, launch: Launch, result: WriteResult, resource: dict[str, Any],
            ident: str, record: dict[str, Any]) -> SaveResponse:
    if result.ok:
        rid = result.resource_id
        returned = result.resource
        if returned is not None and history.identifier_of(returned) not in (None, ident):
            _audit(launch, ident, status="failed", error="other-resource",
                   http_status=result.status)
            return _failure(502, "unconfirmed", "Not confirmed",
                            "The EHR answered with a different RiskAssessment; the save cannot "
                            "be confirmed. Check the chart before saving again.",
                            identifier=ident, launch=launch, http_status=result.status,
                            fallback=record)
        if rid is None:
            rid = _find_id(svc, launch, ident)
        if rid is None:
            _audit(launch, ident, status="failed", error="no-id", http_status=result.status)
            return _failure(502, "unconfirmed", "Not confirmed",
                            f"The EHR answered {result.status} but gave no resource id, and the "
                            "RiskAssessment could not be found by its identifier. Check the "
                            "chart before saving again; saving again cannot create a duplicate.",
                            identifier=ident, launch=launch, retryable=True,
                            http_status=result.status, fallback=record)
        meta = returned.get("meta") if returned else None
        saved_at = (meta or {}).get("lastUpdated") if isinstance(meta, dict) else None
        _audit(launch, ident, status="saved", resource_id=f"RiskAssessment/{rid}",
               created=result.created, http_status=result.status)
        return SaveResponse(200, {
            "saved": True,
            "id": rid,
            "reference": f"RiskAssessment/{rid}",
            "created": result.created,
            "identifier": ident,
            "savedAt": saved_at or datetime.now(UTC).isoformat(timespec="seconds"),
            "httpStatus": result.status,
            "attempts": result.attempts,
        })
    status = result.status
    if status == 0 or status >= 500 or status == 429:
        what = f"a server error ({status})" if status else "no answer (timeout)"
        _audit(launch, ident, status="failed", error="server-error", http_status=status or None)
        return _failure(
            504 if status == 0 else 502, "server-error" if status else "timeout",
            "The EHR did not save it",
            f"The EHR gave {what} after {result.attempts} attempts, so the save is not "
            "confirmed. Retry: the retry uses the same identifier, so it cannot create a "
            "duplicate.",
            identifier=ident, launch=launch, retryable=True, http_status=status or None,
            fallback=record)
    if status == 412:
        message = ("The chart already holds more than one RiskAssessment with this identifier, "
                   "so the EHR refused to add another. Nothing was saved; tell your EHR support "
                   "team.")
    else:
        said = f" ({result.diagnostics})" if result.diagnostics else ""
        message = (f"It answered {status}{said}. Nothing was saved. Download the JSON or copy "
                   "the summary into a note instead.")
    _audit(launch, ident, status="rejected", error="rejected", http_status=status)
    return _failure(422, "rejected", "The EHR refused the RiskAssessment", message,
                    identifier=ident, launch=launch, http_status=status, fallback=record)


def _find_id(svc: Services, launch: Launch, ident: str) -> str | None:
    """A 2xx without body or Location: look the resource up by its identifier."""
    try:
        found = launch_client(svc, launch).client.search_one(
            "RiskAssessment", [("patient", launch.context.patient),
                               ("identifier", f"{IDENTIFIER_SYSTEM}|{ident}")])
    except (FhirError, TokenExpired):
        return None
    rid = found[0].get("id") if len(found) == 1 else None
    return rid if isinstance(rid, str) else None


def _audit(launch: Launch, ident: str | None, *, status: str, error: str | None = None,
           resource_id: str | None = None, created: bool | None = None,
           http_status: int | None = None) -> None:
    audit.event(
        "riskassessment.write",
        tenant=launch.tenant, iss=launch.iss, user=launch.fhir_user,
        patient=launch.context.patient, launch=launch.id, status=status, error=error,
        resource_id=resource_id, created=created, http_status=http_status,
    )
    if ident:
        # The launch id belongs in the audit trail only (the logging policy of ops/logs.py).
        log.info("RiskAssessment write %s", status)
