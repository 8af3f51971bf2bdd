"""The CDS Hooks 2.0 routes (a Flask blueprint on the app's service seam and tenant registry).

* ``GET  /cds-services``                        discovery (the app's own prefetch templates)
* ``GET  /t/<slug>/cds-services``               discovery with the tenant's templates
* ``POST [/t/<slug>]/cds-services/<id>``        a hook call → ``{"cards": [...]}``
* ``POST [/t/<slug>]/cds-services/<id>/feedback`` card feedback → 200, audited
* ``GET  /basis``                               the clinical basis page the cards link to

Discovery is public (it holds no patient data and the EHR's registration tools read it); every
other route needs the EHR's signed JWT (``trust.py``) and answers a bare 401 without it. Errors
are OperationOutcomes (the CDS Hooks 3.0 shape), on every CDS path: 400 for a malformed call
(bodies are parsed only when their nesting is bounded), 404, 405, 415, 412 when data the
estimate needs is neither prefetched nor readable (Medications named by reference included),
503 when the session store does not answer. CORS is open because browser-based CDS clients
exist and no cookie is ever involved: the JWT is the only credential.

A call is answered in the cheapest order: the order filter (order hooks), then whether
natalizumab is in the patient's care (``relevance.py``, ``patient-view``), and only then the
FHIR fallback and the assessment.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.wrappers import Response

from ..config import Settings, Tenant
from ..fhir.capability import metadata_headers
from ..fhir.extract import ForeignResourceError
from ..fhir.shape import MalformedResource, check_resources
from ..http import jsondepth
from ..ops import audit
from ..risk.records import MRI_SOURCES, Antibody, Infusion, Inputs
from ..risk.tables import load_table
from ..service import ChartAssessment, assess_inputs, chart_inputs
from ..smart.store import StoreUnavailable
from ..web.page import doc
from ..web.services import EXTENSION, Services
from . import cards, fallback, orders, prefetch, relevance
from .jwks import CdsJwks
from .orders import natalizumab_orders
from .trust import CdsTrust, TrustedClient, Untrusted, cds_tenant

log = logging.getLogger(__name__)

bp = Blueprint("cds", __name__)
CDS_EXTENSION = "pml_risk_cds"
STATEMENT_TIMEOUT = 0.4  # seconds per read of /metadata (cached; it must not eat the budget)
MAX_BODY = 16 * 1024 * 1024  # a heavy chart's full prefetch is ~0.4 MB; a large one a few MB
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_USER = re.compile(r"(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-.]{1,64}")
MEDICATION_TYPES = ("MedicationAdministration", "MedicationStatement", "MedicationRequest")
_PATIENT_VIEW = "pml-risk-patient-view"
_ORDER = "pml-risk-order"


@dataclass(frozen=True)
class Service:
    id: str
    hooks: tuple[str, ...]
    title: str
    description: str


SERVICES: Mapping[str, Service] = {
    _PATIENT_VIEW: Service(
        _PATIENT_VIEW, ("patient-view",), "PML risk on natalizumab",
        "Estimated PML risk per 1,000 for a patient treated with natalizumab (anti-JCV antibody "
        "status and index, infusions, prior immunosuppressants), with what is missing, stale "
        "or due.",
    ),
    _ORDER: Service(
        _ORDER, ("order-select", "order-sign"), "PML risk before a natalizumab order",
        "When natalizumab is ordered: the patient's PML risk and a suggestion to order the "
        "anti-JCV test (or MRI) that is due. Silent for every other order.",
    ),
}


@dataclass(frozen=True)
class CdsState:
    trust: CdsTrust
    jwks: CdsJwks


def init_app(app: Flask) -> None:
    """Build the trust machinery on the app's shared objects and register the routes."""
    svc: Services = app.extensions[EXTENSION]
    store = svc.repo.store
    jwks = CdsJwks(svc.http, timeout=min(svc.settings.fhir_timeout, 5.0))
    app.extensions[CDS_EXTENSION] = CdsState(
        trust=CdsTrust(svc.settings, jwks, lambda key, ttl: store.try_lock(f"cds-jti:{key}", ttl)),
        jwks=jwks,
    )
    app.register_blueprint(bp)
    app.before_request(_routing_errors)


_CDS_PATH = re.compile(r"(/t/[^/]+)?/cds-services(/.*)?")


def _routing_errors() -> tuple[Response, int] | None:
    """404 and 405 on CDS paths are found while routing, before any blueprint handler could
    see them: answered here as OperationOutcomes, like every other CDS error (the app's HTML
    error pages are for browsers)."""
    error = request.routing_exception
    if not isinstance(error, HTTPException) or not _CDS_PATH.fullmatch(request.path):
        return None
    resp, status = _http_error(error)
    if status == 405 and isinstance(error, MethodNotAllowed) and error.valid_methods:
        resp.headers["Allow"] = ", ".join(error.valid_methods)
    return _cors(resp), status


def _svc() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found


def _state() -> CdsState:
    found: CdsState = current_app.extensions[CDS_EXTENSION]
    return found


# -- responses -------------------------------------------------------------------------------


def outcome(status: int, code: str, diagnostics: str) -> tuple[Response, int]:
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]}
    return jsonify(body), status


class _BadBody(Exception):
    """The request body is not a JSON object the service can read (400 or 415)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _unauthorized() -> Response:
    """A bare 401: the caller learns nothing about which rule failed."""
    return Response(status=401, headers={"WWW-Authenticate": "Bearer"})


@bp.before_request
def _limits() -> None:
    request.max_content_length = MAX_BODY


@bp.after_request
def _cors(resp: Response) -> Response:
    if request.path.endswith("/basis"):
        return resp
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
    resp.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    resp.headers["Access-Control-Max-Age"] = "600"
    return resp


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 500
    code = {404: "not-found", 405: "not-supported", 413: "too-costly"}.get(status, "invalid")
    return outcome(status, code, error.description or error.name)


@bp.errorhandler(_BadBody)
def _bad_body(error: _BadBody) -> tuple[Response, int]:
    return outcome(error.status, error.code, error.message)


@bp.errorhandler(StoreUnavailable)
def _store_down(error: StoreUnavailable) -> tuple[Response, int]:
    """The session store (the jti ledger) does not answer: 503, as the pages say, so the EHR
    knows to try again; never a 500 and never an unchecked replay."""
    log.warning("CDS call: session store unavailable: %s", error)
    audit.event("error", error="store-unavailable", http_status=503, endpoint=request.endpoint)
    resp, status = outcome(503, "transient", "The service cannot reach its session storage; "
                           "try again shortly.")
    resp.headers["Retry-After"] = "5"
    return resp, status


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> tuple[Response, int]:
    log.error("CDS call failed: %s", type(error).__name__, exc_info=current_app.debug)
    audit.event("error", error=f"internal:{type(error).__name__}", http_status=500,
                endpoint=request.endpoint)
    return outcome(500, "exception", "The service hit an unexpected error.")


# -- discovery ---------------------------------------------------------------------------------


def _discovery(settings: Settings, tenant: Tenant | None) -> dict[str, Any]:
    templates = prefetch.templates(settings, tenant)
    return {"services": [
        {"hook": hook, "id": s.id, "title": s.title, "description": s.description,
         "prefetch": templates}
        for s in SERVICES.values() for hook in s.hooks
    ]}


@bp.get("/cds-services")
def discovery() -> Response:
    return jsonify(_discovery(_svc().settings, None))


def _tenant(slug: str) -> Tenant:
    tenant = cds_tenant(_svc().settings, slug=slug)
    if tenant is None:
        raise NotFound("No CDS tenant at this address.")
    return tenant


@bp.get("/t/<slug>/cds-services")
def tenant_discovery(slug: str) -> Response:
    return jsonify(_discovery(_svc().settings, _tenant(slug)))


# -- calls -------------------------------------------------------------------------------------


def _trusted(service_id: str, slug: str | None) -> TrustedClient | Response:
    settings = _svc().settings
    endpoint = settings.base_url + request.path
    try:
        return _state().trust.verify(request.headers.get("Authorization"), endpoint, slug)
    except Untrusted as exc:
        audit.event("cds.refused", service=service_id[:64], iss=exc.iss, jti=exc.jti,
                    error=exc.reason, http_status=401, endpoint=request.endpoint)
        log.info("CDS call refused (%s)", exc.reason)
        return _unauthorized()


def _body() -> dict[str, Any]:
    """The JSON object of the request, its nesting bounded before it is parsed (a body of
    ``[`` × 3,000 is a 400, never a RecursionError); raises :class:`_BadBody`."""
    if not request.mimetype.endswith("json"):
        raise _BadBody(415, "not-supported", "Send the call as application/json.")
    try:
        body = jsondepth.loads(request.get_data(cache=True))
    except ValueError as exc:
        raise _BadBody(400, "structure", f"The request body cannot be read: {exc}.") from exc
    if not isinstance(body, dict):
        raise _BadBody(400, "structure", "The request body must be a JSON object.")
    return body


@bp.post("/cds-services/<service_id>")
def call(service_id: str) -> Response | tuple[Response, int]:
    return _call(service_id, None)


@bp.post("/t/<slug>/cds-services/<service_id>")
def tenant_call(slug: str, service_id: str) -> Response | tuple[Response, int]:
    _tenant(slug)
    return _call(service_id, slug)


def _today(settings: Settings) -> Any:
    return datetime.now(ZoneInfo(settings.timezone)).date()


class _Refused(Exception):
    """The call ends with this OperationOutcome (and its audit line) instead of cards."""

    def __init__(self, status: int, code: str, message: str, audit_error: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.audit_error = (status, code, message,
                                                                   audit_error)


def _call(service_id: str, slug: str | None) -> Response | tuple[Response, int]:
    client = _trusted(service_id, slug)
    if isinstance(client, Response):
        return client
    service = SERVICES.get(service_id)
    if service is None:
        return outcome(404, "not-found", f"No CDS service {service_id[:64]!r}.")
    who: dict[str, Any] = {"tenant": client.tenant.name, "iss": client.issuer,
                           "jti": client.jti, "service": service.id}
    body = _body()
    hook = body.get("hook")
    context = body.get("context")
    if hook not in service.hooks:
        return outcome(400, "not-supported", f"Service {service.id} answers "
                       f"{' and '.join(service.hooks)} only.")
    if not isinstance(context, dict) or not isinstance(context.get("patientId"), str) or (
            not _ID.fullmatch(context["patientId"])):
        return outcome(400, "required", "context.patientId is required.")
    instance = body.get("hookInstance")
    user = context.get("userId")
    who.update(hook=hook, patient=context["patientId"],
               hook_instance=instance[:64] if isinstance(instance, str) else None,
               user=user if isinstance(user, str) and _USER.fullmatch(user) else None)
    try:
        return _answer(service, str(hook), context, body, client.tenant, who)
    except _Refused as exc:
        audit.event("cds.call", **who, error=exc.audit_error, http_status=exc.status)
        return outcome(exc.status, exc.code, exc.message)


def _named(ids: list[str]) -> str:
    shown = ", ".join(f"Medication/{m}" for m in ids[:5])
    return shown + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def _medications(svc: Services, access: fallback.FhirAccess | fallback.CannotFetch,
                 tenant: Tenant, patient_id: str, have: Sequence[Mapping[str, Any]], today: Any,
                 what: str) -> fallback.Fetched:
    """Read the Medications ``have`` references and nobody sent (one search), or refuse:
    an unidentified medication is unknown, and a card from a lower band is never shown."""
    wanted = fallback.unresolved_medications(have, tenant.iss)
    try:
        if isinstance(access, fallback.CannotFetch):
            raise access
        fetched = fallback.fetch(svc.http, access, svc.settings, tenant, patient_id, (), today,
                                 have)
    except fallback.CannotFetch as exc:
        raise _Refused(412, "incomplete", f"{what} ({_named(wanted)}) cannot be read: "
                       f"{exc.message}.", exc.reason) from exc
    still = fallback.unresolved_medications([*have, *fetched.resources], tenant.iss)
    if still:
        raise _Refused(412, "incomplete", f"{what} ({_named(still)}) cannot be read: not "
                       "found, or not allowed by fhirAuthorization.", "medication-unread")
    return fetched


def _answer(service: Service, hook: str, context: dict[str, Any], body: dict[str, Any],
            tenant: Tenant, who: dict[str, Any]) -> Response:
    svc = _svc()
    settings = svc.settings
    cds = tenant.cds
    assert cds is not None
    patient_id = context["patientId"]
    today = _today(settings)
    access = fallback.access(body.get("fhirServer"), body.get("fhirAuthorization"), tenant.iss,
                             patient_id)
    try:
        got = prefetch.read(body.get("prefetch"), patient_id, tenant.iss,
                            prefetch.keys(settings, tenant), prefetch.labs_since(settings, today))
    except prefetch.ForeignPrefetch as exc:
        raise _Refused(400, "invalid", "The prefetch holds resources of another patient; "
                       "nothing was assessed.", "foreign-prefetch") from exc
    # Shapes are checked with the whole chart (``chart_inputs``), only for charts assessed:
    # the relevance test and the order filter read what they need defensively.
    resources = list(got.resources)
    statuses = dict(got.status)
    round_trips = 0
    order = service.id == _ORDER
    ordered: tuple[str, ...] = ()
    if order:
        drafts = natalizumab_orders(context, hook, settings.codes, resources)
        if drafts.unresolved and not drafts.natalizumab:
            # The order names a Medication nobody sent: read it before staying silent.
            have = orders.draft_resources(context.get("draftOrders"))
            fetched = _medications(svc, access, tenant, patient_id,
                                   [r for r in have if r.get("resourceType") == (
                                       "MedicationRequest")], today, "The ordered medication")
            round_trips += fetched.round_trips
            drafts = natalizumab_orders(context, hook, settings.codes,
                                        [*resources, *fetched.resources])
        if not drafts.natalizumab:
            audit.event("cds.call", **who, cards=0, status="no-natalizumab-order")
            return jsonify({"cards": []})
        ordered = drafts.natalizumab
    meds_ready = all(statuses[k] in ("provided", "empty") for k, t in got.types.items()
                     if t in MEDICATION_TYPES)
    mode = cds.patient_view
    decided = False
    if not order and mode != "always" and meds_ready:
        # Relevance first, from the prefetch alone; only the Medications of records recent
        # enough to count are read for it (one search), never a whole chart.
        window = cds.care_window_months
        pool = [*relevance.candidates(resources, today, window),
                *(r for r in resources if r.get("resourceType") == "Medication")]
        if fallback.unresolved_medications(pool, tenant.iss):
            fetched = _medications(svc, access, tenant, patient_id, pool, today,
                                   "Medications the records name")
            resources.extend(fetched.resources)
            round_trips += fetched.round_trips
        decided = True
        if relevance.in_care(resources, settings.codes, today, window) is None:
            audit.event("cds.call", **who, prefetch=statuses, round_trips=round_trips,
                        cards=0, status="not-in-care")
            return jsonify({"cards": []})
    if not got.missing and fallback.unresolved_medications(resources, tenant.iss):
        fetched = _medications(svc, access, tenant, patient_id, resources, today,
                               "Medications the records name")
        resources.extend(fetched.resources)
        round_trips += fetched.round_trips
    unread: tuple[str, ...] = ()
    not_offered_here: tuple[str, ...] = ()
    if got.missing:
        try:
            if isinstance(access, fallback.CannotFetch):
                raise access
            started = time.monotonic()
            # What the EHR offers (cached an hour): a type it does not have is not fetched,
            # and reaches the engine as "not offered", exactly as at launch.
            statement = svc.capabilities.get(svc.http, tenant.iss, STATEMENT_TIMEOUT,
                                             metadata_headers(tenant))
            fetched = fallback.fetch(
                svc.http, access, settings, tenant, patient_id, got.missing_types, today,
                resources, statement=statement,
                deadline=fallback.DEADLINE - (time.monotonic() - started))
        except fallback.CannotFetch as exc:
            missing = ", ".join(got.missing)
            raise _Refused(412, "incomplete", f"Prefetch {missing} not provided and cannot be "
                           f"read: {exc.message}.", exc.reason) from exc
        resources.extend(fetched.resources)
        round_trips += fetched.round_trips
        unread, not_offered_here = fetched.unread, fetched.not_offered
        statuses.update({k: f"fetched ({statuses[k]})" for k in got.missing
                         if got.types[k] not in fetched.not_offered})
        statuses.update({k: f"not offered ({statuses[k]})" for k in got.missing
                         if got.types[k] in fetched.not_offered})
        if fallback.unresolved_medications(resources, tenant.iss):
            # The fetch read what it was allowed to; one more try names what is missing (412).
            more = _medications(svc, access, tenant, patient_id, resources, today,
                                "Medications the records name")
            resources.extend(more.resources)
            round_trips += more.round_trips
    if not order and mode != "always" and not decided and relevance.in_care(
            resources, settings.codes, today, cds.care_window_months) is None:
        audit.event("cds.call", **who, prefetch=statuses, round_trips=round_trips, cards=0,
                    status="not-in-care")
        return jsonify({"cards": []})
    offered = [t for t in prefetch.chart_types(tenant) if t not in not_offered_here]
    # The prefetch carries no imaging: the MRI history is unknown.
    not_offered = [*(t for t in prefetch.CHART_TYPES if t not in offered), *MRI_SOURCES]

    def assess(extra: list[dict[str, Any]]) -> ChartAssessment:
        try:
            inputs = chart_inputs([*resources, *extra], patient_id, settings=settings,
                                  unread=unread, not_offered=not_offered)
        except ForeignResourceError as exc:
            raise _Refused(400, "invalid", "The data holds resources of another patient; "
                           "nothing was assessed.", "foreign-resource") from exc
        except MalformedResource as exc:
            raise _Refused(400, "structure", f"The prefetch cannot be read as FHIR: {exc}; "
                           "nothing was assessed.", "malformed-prefetch") from exc
        if ordered:
            inputs = _with_ordered_infusion(inputs, ordered[0], today)
        return assess_inputs(inputs, at=today, settings=settings,
                             table=load_table(settings.risk_table), resource=False)

    chart = assess([])
    if (chart.assessment.antibody.status is Antibody.UNKNOWN and "labs" not in got.types
            and settings.observation_category and "Observation" not in got.missing_types
            and isinstance(access, fallback.FhirAccess)):
        # No anti-JCV result by code: look for one under a local code (by its text), as the
        # app does at launch, before saying there is none. Only for natalizumab charts.
        labs = _local_code_results(svc, access, tenant, patient_id, today)
        if labs:
            round_trips += 1
            chart = assess(labs)
    a = chart.assessment
    if not order and mode == "actionable" and not cards.actionable(a):
        audit.event("cds.call", **who, prefetch=statuses, round_trips=round_trips, cards=0,
                    status="nothing-actionable")
        return jsonify({"cards": []})
    links = cards.CardLinks(launch_url=f"{settings.base_url}/launch",
                            basis_url=cds.basis_url or f"{settings.base_url}/basis")
    card = cards.card(a, links, order=order, jcv_order=cds.jcv_order, mri_order=cds.mri_order,
                      ordered=bool(ordered))
    audit.event("cds.call", **who, prefetch=statuses, round_trips=round_trips, cards=1,
                card=card["uuid"], status=chart.status, table=a.table_id)
    return jsonify({"cards": [card]})


def _local_code_results(svc: Services, access: fallback.FhirAccess, tenant: Tenant,
                        patient_id: str, today: Any) -> list[dict[str, Any]]:
    """The laboratory results of the app's date-bounded category search; none when they
    cannot be read within the deadline (the card then says what is known)."""
    try:
        statement = svc.capabilities.get(svc.http, tenant.iss, STATEMENT_TIMEOUT,
                                         metadata_headers(tenant))
        fetched = fallback.fetch(svc.http, access, svc.settings, tenant, patient_id,
                                 ("Observation",), today, (), statement=statement)
        check_resources(fetched.resources)
    except (fallback.CannotFetch, MalformedResource):
        return []
    return list(fetched.resources)


def _with_ordered_infusion(inputs: Inputs, order: str, today: Any) -> Inputs:
    """The chart's inputs plus the infusion being ordered, dated today: the order card speaks
    of the dose about to be given (24 on record + this one = the 25th, in the 25–48 band).
    Counted as a record of the order, not as a clinician's override of the count."""
    planned = Infusion(source=order, when=today, status="completed",
                       product="natalizumab (this order)")
    return replace(inputs, infusions=(*inputs.infusions, planned))


# -- feedback ----------------------------------------------------------------------------------


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response | tuple[Response, int]:
    return _feedback(service_id, None)


@bp.post("/t/<slug>/cds-services/<service_id>/feedback")
def tenant_feedback(slug: str, service_id: str) -> Response | tuple[Response, int]:
    _tenant(slug)
    return _feedback(service_id, slug)


def _feedback(service_id: str, slug: str | None) -> Response | tuple[Response, int]:
    """CDS Hooks 2.0 §Feedback: each item is audited (card, outcome, reason code); 200."""
    client = _trusted(service_id, slug)
    if isinstance(client, Response):
        return client
    if service_id not in SERVICES:
        return outcome(404, "not-found", f"No CDS service {service_id[:64]!r}.")
    body = _body()
    items = body.get("feedback")
    if not isinstance(items, list) or not items or len(items) > 100:
        return outcome(400, "structure", 'Expected {"feedback": [ ... ]} with 1–100 items.')
    parsed = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("card"), str) or (
                item.get("outcome") not in ("accepted", "overridden")):
            return outcome(400, "structure", "Each feedback item needs a card uuid and an "
                           "outcome of accepted or overridden.")
        reason = item.get("overrideReason")
        coding = reason.get("reason") if isinstance(reason, dict) else None
        code = coding.get("code") if isinstance(coding, dict) else None
        accepted = item.get("acceptedSuggestions")
        parsed.append({
            "card": item["card"][:64], "outcome": item["outcome"],
            "override_reason": code[:64] if isinstance(code, str) else None,
            "status": (f"{len(accepted)} suggestion(s) accepted"
                       if isinstance(accepted, list) else None),
        })
    for entry in parsed:  # the userComment is free text: never audited
        audit.event("cds.feedback", tenant=client.tenant.name, iss=client.issuer,
                    jti=client.jti, service=service_id, **entry)
    return Response(status=200)


# -- the clinical basis page -------------------------------------------------------------------


@bp.get("/basis")
def basis() -> str:
    """What every card's figure rests on: the table in force, its sources and caveats."""
    table = load_table(_svc().settings.risk_table)
    # The page's evidence panel links here too: the repository's clinical basis follows.
    return render_template("cds_basis.html", table=table, document=doc.load())
