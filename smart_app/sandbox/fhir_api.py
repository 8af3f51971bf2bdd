"""The FHIR R4 REST API: read, search (with paging and _include) and (conditional) create.

Every call needs a live bearer token and is checked against the token's SMART scopes and patient
compartment, because the point of the sandbox is to catch an app that asks for too little or
reaches too far. Policy for a patient-scoped token searching a compartment type *without* a
``patient`` parameter: the search is silently restricted to the token's patient (no 403).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fhir.resources.R4B import get_fhir_model_class
from flask import Blueprint, Response, request
from pydantic import ValidationError

from . import scopes
from .grants_store import TokenRecord
from .state import fhir_base, sandbox_state
from .store import COMPARTMENT_TYPES, Entry, PreconditionFailed, SearchError, patient_of, ref_id

blueprint = Blueprint("sandbox_fhir", __name__)

FHIR_JSON = "application/fhir+json"
DEFAULT_COUNT = 50
MAX_COUNT = 1000
_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
#: ``_include`` parameter names and the reference fields they follow.
_INCLUDE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "medication": ("medicationReference",),
    "patient": ("subject", "patient"),
    "subject": ("subject",),
    "encounter": ("encounter", "context"),
    "performer": ("performer",),
}


class FhirError(Exception):
    """Turned into an OperationOutcome response by the blueprint's error handler."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.headers = dict(headers or {})


def fhir_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    payload = "" if body is None else json.dumps(body, separators=(",", ":"))
    return Response(payload, status=status, headers=dict(headers or {}), mimetype=FHIR_JSON)


def outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


@blueprint.errorhandler(FhirError)
def _fhir_error(error: FhirError) -> Response:
    return fhir_response(outcome(error.code, error.diagnostics), error.status, error.headers)


@blueprint.before_request
def _misbehave() -> Response | None:
    """Apply the latency and queued-failure switches before anything else happens."""
    controls = sandbox_state().controls
    delay = controls.get().latency_ms
    if delay:
        time.sleep(delay / 1000)
    status = controls.take_failure(write=request.method == "POST")
    if status is None:
        return None
    headers = {"Retry-After": "1"} if status == 429 else {}
    return fhir_response(outcome("transient", f"Simulated failure {status}"), status, headers)


def _token() -> TokenRecord:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise FhirError(
            401, "login", "Bearer token required", {"WWW-Authenticate": 'Bearer realm="sandbox"'}
        )
    record = sandbox_state().grants.token(value.strip())
    if record is None or record.is_expired():
        raise FhirError(
            401,
            "login",
            "Unknown or expired access token",
            {
                "WWW-Authenticate": 'Bearer realm="sandbox", error="invalid_token", '
                'error_description="unknown or expired token"'
            },
        )
    return record


def _check_type(resource_type: str) -> None:
    if not _TYPE.match(resource_type):
        raise FhirError(404, "not-found", f"Unknown resource type '{resource_type}'")
    controls = sandbox_state().controls.get()
    if resource_type == "RiskAssessment" and controls.no_risk_assessment:
        raise FhirError(404, "not-supported", "RiskAssessment is not supported by this server")
    if not controls.profile.offers(resource_type):
        raise FhirError(404, "not-supported",
                        f"{resource_type} is not supported by this server "
                        f"(EHR profile {controls.profile.name})")
    if resource_type in controls.not_offered:
        raise FhirError(404, "not-supported", f"{resource_type} is not supported by this server")
    try:
        get_fhir_model_class(resource_type)
    except (ValueError, KeyError) as exc:
        raise FhirError(404, "not-found", f"Unknown resource type '{resource_type}'") from exc


def _level(token: TokenRecord, resource_type: str, perm: str, verb: str) -> str:
    level = scopes.access_level(token.resource_scopes, resource_type, perm)
    if level == "none":
        raise FhirError(403, "forbidden", f"Granted scopes do not allow {verb} of {resource_type}")
    if level == "patient" and resource_type in COMPARTMENT_TYPES and not token.context.patient:
        raise FhirError(403, "forbidden", "Patient-level scope but no patient in context")
    return level


def _in_compartment(token: TokenRecord, level: str, entry: Entry) -> bool:
    if level == "all" or entry.type not in COMPARTMENT_TYPES:
        return True
    return entry.patient is not None and entry.patient == token.context.patient


def _is_fhir_user(token: TokenRecord, resource_type: str, resource_id: str) -> bool:
    """The signed-in user may read their own Practitioner resource with the fhirUser scope."""
    return (
        "fhirUser" in token.scopes
        and resource_type == "Practitioner"
        and resource_id
        == (token.context.practitioner or sandbox_state().config.default_practitioner)
    )


@blueprint.route("/fhir/<resource_type>/<resource_id>", methods=["GET"])
def read(resource_type: str, resource_id: str) -> Response:
    token = _token()
    _check_type(resource_type)
    if _is_fhir_user(token, resource_type, resource_id):
        level = "all"
    else:
        level = _level(token, resource_type, "r", "read")
    entry = (
        sandbox_state().store.get(resource_type, resource_id) if _ID.match(resource_id) else None
    )
    if entry is None:
        raise FhirError(404, "not-found", f"{resource_type}/{resource_id} not found")
    if not _in_compartment(token, level, entry):
        raise FhirError(403, "forbidden", "Resource is outside the token's patient compartment")
    version = entry.resource.get("meta", {}).get("versionId", "1")
    return fhir_response(_as_served(entry.resource), headers={"ETag": f'W/"{version}"'})


def _page_token(offset: int) -> str:
    raw = json.dumps({"offset": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _page_offset(value: str | None) -> int:
    if not value:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        offset = int(data["offset"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FhirError(400, "invalid", "Invalid _page token") from exc
    if offset < 0:
        raise FhirError(400, "invalid", "Invalid _page token")
    return offset


def _count(params: list[tuple[str, str]]) -> int:
    count = DEFAULT_COUNT
    for name, value in params:
        if name == "_count":
            try:
                count = int(value)
            except ValueError as exc:
                raise FhirError(400, "invalid", "_count must be an integer") from exc
            if count < 0:
                raise FhirError(400, "invalid", "_count must not be negative")
        if name == "_summary" and value == "count":
            return 0
    return min(count, MAX_COUNT)


def _guard_patient_params(
    token: TokenRecord, resource_type: str, params: list[tuple[str, str]]
) -> None:
    """A patient-scoped token asking for another patient's data is refused outright."""
    names = ("patient", "subject", "_id") if resource_type == "Patient" else ("patient", "subject")
    for name, value in params:
        if name in names:
            for item in value.split(","):
                if ref_id(item, "Patient") != token.context.patient:
                    raise FhirError(403, "forbidden", "Search reaches outside the token's patient")


def _includes(
    token: TokenRecord, resource_type: str, params: list[tuple[str, str]], page: list[Entry]
) -> list[Entry]:
    store = sandbox_state().store
    found: dict[str, Entry] = {}
    seen = {e.ref for e in page}
    for name, value in params:
        if name != "_include":
            continue
        source, _, target = value.partition(":")
        param = target.split(":", 1)[0]
        if source != resource_type or param not in _INCLUDE_FIELDS:
            raise FhirError(400, "not-supported", f"Unsupported _include '{value}'")
        profile = sandbox_state().controls.get().profile
        if param == "medication" and not profile.lists_include(resource_type):
            raise FhirError(400, "not-supported",
                            f"_include '{value}' is not supported by this server")
        for entry in page:
            for field in _INCLUDE_FIELDS[param]:
                refs = entry.resource.get(field)
                for ref in refs if isinstance(refs, list) else [refs]:
                    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
                        continue
                    hit = store.resolve(ref["reference"])
                    if hit is None or hit.ref in seen or hit.ref in found:
                        continue
                    level = scopes.access_level(token.resource_scopes, hit.type, "r")
                    if level != "none" and _in_compartment(token, level, hit):
                        found[hit.ref] = hit
    return list(found.values())


@blueprint.route("/fhir/<resource_type>", methods=["GET"])
def search(resource_type: str) -> Response:
    token = _token()
    _check_type(resource_type)
    level = _level(token, resource_type, "s", "search")
    params = [(k, v) for k, v in request.args.items(multi=True) if k != "_page"]
    compartment = None
    if level == "patient" and resource_type in COMPARTMENT_TYPES:
        _guard_patient_params(token, resource_type, params)
        compartment = token.context.patient
    profile = sandbox_state().controls.get().profile
    if resource_type in profile.no_identifier_search and any(k == "identifier" for k, _ in params):
        raise FhirError(400, "not-supported",
                        f"Search by identifier is not supported for {resource_type}")
    try:
        matches = sandbox_state().store.search(resource_type, params, compartment)
        if resource_type == "MedicationRequest" and profile.statements_as_requests:
            matches += sandbox_state().store.search(
                "MedicationStatement", [(k, v) for k, v in params if k in _STATEMENT_PARAMS],
                compartment)
        if profile.infusions_as_orders and resource_type == "MedicationAdministration":
            matches = [e for e in matches if not _natalizumab(e.resource)]
        elif profile.infusions_as_orders and resource_type == "MedicationRequest":
            matches += _infusion_orders(params, compartment)
    except SearchError as exc:
        raise FhirError(400, "invalid", str(exc)) from exc
    count = _count(params)
    if profile.max_count is not None:
        count = min(count, profile.max_count)  # the server's page cap: more pages, not fewer
    offset = _page_offset(request.args.get("_page"))
    page = matches[offset : offset + count]
    base = f"{fhir_base()}/{resource_type}"
    links = [{"relation": "self", "url": request.url}]
    if count and offset + count < len(matches):
        query = urlencode([*params, ("_page", _page_token(offset + count))])
        links.append({"relation": "next", "url": f"{base}?{query}"})
    if count and offset > 0:
        query = urlencode([*params, ("_page", _page_token(max(0, offset - count)))])
        links.append({"relation": "previous", "url": f"{base}?{query}"})
    entries: list[dict[str, Any]] = []
    for e in page:
        # Only statements served among MedicationRequests change shape; a server that offers
        # MedicationStatement serves them as they are.
        as_request = e.type == "MedicationStatement" and resource_type == "MedicationRequest"
        served = _as_served(_statement_as_request(e.resource) if as_request else e.resource)
        entries.append({"fullUrl": f"{fhir_base()}/{served['resourceType']}/{served['id']}",
                        "resource": served, "search": {"mode": "match"}})
    conflict = sandbox_state().controls.get().conflict_fields(resource_type)
    if conflict:  # a misbehaving EHR: each match twice, the copies differing, no newer version
        entries += [{**entry, "resource": {**entry["resource"], **conflict}}
                    for entry in list(entries)]
    entries += [
        {"fullUrl": f"{fhir_base()}/{e.ref}", "resource": e.resource, "search": {"mode": "include"}}
        for e in _includes(token, resource_type, params, page)
    ]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(matches),
        "link": links,
        "entry": entries,
    }
    return fhir_response(bundle)


#: Parameters a MedicationRequest search passes on to the statements served among its results.
_STATEMENT_PARAMS = frozenset({"patient", "subject", "code", "_count"})
#: MedicationStatement status -> (MedicationRequest status, intent).
_STATEMENT_STATUS = {
    "active": ("active", "order"),
    "completed": ("completed", "order"),
    "stopped": ("stopped", "order"),
    "on-hold": ("on-hold", "order"),
    "entered-in-error": ("entered-in-error", "order"),
    "not-taken": ("cancelled", "order"),
    "intended": ("active", "plan"),
    "unknown": ("unknown", "order"),
}


def _statement_as_request(statement: dict[str, Any]) -> dict[str, Any]:
    """A medication-list entry as a documented home medication (``reportedBoolean``): what a
    server without MedicationStatement serves instead (``statements_as_requests``)."""
    status, intent = _STATEMENT_STATUS.get(str(statement.get("status")), ("unknown", "order"))
    period = statement.get("effectivePeriod")
    start = (statement.get("effectiveDateTime")
             or (period.get("start") if isinstance(period, dict) else None)
             or statement.get("dateAsserted"))
    request = {
        "resourceType": "MedicationRequest",
        "id": f"ms-{statement['id']}",
        "status": status,
        "intent": intent,
        "reportedBoolean": True,
        "subject": statement.get("subject"),
    }
    for key in ("meta", "medicationCodeableConcept", "medicationReference", "contained"):
        if key in statement:
            request[key] = statement[key]
    if start:
        request["authoredOn"] = start
    return request


_NATALIZUMAB_WORDS = ("354770", "natalizumab", "tysabri", "tyruko")


def _natalizumab(resource: Mapping[str, Any]) -> bool:
    """The record names natalizumab (in its concept, or the Medication it references)."""
    named: Any = resource.get("medicationCodeableConcept")
    ref = resource.get("medicationReference")
    target = ref.get("reference") if isinstance(ref, dict) else None
    if isinstance(target, str) and target.startswith("#"):
        named = [resource.get("contained"), ref]
    elif isinstance(target, str):
        found = sandbox_state().store.resolve(target)
        named = [found.resource if found else None, ref]
    text = json.dumps(named, default=str).lower()
    return any(word in text for word in _NATALIZUMAB_WORDS)


def _infusion_orders(params: list[tuple[str, str]], compartment: str | None) -> list[Entry]:
    """One active natalizumab order (every four weeks) per patient whose administrations
    ``infusions_as_orders`` hides, authored two weeks before the first completed infusion."""
    wanted = [(k, v) for k, v in params if k in ("patient", "subject")]
    given = [e for e in sandbox_state().store.search("MedicationAdministration", wanted,
                                                     compartment)
             if _natalizumab(e.resource) and e.resource.get("status") == "completed"]
    first: dict[str, Entry] = {}
    for e in given:
        when = str(e.resource.get("effectiveDateTime") or "")[:10]
        if e.patient and when and (
                e.patient not in first
                or when < str(first[e.patient].resource.get("effectiveDateTime"))[:10]):
            first[e.patient] = e
    orders = []
    for pid, e in sorted(first.items()):
        start = str(e.resource["effectiveDateTime"])[:10]
        authored = _days_before(start, 14)
        order = {
            "resourceType": "MedicationRequest", "id": f"nat-order-{pid}", "status": "active",
            "intent": "order", "subject": {"reference": f"Patient/{pid}"},
            "authoredOn": authored,
            "medicationCodeableConcept": {"coding": [{
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "354770",
                "display": "natalizumab"}], "text": "Tysabri 300 mg IV every 4 weeks"},
            "dosageInstruction": [{"timing": {"repeat": {"period": 4, "periodUnit": "wk"}}}],
        }
        orders.append(Entry(order, "MedicationRequest", f"nat-order-{pid}", pid, None, 10**9))
    return orders


def _days_before(day: str, days: int) -> str:
    try:
        return (date.fromisoformat(day) - timedelta(days=days)).isoformat()
    except ValueError:
        return day


def _as_served(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as this EHR profile serves it: where medications are not standalone
    resources, the one a ``medicationReference`` names comes contained (``#id``)."""
    if not sandbox_state().controls.get().profile.contained_medications:
        return resource
    ref = resource.get("medicationReference")
    target = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(target, str) or not target.startswith("Medication/"):
        return resource
    medication = sandbox_state().store.resolve(target)
    if medication is None:
        return resource
    local = target.split("/", 1)[1]
    contained = [c for c in resource.get("contained", []) if isinstance(c, dict)]
    contained.append({**medication.resource, "id": local})
    return {**resource, "contained": contained, "medicationReference": {"reference": f"#{local}"}}


def _validate(resource_type: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FhirError(400, "invalid", "Request body must be a JSON FHIR resource")
    if body.get("resourceType") != resource_type:
        raise FhirError(400, "invalid", f"resourceType must be {resource_type}")
    try:
        get_fhir_model_class(resource_type).model_validate(body)
    except ValidationError as exc:
        raise FhirError(400, "invalid", f"Invalid {resource_type}: {exc}") from exc
    return body


#: Oracle Health's DocumentReference create: the MIME types it lists (with or without
#: ``;charset=utf-8``, written exactly so: no space, lower case).
ORACLE_NOTE_TYPES = frozenset(
    variant
    for kind in ("application/pdf", "text/plain", "text/richtext", "text/rtf", "text/html",
                 "application/xml", "application/xhtml+xml")
    for variant in (kind, f"{kind};charset=utf-8")
)
#: R4 DocumentReference fields Oracle Health's create does not take.
ORACLE_UNSUPPORTED = ("identifier", "category", "date", "description")


def _note_as_filed(resource: dict[str, Any], patient: str | None) -> dict[str, Any]:
    """A DocumentReference create as the EHR profile files it, or the vendor's refusal (422).

    ``patient``: the note's patient (its subject); its encounter must be that patient's.
    """
    profile = sandbox_state().controls.get().profile
    if profile.strict_note_create:
        extra = [k for k in ORACLE_UNSUPPORTED if k in resource]
        if extra:
            raise FhirError(422, "processing", "Body contained unsupported fields: "
                            + ", ".join(extra))
        content = resource.get("content") or []
        if len(content) != 1:
            raise FhirError(422, "processing", "content must contain exactly one attachment")
        kind = (content[0].get("attachment") or {}).get("contentType")
        if kind not in ORACLE_NOTE_TYPES:
            raise FhirError(422, "processing",
                            f"content.attachment.contentType {kind!r} is not supported")
        period = (resource.get("context") or {}).get("period") or {}
        if not period.get("end"):
            raise FhirError(422, "processing", "context.period.end is required")
    if profile.notes_need_encounter:
        refs = (resource.get("context") or {}).get("encounter") or []
        target = refs[0].get("reference") if len(refs) == 1 and isinstance(refs[0], dict) else None
        found = sandbox_state().store.resolve(target) if isinstance(target, str) else None
        if found is None or found.resource.get("resourceType") != "Encounter":
            raise FhirError(422, "processing",
                            "context.encounter is required: a note is filed within an encounter")
        if patient_of(found.resource) != patient:
            raise FhirError(422, "processing",
                            "context.encounter must be an encounter of the note's patient")
    if profile.drops_note_identifier:
        resource = {k: v for k, v in resource.items() if k != "identifier"}
    return resource


@blueprint.route("/fhir/<resource_type>", methods=["POST"])
def create(resource_type: str) -> Response:
    """Create, or conditionally create with ``If-None-Exist`` (0 -> 201, 1 -> 200, >1 -> 412).

    What is creatable, whether ``If-None-Exist`` is honoured and the shape of the answer come
    from the EHR profile (``profiles.py``); a type the profile cannot create is a 405.
    """
    token = _token()
    _check_type(resource_type)
    profile = sandbox_state().controls.get().profile
    if not profile.can_create(resource_type):
        raise FhirError(405, "not-supported",
                        f"This server does not support create of {resource_type} "
                        f"(EHR profile {profile.name})", {"Allow": "GET"})
    level = _level(token, resource_type, "c", "create")
    body = _validate(resource_type, request.get_json(force=True, silent=True))
    resource = {k: v for k, v in body.items() if k != "id"}
    if resource_type in COMPARTMENT_TYPES:
        subject = patient_of(resource)
        must_be = token.context.patient
        if (level == "patient" or must_be) and subject != must_be:
            raise FhirError(403, "forbidden", "The resource's patient must be the token's patient")
    if resource_type == "DocumentReference":
        resource = _note_as_filed(resource, patient_of(resource))
    store = sandbox_state().store
    condition = request.headers.get("If-None-Exist") if profile.conditional_create else None
    try:
        if condition:
            criteria = parse_qsl(condition.lstrip("?"), keep_blank_values=True)
            if not criteria:
                raise FhirError(400, "invalid", "Empty If-None-Exist")
            compartment = token.context.patient if level == "patient" else None
            entry, created = store.conditional_create(resource, criteria, compartment)
        else:
            entry, created = store.create(resource), True
    except SearchError as exc:
        raise FhirError(400, "invalid", f"If-None-Exist: {exc}") from exc
    except PreconditionFailed as exc:
        raise FhirError(412, "duplicate", str(exc)) from exc
    meta = entry.resource.get("meta", {})
    version = meta.get("versionId", "1")
    headers = {
        "Location": f"{fhir_base()}/{entry.ref}/_history/{version}",
        "ETag": f'W/"{version}"',
    }
    if meta.get("lastUpdated"):
        headers["Last-Modified"] = meta["lastUpdated"]
    prefer = request.headers.get("Prefer", "")
    if profile.create_answer == "empty" or "return=minimal" in prefer:
        body_out: Any = None
    elif "return=OperationOutcome" in prefer:
        body_out = outcome("informational", "Created" if created else "Exists", "information")
    else:
        body_out = entry.resource
    return fhir_response(body_out, 201 if created else 200, headers)
