"""The CDS Hooks 2.0 routes (a Flask blueprint on the app's service seam and tenant registry).

* ``GET  /cds-services``                        discovery (the app's own prefetch templates)
* ``GET  /t/<slug>/cds-services``               discovery with the tenant's templates
* ``POST [/t/<slug>]/cds-services/<id>``        a hook call → ``{"cards": [...]}``
* ``POST [/t/<slug>]/cds-services/<id>/feedback`` card feedback → 200, audited
* ``GET  /basis``                               the clinical basis page the cards link to

Discovery is public (it holds no patient data and the EHR's registration tools read it); every
other route needs the EHR's signed JWT (``trust.py``) and answers a bare 401 without it. Errors
are OperationOutcomes (the CDS Hooks 3.0 shape): 400 for a malformed call, 412 when data the
estimate needs is neither prefetched nor readable. CORS is open because browser-based CDS
clients exist and no cookie is ever involved: the JWT is the only credential.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.wrappers import Response

from ..config import Settings, Tenant
from ..fhir.capability import metadata_headers
from ..fhir.extract import ForeignResourceError
from ..ops import audit
from ..risk.records import MRI_SOURCES
from ..risk.tables import load_table
from ..service import assess_chart
from ..web.page import doc
from ..web.services import EXTENSION, Services
from . import cards, fallback, prefetch
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


def _body() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


@bp.post("/cds-services/<service_id>")
def call(service_id: str) -> Response | tuple[Response, int]:
    return _call(service_id, None)


@bp.post("/t/<slug>/cds-services/<service_id>")
def tenant_call(slug: str, service_id: str) -> Response | tuple[Response, int]:
    _tenant(slug)
    return _call(service_id, slug)


def _today(settings: Settings) -> Any:
    return datetime.now(ZoneInfo(settings.timezone)).date()


def _call(service_id: str, slug: str | None) -> Response | tuple[Response, int]:
    client = _trusted(service_id, slug)
    if isinstance(client, Response):
        return client
    service = SERVICES.get(service_id)
    if service is None:
        return outcome(404, "not-found", f"No CDS service {service_id[:64]!r}.")
    svc = _svc()
    settings, tenant = svc.settings, client.tenant
    who: dict[str, Any] = {"tenant": tenant.name, "iss": client.issuer, "jti": client.jti,
                           "service": service.id}
    body = _body()
    if body is None:
        return outcome(400, "structure", "The request body must be a JSON object.")
    hook = body.get("hook")
    context = body.get("context")
    if hook not in service.hooks:
        return outcome(400, "not-supported", f"Service {service.id} answers "
                       f"{' and '.join(service.hooks)} only.")
    if not isinstance(context, dict) or not isinstance(context.get("patientId"), str) or (
            not _ID.fullmatch(context["patientId"])):
        return outcome(400, "required", "context.patientId is required.")
    patient_id = context["patientId"]
    instance = body.get("hookInstance")
    user = context.get("userId")
    who.update(hook=hook, patient=patient_id,
               hook_instance=instance[:64] if isinstance(instance, str) else None,
               user=user if isinstance(user, str) and _USER.fullmatch(user) else None)
    order = service.id == _ORDER
    if order and not natalizumab_orders(context, str(hook), settings.codes):
        audit.event("cds.call", **who, cards=0, status="no-natalizumab-order")
        return jsonify({"cards": []})
    today = _today(settings)
    try:
        got = prefetch.read(body.get("prefetch"), patient_id, tenant.iss,
                            prefetch.keys(settings, tenant), prefetch.labs_since(settings, today))
    except prefetch.ForeignPrefetch:
        audit.event("cds.call", **who, error="foreign-prefetch", http_status=400)
        return outcome(400, "invalid", "The prefetch holds resources of another patient; "
                       "nothing was assessed.")
    resources = list(got.resources)
    statuses = dict(got.status)
    access = fallback.access(body.get("fhirServer"), body.get("fhirAuthorization"), tenant.iss,
                             patient_id)
    round_trips = 0
    unread: tuple[str, ...] = ()
    if got.missing or (isinstance(access, fallback.FhirAccess)
                       and fallback.unresolved_medications(resources, tenant.iss)):
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
            if got.missing:
                audit.event("cds.call", **who, prefetch=statuses, error=exc.reason,
                            http_status=412)
                missing = ", ".join(got.missing)
                return outcome(412, "incomplete", f"Prefetch {missing} not provided and "
                               f"cannot be read: {exc.message}.")
            fetched = fallback.Fetched((), 0, 0)  # only Medications were wanted: best effort
        resources.extend(fetched.resources)
        round_trips, unread = fetched.round_trips, fetched.unread
        statuses.update({k: f"fetched ({statuses[k]})" for k in got.missing
                         if got.types[k] not in fetched.not_offered})
        statuses.update({k: f"not offered ({statuses[k]})" for k in got.missing
                         if got.types[k] in fetched.not_offered})
        not_offered_here = fetched.not_offered
    else:
        not_offered_here = ()
    offered = [t for t in prefetch.chart_types(tenant) if t not in not_offered_here]
    try:
        chart = assess_chart(resources, patient_id, at=today, settings=settings,
                             table=load_table(settings.risk_table), resource=False,
                             unread=unread,
                             # The prefetch carries no imaging: the MRI history is unknown.
                             not_offered=[*(t for t in prefetch.CHART_TYPES if t not in offered),
                                          *MRI_SOURCES])
    except ForeignResourceError:
        audit.event("cds.call", **who, error="foreign-resource", http_status=400)
        return outcome(400, "invalid", "The data holds resources of another patient; nothing "
                       "was assessed.")
    cds = tenant.cds
    assert cds is not None
    links = cards.CardLinks(launch_url=f"{settings.base_url}/launch",
                            basis_url=cds.basis_url or f"{settings.base_url}/basis")
    card = cards.card(chart.assessment, links, order=order, jcv_order=cds.jcv_order,
                      mri_order=cds.mri_order)
    audit.event("cds.call", **who, prefetch=statuses, round_trips=round_trips, cards=1,
                card=card["uuid"], status=chart.status, table=chart.assessment.table_id)
    return jsonify({"cards": [card]})


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
    items = body.get("feedback") if body is not None else None
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
