""""Save to chart": the result the clinician reviewed, written once, where the EHR takes it.

The design:

* the ladder (``capability.save_state``): a RiskAssessment where the EHR takes one, else a
  clinical note (DocumentReference) with the same summary and identifier, else read-only;
* what is written is what the page showed (kept server-side by its identifier when the page was
  rendered); without that record, the assessment is recomputed from the visit's chart snapshot
  with the same overrides, and a different identifier means the what-if values changed: 409;
* one cheap freshness check first (``FhirClient.changed_since``: one parallel round of
  ``_lastUpdated`` searches): a chart that changed since the page opened is never written
  stale; nothing is written and the page is shown again from a fresh read;
* conditional create with ``If-None-Exist: identifier=<system>|<value>``, so saving twice,
  double-clicking or relaunching yields one resource (201 first, then 200); where the EHR lacks
  conditional create, the identifier search rides in the freshness round, then a plain create;
* a write ledger in the session store (identifier → written resource), consulted under a lock
  where the EHR cannot deduplicate (no conditional create, a search that lags behind a create,
  a 201 with no body): two tabs or a second click still give one resource;
* retries only on 5xx and timeouts, with the same identifier (inside ``FhirClient.create``);
* a 4xx is a refusal: the answer offers the JSON download and the plain-text summary;
* success is reported only with the EHR's 200/201 *and* a resource id the EHR gave back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from flask import url_for

from ...config import Tenant
from ...fhir.client import ChartData, FhirClient, FhirError, Freshness, WriteResult
from ...fhir.note import InvalidNote, author_reference, build_note, is_own_note, note_profile
from ...fhir.riskassessment import IDENTIFIER_SYSTEM
from ...ops import audit
from ...risk.records import Overrides
from ...smart.launches import Launch
from ...smart.scopes import GrantedScopes
from ...smart.tokens import TokenExpired
from ..errors import AppError
from ..services import Services
from . import capability, history
from . import overrides as override_params
from .assessment import (
    assess_data,
    assess_launch,
    launch_client,
    launch_tenant,
    read_plan,
    save_state,
    session_ended,
    snapshot,
)
from .render import remember_shown, shown_record

log = logging.getLogger(__name__)

LOCK_TTL = 60  # seconds a save may hold the per-result lock (its writes are bounded by it)
LOCK_WAIT = 20.0  # seconds a second save of the same result waits for the first
CHANGED = ("The chart changed since you opened it: review and save again. Nothing was saved; "
           "the page now shows the chart as it is.")


@dataclass(frozen=True)
class SaveResponse:
    status: int  # of our API response
    body: dict[str, Any]


def _label(rtype: str) -> str:
    return "note" if rtype == capability.NOTE else rtype


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
                                   identifier=identifier, **(fallback.get("overrides") or {}))
        body["summary"] = fallback.get("summary")
    return SaveResponse(status, body)


def _record(svc: Services, launch: Launch, identifier: str | None,
            overrides: Overrides) -> tuple[dict[str, Any] | None, SaveResponse | None]:
    """The shown record to write, or the reason there is none.

    The shown result is assessed again from the visit's snapshot (no EHR request) with the
    overrides it was shown with: a different identifier means the snapshot was read again
    since (another tab of this launch reloaded the page), so the shown result may be stale.
    """
    shown = svc.repo.get_shown(launch.id, identifier) if identifier else None
    if shown is not None and shown.get("resource"):
        overrides = override_params.parse(shown.get("overrides") or {})
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
    if overrides.any() and not overrides.reason:  # whatever the page showed or the body says
        return None, _failure(
            400, "reason-required", "Reason required", override_params.REASON_REQUIRED,
            identifier=la.identifier, launch=launch)
    return (shown if shown is not None else shown_record(la)), None


def save(svc: Services, launch: Launch, *, identifier: str | None,
         overrides: Overrides) -> SaveResponse:
    record, problem = _record(svc, launch, identifier, overrides)
    if problem is not None or record is None:
        assert problem is not None
        _audit(launch, "RiskAssessment", problem.body.get("identifier"), status="refused",
               error=str(problem.body["error"]))
        return problem
    ra: dict[str, Any] = record["resource"]
    ident = str(ra["identifier"][0]["value"])
    granted = launch.granted()
    state = save_state(svc, launch, granted, complete=True)
    tenant = launch_tenant(svc, launch)
    if not state.enabled or state.target is None:
        _audit(launch, "RiskAssessment", ident, status="refused", error=f"read-only-{state.code}")
        return _failure(403, "read-only", "Read-only", state.reason, identifier=ident,
                        launch=launch, fallback=record)
    rtype = state.target
    try:
        resource = ra if rtype == capability.RISK_ASSESSMENT else _note(record, ra, launch,
                                                                        tenant)
    except InvalidNote as exc:  # never expected; never written either
        log.error("the clinical note failed validation: %s", type(exc).__name__)
        _audit(launch, rtype, ident, status="failed", error="invalid-note")
        return _failure(422, "invalid-note", "Not saved",
                        "The note could not be built as valid FHIR, so nothing was saved. "
                        "Download the result or copy the summary instead, and tell your EHR "
                        "support team.", identifier=ident, launch=launch, fallback=record)
    token = f"{IDENTIFIER_SYSTEM}|{ident}"
    lc = launch_client(svc, launch)
    lookups: list[tuple[str, str, Sequence[tuple[str, str]]]] = []
    conditional = state.conditional
    by_text = rtype == capability.NOTE and not note_profile(tenant.vendor).keeps_identifier
    if by_text:
        # The EHR drops identifier: the app's notes of this patient are found by type and the
        # identifier line in their text, whether or not the ledger still remembers them.
        conditional = False
        if granted.can_search(rtype):
            lookups.append(("existing", rtype, [("patient", launch.context.patient),
                                                ("type", tenant.note_type)]))
    elif not conditional:  # search-then-create: the search rides in the freshness round
        lookups.append(("existing", rtype, [("patient", launch.context.patient),
                                            ("identifier", token)]))
    try:
        problem, existing = _check_fresh(svc, lc.client, lc.launch, granted, lookups, rtype,
                                         ident, record)
        if problem is not None:
            return problem
        if existing is not None:
            existing = [r for r in existing if is_own_note(r, ident, tenant.note_type)
                        or history.identifier_of(r) == ident]
        result = _locked_write(svc, lc.client, lc.launch, resource, token, ident,
                               conditional=conditional, ledger=state.ledger or by_text,
                               existing=existing, if_none_exist=not by_text)
    except TokenExpired as exc:
        raise session_ended() from exc
    return _answer(svc, lc.launch, result, resource, ident, record)


def _note(record: dict[str, Any], ra: dict[str, Any], launch: Launch,
          tenant: Tenant) -> dict[str, Any]:
    """The clinical note of the shown result (same identifier, same summary)."""
    author = author_reference(launch.fhir_user)
    if author is None and isinstance(ra.get("performer"), dict):
        author = ra["performer"].get("reference")
    encounter = ra.get("encounter")
    return build_note(
        text=str(record.get("note_text") or record["summary"]),
        identifier=str(ra["identifier"][0]["value"]),
        patient=str(ra["subject"]["reference"]),
        description=str(record.get("description") or "PML risk (natalizumab)"),
        when=datetime.now(UTC),
        note_type=tenant.note_type,
        note_type_display=tenant.note_type_display,
        encounter=encounter.get("reference") if isinstance(encounter, dict) else None,
        author=author,
        with_html=tenant.note_html,
        profile=note_profile(tenant.vendor),
    )


def _check_fresh(
    svc: Services, client: FhirClient, launch: Launch, granted: GrantedScopes,
    lookups: Sequence[tuple[str, str, Sequence[tuple[str, str]]]], rtype: str, ident: str,
    record: dict[str, Any],
) -> tuple[SaveResponse | None, list[dict[str, Any]] | None]:
    """The freshness round: ``(refusal, None)`` when the chart changed or could not be checked,
    else ``(None, found)`` with the identifier search's hits (``None``: none was asked for or
    it failed, so the write decides without it)."""
    data = snapshot(svc, launch)
    if data is None:  # the snapshot expired: any read is "since the page opened"
        data = ChartData(resources=(), round_trips=0, requests=0)
    try:
        fresh = client.changed_since(launch.context.patient, granted, data,
                                     read_plan(svc, launch), lookups)
    except FhirError as exc:
        if exc.status == 401:
            raise session_ended() from exc
        _audit(launch, rtype, ident, status="failed", error="freshness-check")
        return _failure(502, "fhir", "Not saved",
                        "The app could not check whether the chart changed since you opened "
                        f"it ({exc.message}), so nothing was saved. Try again.",
                        identifier=ident, launch=launch, retryable=True, fallback=record), None
    if fresh.changed and not _same_result(svc, launch, data, fresh, record):
        log.info("save refused: the chart changed (%s)", fresh.reason)
        svc.repo.drop_chart(launch.id)  # the next page render reads the chart again
        _audit(launch, rtype, ident, status="refused", error="chart-changed")
        return _failure(409, "chart-changed", "The chart changed", CHANGED, identifier=ident,
                        launch=launch), None
    if lookups and fresh.lookup_status.get("existing") == 200:
        return None, list(fresh.found.get("existing", ()))
    return None, None


def _same_result(svc: Services, launch: Launch, data: ChartData, fresh: Freshness,
                 record: dict[str, Any]) -> bool:
    """The chart changed, but would the result on the page? (A new blood count is not a
    reason to refuse the save; a new antibody index is.) Assessed again with the changes
    merged into the snapshot, with the overrides the result was shown with."""
    if fresh.overflow:
        return False
    merged = replace(data, resources=fresh.merged(data.resources))
    try:
        la = assess_data(svc, launch, merged, override_params.parse(record.get("overrides")
                                                                     or {}))
    except AppError:
        return False
    again = shown_record(la)
    same = bool(again["resource"] == record["resource"]
                and again["summary"] == record["summary"])
    if same:
        log.info("the chart changed (%s), the result did not", fresh.reason)
        svc.repo.put_chart(launch, merged.to_json())
    return same


def _locked_write(svc: Services, client: FhirClient, launch: Launch, resource: dict[str, Any],
                  token: str, ident: str, *, conditional: bool, ledger: bool,
                  existing: list[dict[str, Any]] | None,
                  if_none_exist: bool = True) -> WriteResult:
    """One writer per result at a time; the ledger answers where the EHR cannot deduplicate."""
    lock = f"write:{launch.iss}|{ident}"
    waited_until = time.monotonic() + LOCK_WAIT
    while not svc.repo.store.try_lock(lock, LOCK_TTL):
        if time.monotonic() >= waited_until:
            return WriteResult(0, None, None, 0, "another save of this result is still running")
        time.sleep(0.05)  # another tab is saving the same result: its outcome decides
    try:
        rtype = str(resource["resourceType"])
        # The search-first path's search ran before the lock: a save that finished in between
        # is known only to the ledger, so it is consulted there too.
        if ledger or existing is not None:
            written = svc.repo.get_written(launch.iss, ident)
            if written is not None and written.get("resourceType") == rtype:
                return WriteResult(200, None, f"{rtype}/{written.get('id')}", 0)
        result = _write(client, resource, token if if_none_exist else None,
                        conditional=conditional, existing=existing)
        if result.ok and result.resource_id is not None:
            # Recorded before the lock is released, so the next writer of this result sees it.
            svc.repo.put_written(launch.iss, ident, {"resourceType": rtype,
                                                     "id": result.resource_id})
        return result
    finally:
        svc.repo.store.unlock(lock)


def _write(client: FhirClient, resource: dict[str, Any], token: str | None, *,
           conditional: bool, existing: list[dict[str, Any]] | None) -> WriteResult:
    """``token`` None: the EHR keeps no identifier, so ``If-None-Exist`` could not match."""
    if conditional or existing is None:  # no search made (or it failed): let the EHR decide
        return client.create(resource, if_none_exist=f"identifier={token}" if token else None)
    # §4.3 item 4: no conditional create on this EHR; the search came first (a small race
    # window, closed by the lock and the ledger for saves made through this app).
    if existing:
        return WriteResult(200, existing[0], None, 0)
    return client.create(resource, if_none_exist=None)


def _answer(svc: Services, launch: Launch, result: WriteResult, resource: dict[str, Any],
            ident: str, record: dict[str, Any]) -> SaveResponse:
    rtype = str(resource["resourceType"])
    label = _label(rtype)
    if result.ok:
        rid = result.resource_id
        returned = result.resource
        if returned is not None and history.identifier_of(returned) not in (None, ident):
            _audit(launch, rtype, ident, status="failed", error="other-resource",
                   http_status=result.status)
            return _failure(502, "unconfirmed", "Not confirmed",
                            f"The EHR answered with a different {rtype}; the save cannot "
                            "be confirmed. Check the chart before saving again.",
                            identifier=ident, launch=launch, http_status=result.status,
                            fallback=record)
        if rid is None:
            rid = _find_id(svc, launch, rtype, ident)
        if rid is None:
            _audit(launch, rtype, ident, status="failed", error="no-id",
                   http_status=result.status)
            return _failure(502, "unconfirmed", "Not confirmed",
                            f"The EHR answered {result.status} but gave no resource id, and the "
                            f"{label} could not be found by its identifier. Check the "
                            "chart before saving again; saving again cannot create a duplicate.",
                            identifier=ident, launch=launch, retryable=True,
                            http_status=result.status, fallback=record)
        svc.repo.put_written(launch.iss, ident, {"resourceType": rtype, "id": rid})
        _remember_in_history(svc, launch, returned or {**resource, "id": rid})
        meta = returned.get("meta") if returned else None
        saved_at = (meta or {}).get("lastUpdated") if isinstance(meta, dict) else None
        _audit(launch, rtype, ident, status="saved", resource_id=f"{rtype}/{rid}",
               created=result.created, http_status=result.status)
        return SaveResponse(200, {
            "saved": True,
            "created": result.created,
            "id": rid,
            "resourceType": rtype,
            "reference": f"{rtype}/{rid}",
            "identifier": ident,
            "savedAt": saved_at or datetime.now(UTC).isoformat(timespec="seconds"),
            "httpStatus": result.status,
            "attempts": result.attempts,
        })
    status = result.status
    if status == 0 or status >= 500 or status == 429:
        what = f"a server error ({status})" if status else f"no answer ({result.diagnostics})"
        _audit(launch, rtype, ident, status="failed", error="server-error",
               http_status=status or None)
        return _failure(
            504 if status == 0 else 502, "server-error" if status else "timeout",
            "The EHR did not save it",
            f"The EHR gave {what} after {result.attempts} attempts, so the save is not "
            "confirmed. Retry: the retry uses the same identifier, so it cannot create a "
            "duplicate.",
            identifier=ident, launch=launch, retryable=True, http_status=status or None,
            fallback=record)
    if status == 412:
        message = (f"The chart already holds more than one {rtype} with this identifier, "
                   "so the EHR refused to add another. Nothing was saved; tell your EHR support "
                   "team.")
    else:
        said = f" ({result.diagnostics})" if result.diagnostics else ""
        message = (f"It answered {status}{said}. Nothing was saved. Download the JSON or copy "
                   "the summary into a note instead.")
    if status in (404, 405, 501):  # the type or its create is not (or no longer) supported
        capability.cache().forget(launch.iss)  # the next page and save take the next rung
    _audit(launch, rtype, ident, status="rejected", error="rejected", http_status=status)
    return _failure(422, "rejected", f"The EHR refused the {label}", message,
                    identifier=ident, launch=launch, http_status=status, fallback=record)


def _remember_in_history(svc: Services, launch: Launch, written: dict[str, Any]) -> None:
    """The history list shows the new result at once, without reading the EHR again."""
    data = snapshot(svc, launch)
    if data is None:
        return
    others = [r for r in data.history
              if (r.get("resourceType"), r.get("id")) != (written.get("resourceType"),
                                                          written.get("id"))]
    svc.repo.put_chart(launch, data.with_history([written, *others]).to_json())


def _find_id(svc: Services, launch: Launch, rtype: str, ident: str) -> str | None:
    """A 2xx without body or Location: look the resource up by its identifier (a note on an EHR
    that keeps none: by its type and the identifier line in its text)."""
    tenant = launch_tenant(svc, launch)
    by_text = rtype == capability.NOTE and not note_profile(tenant.vendor).keeps_identifier
    params = [("patient", launch.context.patient),
              ("type", tenant.note_type) if by_text
              else ("identifier", f"{IDENTIFIER_SYSTEM}|{ident}")]
    try:
        found = launch_client(svc, launch).client.search_one(rtype, params)
    except (FhirError, TokenExpired):
        return None
    if by_text:
        found = [r for r in found if is_own_note(r, ident, tenant.note_type)]
    rid = found[0].get("id") if len(found) == 1 else None
    return rid if isinstance(rid, str) else None


def _audit(launch: Launch, rtype: str, ident: str | None, *, status: str,
           error: str | None = None, resource_id: str | None = None,
           created: bool | None = None, http_status: int | None = None) -> None:
    audit.event(
        f"{rtype.lower()}.write",
        tenant=launch.tenant, iss=launch.iss, user=launch.fhir_user,
        patient=launch.context.patient, launch=launch.id, status=status, error=error,
        resource_id=resource_id, created=created, http_status=http_status,
    )
    if ident:
        # The launch id belongs in the audit trail only (the logging policy of ops/logs.py).
        log.info("%s write %s", rtype, status)
