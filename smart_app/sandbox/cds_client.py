"""The sandbox EHR as a CDS Hooks 2.0 client.

Opening a patient's chart (``/chart/<patient>``) fires ``patient-view`` at the configured CDS
service, as an EHR does, and shows the cards beside the chart; "Order natalizumab" fires
``order-select`` and then ``order-sign`` with a draft MedicationRequest. Each call carries a JWT
signed with the sandbox's own ES384 key (published at ``/cds/jwks.json``), the prefetch the
service's discovery document asks for (run against the sandbox's own FHIR API), and a
``fhirAuthorization`` minted for the patient. A card's SMART link goes through
``/cds/launch``, which launches the app with the link's ``appContext`` in the token response.

Knobs (query parameters of the chart page, or fields of ``POST /_cds``) make the client
misbehave the ways real EHRs and attackers do:

* ``prefetch``: ``full`` | ``partial`` (Patient and Observations only) | ``null`` (every search
  ``null``: "no data") | ``failed`` (every key an OperationOutcome) | ``absent`` (none sent);
* ``jwt``: ``ok`` | ``replay`` (the same token sent twice; the second answer is reported) |
  ``wrong-aud`` | ``foreign-key`` (signed by a key the JWKS does not hold, same ``kid``) |
  ``none`` (no Authorization header);
* ``fhir``: ``own`` (``fhirServer`` = this sandbox, with a token) | ``other`` (another server's
  URL with the token) | ``none`` (no ``fhirServer``/``fhirAuthorization``);
* ``drug`` (order hooks): ``natalizumab`` | ``other`` (atorvastatin: the service stays silent);
* ``order_by`` (order hooks): ``code`` (``medicationCodeableConcept``) | ``reference`` (a
  ``Medication`` in the same ``draftOrders`` Bundle) | ``display`` (only
  ``medicationReference.display``, as some EHRs send an order they have not coded);
* ``scope``: how ``fhirAuthorization.scope`` is written: ``smart`` (SMART scopes) | ``epic``
  (Epic's API names, "Observation.Read (Labs) (R4) …"; the token allows the same reads). The
  ``epic-like`` profile always writes it the Epic way.

``POST /_cds`` (only with ``allow_control``) fires one hook, or sends feedback, and returns the
service's status and body plus how many FHIR resource requests (not discovery or
``/metadata``) the service made during the call.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode

import requests
from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import ECKey
from werkzeug.wrappers import Response as WerkzeugResponse

from .grants_store import LaunchContext, TokenRecord
from .state import fhir_base, resolve_origin_relative, root_url, sandbox_state

EXTENSION_KEY = "sandbox_cds"
ALG = "ES384"
JWT_LIFETIME = 300  # seconds, as the public CDS Hooks sandbox signs them
PREFETCH_CLIENT = "sandbox-cds-prefetch"
SERVICE_CLIENT = "pml-risk-cds"  # the ``subject`` of fhirAuthorization
SERVICE_SCOPES = ("patient/Patient.r patient/Observation.rs patient/MedicationAdministration.rs "
                  "patient/MedicationStatement.rs patient/MedicationRequest.rs "
                  "patient/Medication.rs")
OTHER_FHIR_SERVER = "http://127.0.0.1:9/fhir"  # loopback discard port: never a real server
WRONG_AUDIENCE = "https://cds.example.org/cds-services"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
DRUGS: Mapping[str, dict[str, Any]] = {
    "natalizumab": {"coding": [{"system": RXNORM, "code": "354770", "display": "natalizumab"}],
                    "text": "Natalizumab 300 mg IV infusion every 4 weeks"},
    "other": {"coding": [{"system": RXNORM, "code": "83367", "display": "atorvastatin"}],
              "text": "Atorvastatin 20 mg tablet daily"},
}
KNOBS: Mapping[str, tuple[str, ...]] = {
    "prefetch": ("full", "partial", "null", "failed", "absent"),
    "jwt": ("ok", "replay", "wrong-aud", "foreign-key", "none"),
    "fhir": ("own", "other", "none"),
    "drug": ("natalizumab", "other"),
    "order_by": ("code", "reference", "display"),
    "scope": ("smart", "epic"),
}
#: Epic's documented form of a CDS Hooks fhirAuthorization scope (API names, not SMART).
EPIC_SCOPES = ("Patient.Read (R4) Observation.Read (Labs) (R4) Observation.Search (Labs) (R4) "
               "MedicationAdministration.Search (R4) MedicationRequest.Search (Signed "
               "Medication Order) (R4) Medication.Read (R4) Medication.Search (R4)")
HOOKS = ("patient-view", "order-select", "order-sign")
DRAFT_ID = "draft-natalizumab-1"

blueprint = Blueprint("sandbox_cds", __name__)


def _new_key() -> ECKey:
    return ECKey.generate_key("P-384", parameters={"alg": ALG, "use": "sig"}, private=True,
                              auto_kid=True)


@dataclass
class CdsClientState:
    """The client's signing key, a key it never publishes, and its HTTP session."""

    key: ECKey
    foreign: ECKey
    http: requests.Session = field(default_factory=requests.Session)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.http.trust_env = False  # loopback only: never through an environment proxy


def init(app: Flask, signing_key: Mapping[str, Any] | None) -> None:
    key = ECKey.import_key(dict(signing_key)) if signing_key is not None else _new_key()
    # The foreign key carries the real kid: only the signature can tell them apart.
    foreign = ECKey.generate_key("P-384", parameters={"alg": ALG, "use": "sig",
                                                      "kid": str(key.kid)}, private=True)
    app.extensions[EXTENSION_KEY] = CdsClientState(key=key, foreign=foreign)
    app.register_blueprint(blueprint)


def _client() -> CdsClientState:
    found: CdsClientState = current_app.extensions[EXTENSION_KEY]
    return found


def client_issuer() -> str:
    """The ``iss`` of the client's JWTs: the sandbox's own base URL (without a final /)."""
    configured = sandbox_state().config.cds_issuer
    return configured.rstrip("/") if configured else root_url().rstrip("/")


def services_base() -> str | None:
    configured = sandbox_state().config.cds_services
    return resolve_origin_relative(configured).rstrip("/") if configured else None


@blueprint.route("/cds/jwks.json")
def jwks() -> Response:
    response = jsonify({"keys": [_client().key.as_dict(private=False)]})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# -- the client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Knobs:
    prefetch: str = "full"
    jwt: str = "ok"
    fhir: str = "own"
    drug: str = "natalizumab"
    order_by: str = "code"
    scope: str = "smart"

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> Knobs:
        chosen = {}
        for name, allowed in KNOBS.items():
            value = values.get(name, allowed[0])
            if value not in allowed:
                raise ValueError(f"{name}: expected one of {', '.join(allowed)}")
            chosen[name] = str(value)
        return cls(**chosen)


@dataclass(frozen=True)
class HookResult:
    hook: str
    service: str | None
    endpoint: str | None
    status: int  # 0: the service could not be reached
    body: Any
    service_fhir_requests: int = 0
    elapsed_ms: float = 0.0
    error: str = ""


def sign(aud: str, *, key: ECKey | None = None, lifetime: int = JWT_LIFETIME) -> str:
    """A CDS client JWT for ``aud`` (CDS Hooks 2.0 §Trusting CDS Clients)."""
    client = _client()
    signer = key or client.key
    now = int(time.time())
    header = {"alg": ALG, "typ": "JWT", "kid": client.key.kid,
              "jku": f"{root_url()}cds/jwks.json"}
    claims = {"iss": client_issuer(), "sub": "sandbox-ehr", "aud": aud, "iat": now,
              "exp": now + lifetime, "jti": secrets.token_urlsafe(18)}
    return jwt.encode(header, claims, signer, algorithms=[ALG])


def _mint(client_id: str, scope: str, patient: str, lifetime: int = 300) -> str:
    token = secrets.token_urlsafe(32)
    now = time.time()
    sandbox_state().grants.save_token(TokenRecord(
        access_token=token, refresh_token=None, client_id=client_id, scope=scope,
        context=LaunchContext(patient=patient), issued_at=now, expires_at=now + lifetime,
        refresh_expires_at=now))
    return token


_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")


def _fill(template: str, tokens: Mapping[str, str]) -> str | None:
    """A prefetch template with its tokens replaced; None when one is unknown."""
    missing = [t for t in _TOKEN.findall(template) if t not in tokens]
    if missing:
        return None
    return _TOKEN.sub(lambda m: tokens[m.group(1)], template)


def _prefetch(templates: Mapping[str, Any], patient: str, user: str,
              mode: str) -> dict[str, Any] | None:
    if mode == "absent":
        return None
    if mode == "failed":
        return {key: {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "timeout", "diagnostics": "prefetch query timed out"}]}
            for key in templates}
    tokens = {"context.patientId": patient, "context.userId": user,
              "userPractitionerId": user.split("/", 1)[-1]}
    token = _mint(PREFETCH_CLIENT, "patient/*.rs", patient)
    base = fhir_base()
    found: dict[str, Any] = {}
    for key, template in templates.items():
        if not isinstance(template, str):
            continue
        if mode == "partial" and not template.startswith(("Patient/", "Observation?")):
            continue  # only the Patient and the Observation searches are fulfilled
        query = _fill(template, tokens)
        if query is None:
            continue
        if mode == "null" and not query.startswith("Patient/"):
            found[key] = None
            continue
        resp = _client().http.get(f"{base}/{query}", timeout=30,
                                  headers={"Authorization": f"Bearer {token}",
                                           "Accept": "application/fhir+json"})
        found[key] = resp.json()  # a failure is an OperationOutcome, sent as such
    return found


def _draft_order(patient: str, drug: str, order_by: str = "code") -> dict[str, Any]:
    request: dict[str, Any] = {
        "resourceType": "MedicationRequest", "id": DRAFT_ID, "status": "draft",
        "intent": "order", "subject": {"reference": f"Patient/{patient}"},
        "dosageInstruction": [{"text": DRUGS[drug]["text"]}],
    }
    entries = [{"resource": request}]
    if order_by == "code":
        request["medicationCodeableConcept"] = DRUGS[drug]
    elif order_by == "reference":
        request["medicationReference"] = {"reference": f"Medication/{DRAFT_ID}-med"}
        entries.append({"resource": {"resourceType": "Medication", "id": f"{DRAFT_ID}-med",
                                     "code": DRUGS[drug]}})
    else:
        request["medicationReference"] = {"display": DRUGS[drug]["text"]}
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _service_for(hook: str, base: str) -> tuple[str, Mapping[str, Any]] | str:
    """(service id, its prefetch templates) from the discovery document, or an error."""
    try:
        resp = _client().http.get(base, timeout=30)
        services = resp.json()["services"] if resp.status_code == 200 else None
    except (requests.RequestException, ValueError, KeyError, TypeError):
        services = None
    if not isinstance(services, list):
        return f"the CDS discovery document at {base} could not be read"
    for item in services:
        if isinstance(item, dict) and item.get("hook") == hook and isinstance(item.get("id"), str):
            templates = item.get("prefetch")
            return item["id"], templates if isinstance(templates, dict) else {}
    return f"no CDS service for {hook}"


def _log_size() -> int:
    return len(sandbox_state().controls.snapshot())


def _fhir_requests_since(mark: int) -> int:
    prefix = f"{request.script_root}/fhir/"
    return sum(1 for r in sandbox_state().controls.snapshot()[mark:]
               if r["path"].startswith(prefix) and ".well-known" not in r["path"]
               and not r["path"].endswith("/metadata"))


def fire(hook: str, patient: str, knobs: Knobs, base: str | None = None) -> HookResult:
    """Fire ``hook`` for ``patient`` at the configured CDS service (or ``base``)."""
    base = base or services_base()
    if base is None:
        return HookResult(hook, None, None, 0, None, error="no CDS service is configured")
    found = _service_for(hook, base)
    if isinstance(found, str):
        return HookResult(hook, None, None, 0, None, error=found)
    service_id, templates = found
    endpoint = f"{base}/{service_id}"
    user = f"Practitioner/{sandbox_state().config.default_practitioner}"
    context: dict[str, Any] = {"userId": user, "patientId": patient}
    if hook != "patient-view":
        context["draftOrders"] = _draft_order(patient, knobs.drug, knobs.order_by)
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{DRAFT_ID}"]
    body: dict[str, Any] = {"hookInstance": str(uuid.uuid4()), "hook": hook, "context": context}
    if knobs.fhir != "none":
        body["fhirServer"] = fhir_base() if knobs.fhir == "own" else OTHER_FHIR_SERVER
        body["fhirAuthorization"] = {
            "access_token": _mint(SERVICE_CLIENT, SERVICE_SCOPES, patient),
            "token_type": "Bearer", "expires_in": 300,
            "scope": EPIC_SCOPES if knobs.scope == "epic" or (
                sandbox_state().config.ehr_profile == "epic-like") else SERVICE_SCOPES,
            "subject": SERVICE_CLIENT, "patient": patient,
        }
    filled = _prefetch(templates, patient, user, knobs.prefetch)
    if filled is not None:
        body["prefetch"] = filled
    client = _client()
    if knobs.jwt == "none":
        headers = {}
    else:
        token = sign(WRONG_AUDIENCE if knobs.jwt == "wrong-aud" else endpoint,
                     key=client.foreign if knobs.jwt == "foreign-key" else None)
        headers = {"Authorization": f"Bearer {token}"}
    sends = 2 if knobs.jwt == "replay" else 1
    resp: requests.Response | None = None
    mark = _log_size()
    started = time.perf_counter()
    for _ in range(sends):
        if sends == 2:  # the replay's first call is the genuine one: its effects don't count
            mark = _log_size()
            started = time.perf_counter()
        try:
            resp = client.http.post(endpoint, json=body, headers=headers, timeout=30)
        except requests.RequestException as exc:
            return HookResult(hook, service_id, endpoint, 0, None,
                              error=f"the CDS service could not be reached ({type(exc).__name__})")
    assert resp is not None
    elapsed = (time.perf_counter() - started) * 1000
    try:
        answer: Any = resp.json() if resp.content else None
    except ValueError:
        answer = None
    return HookResult(hook, service_id, endpoint, resp.status_code, answer,
                      _fhir_requests_since(mark), round(elapsed, 1))


def send_feedback(service_endpoint: str, card: str, outcome: str,
                  reason: str | None = None) -> int:
    """POST one feedback item for ``card`` to ``{service}/feedback``; returns the status."""
    item: dict[str, Any] = {"card": card, "outcome": outcome,
                            "outcomeTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                              time.gmtime())}
    if outcome == "overridden" and reason:
        item["overrideReason"] = {"reason": {
            "code": reason,
            "system": "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"}}
    url = f"{service_endpoint}/feedback"
    resp = _client().http.post(url, json={"feedback": [item]}, timeout=30,
                               headers={"Authorization": f"Bearer {sign(url)}"})
    return resp.status_code


# -- control endpoint ------------------------------------------------------------------------


@blueprint.route("/_cds", methods=["POST"])
def control() -> tuple[Response, int] | Response:
    """Fire a hook (``{"hook", "patient", knobs...}``) or send feedback
    (``{"feedback": {"service", "card", "outcome", "reason"?}}``); test harness only."""
    if not sandbox_state().config.allow_control:
        return jsonify({"error": "control endpoint disabled"}), 404
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return jsonify({"error": "expected a JSON object"}), 400
    if "feedback" in data:
        fb = data["feedback"]
        base = data.get("services") or services_base()
        if not isinstance(fb, dict) or not base:
            return jsonify({"error": "feedback: expected an object and a CDS service"}), 400
        status = send_feedback(f"{base}/{fb.get('service')}", str(fb.get("card")),
                               str(fb.get("outcome")), fb.get("reason"))
        return jsonify({"status": status})
    hook, patient = data.get("hook"), data.get("patient")
    if hook not in HOOKS or not isinstance(patient, str):
        return jsonify({"error": f"hook: one of {', '.join(HOOKS)}; patient: an id"}), 400
    try:
        knobs = Knobs.parse(data)
    except ValueError as exc:
        return jsonify({"error": str(exc)}), 400
    base = data.get("services")
    result = fire(hook, patient, knobs, resolve_origin_relative(base) if base else None)
    return jsonify({"status": result.status, "body": result.body, "service": result.service,
                    "endpoint": result.endpoint, "serviceFhirRequests":
                    result.service_fhir_requests, "elapsedMs": result.elapsed_ms,
                    "error": result.error})


# -- the chart page and the card link --------------------------------------------------------


@blueprint.route("/cds/launch")
def card_launch() -> WerkzeugResponse | tuple[Response, int]:
    """A card's ``smart`` link: launch its URL with ``appContext`` in the launch context.

    Like Oracle's registered "allowed links", only the app's registered launch URL is
    launched; any other URL is refused rather than handed a launch handle.
    """
    state = sandbox_state()
    url = request.args.get("url", "")
    patient = request.args.get("patient", "")
    allowed = resolve_origin_relative(state.config.launch_url)
    if url != allowed:
        return jsonify({"error": "this link is not a registered SMART launch URL"}), 400
    if state.store.get("Patient", patient) is None:
        return jsonify({"error": f"unknown patient '{patient}'"}), 404
    app_context = request.args.get("appContext") or None
    handle = state.grants.new_launch(
        LaunchContext(patient=patient, practitioner=state.config.default_practitioner,
                      app_context=app_context),
        state.config.launch_lifetime)
    separator = "&" if "?" in url else "?"
    return redirect(f"{url}{separator}{urlencode({'iss': fhir_base(), 'launch': handle})}",
                    code=302)


@blueprint.route("/cds/feedback", methods=["POST"])
def feedback_form() -> WerkzeugResponse:
    """The chart page's "Accept" and "Dismiss" buttons: send feedback, then go back."""
    form = request.form
    endpoint, patient = form.get("endpoint", ""), form.get("patient", "")
    base = services_base() or ""
    if not endpoint.startswith(base + "/") or not base:
        return Response("unknown CDS service", status=400, mimetype="text/plain")
    status = send_feedback(endpoint, form.get("card", ""), form.get("outcome", "accepted"),
                           form.get("reason"))
    query = urlencode({"feedback": status})
    return redirect(f"{root_url()}chart/{patient}?{query}", code=303)


_ESCAPED = re.compile(r"(\\[\\`*_\[\]<>|#~]|\*\*)")


def _inline(text: str) -> str:
    out, bold = [], False
    for part in _ESCAPED.split(text):
        if part == "**":
            out.append("</strong>" if bold else "<strong>")
            bold = not bold
        elif len(part) == 2 and part[0] == "\\":
            out.append(escape(part[1]))
        else:
            out.append(escape(part))
    if bold:
        out.append("</strong>")
    return "".join(out)


def markdown(text: str) -> str:
    """The subset of GitHub Markdown cards use (paragraphs, bold, lists, tables), escaped."""
    html: list[str] = []
    block: str | None = None
    for line in text.splitlines() + [""]:
        kind = "table" if line.startswith("|") else "list" if line.startswith("- ") else (
            "p" if line.strip() else None)
        if kind != block and block is not None:
            html.append({"table": "</table>", "list": "</ul>", "p": ""}[block])
        if kind == "table":
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if all(set(c) <= {"-", ":"} for c in cells):
                block = kind
                continue
            tag = "th" if block != "table" else "td"
            if block != "table":
                html.append("<table>")
            html.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells)
                        + "</tr>")
        elif kind == "list":
            if block != "list":
                html.append("<ul>")
            html.append(f"<li>{_inline(line[2:])}</li>")
        elif kind == "p":
            html.append(f"<p>{_inline(line)}</p>")
        block = kind
    return "\n".join(html)


def _card_html(card: Mapping[str, Any], patient: str, endpoint: str | None) -> str:
    indicator = str(card.get("indicator", "info"))
    parts = [f'<article class="cds-card {escape(indicator)}" data-indicator="{escape(indicator)}"'
             f' data-uuid="{escape(str(card.get("uuid", "")))}">',
             f'<h3 class="summary">{escape(str(card.get("summary", "")))}</h3>']
    source = card.get("source")
    if isinstance(source, dict):
        parts.append(f'<p class="source">Source: {escape(str(source.get("label", "")))}</p>')
    if isinstance(card.get("detail"), str):
        parts.append(f'<div class="detail">{markdown(card["detail"])}</div>')
    for link in card.get("links") or ():
        if not isinstance(link, dict) or not str(link.get("url", "")).startswith(
                ("http://", "https://")):
            continue
        label = escape(str(link.get("label", "link")))
        if link.get("type") == "smart":
            href = f"{root_url()}cds/launch?" + urlencode({
                "patient": patient, "url": link["url"],
                **({"appContext": link["appContext"]} if link.get("appContext") else {})})
            parts.append(f'<a class="card-link smart" href="{escape(href)}">{label}</a>')
        else:
            parts.append(f'<a class="card-link absolute" href="{escape(str(link["url"]))}" '
                         f'target="_blank" rel="noopener noreferrer">{label}</a>')
    for suggestion in card.get("suggestions") or ():
        if isinstance(suggestion, dict):
            parts.append(f'<p class="suggestion">Suggestion: '
                         f'{escape(str(suggestion.get("label", "")))}</p>')
    if endpoint and card.get("uuid"):
        fields = (f'<input type="hidden" name="endpoint" value="{escape(endpoint)}">'
                  f'<input type="hidden" name="patient" value="{escape(patient)}">'
                  f'<input type="hidden" name="card" value="{escape(str(card["uuid"]))}">')
        reasons = "".join(
            f'<option value="{escape(str(r.get("code", "")))}">'
            f'{escape(str(r.get("display", "")))}</option>'
            for r in card.get("overrideReasons") or () if isinstance(r, dict))
        parts.append(
            f'<form method="post" action="{root_url()}cds/feedback" class="feedback">{fields}'
            '<button name="outcome" value="accepted">Accept</button>'
            + (f'<select name="reason" aria-label="Override reason">{reasons}</select>'
               if reasons else "")
            + '<button name="outcome" value="overridden">Dismiss</button></form>')
    parts.append("</article>")
    return "\n".join(parts)


def _result_html(result: HookResult, patient: str) -> str:
    head = f'<h2>CDS: {escape(result.hook)}</h2>'
    if result.error:
        return head + f'<p class="cds-error" role="alert">{escape(result.error)}</p>'
    if result.status != 200:
        detail = ""
        if isinstance(result.body, dict):
            issues = result.body.get("issue") or []
            detail = "; ".join(str(i.get("diagnostics", "")) for i in issues
                               if isinstance(i, dict))
        return head + (f'<p class="cds-error" role="alert" data-status="{result.status}">'
                       f'The CDS service answered {result.status}'
                       + (f": {escape(detail)}" if detail else "") + "</p>")
    cards = result.body.get("cards", []) if isinstance(result.body, dict) else []
    if not cards:
        return head + '<p class="no-cards">No cards.</p>'
    return head + "\n".join(_card_html(c, patient, result.endpoint) for c in cards
                            if isinstance(c, dict))


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem; color: #222; }
.layout { display: grid; grid-template-columns: minmax(0, 3fr) minmax(18rem, 2fr); gap: 1.5rem; }
.cds-card { border: 1px solid #999; border-left: 6px solid #3b73b9; padding: .5rem .8rem;
  margin-bottom: 1rem; background: #fff; }
.cds-card.warning { border-left-color: #c77700; }
.cds-card.critical { border-left-color: #b00020; }
.cds-card table { border-collapse: collapse; font-size: .85rem; width: 100%;
  table-layout: fixed; overflow-wrap: anywhere; }
.card-link { margin-right: .8rem; }
.cds-card td, .cds-card th { border: 1px solid #ccc; padding: 2px 4px; text-align: left; }
.cds-error { color: #8a1c1c; }
table.chart { border-collapse: collapse; }
table.chart td, table.chart th { border-bottom: 1px solid #ddd; padding: 2px 6px; }
form.knobs label { margin-right: .8rem; }
"""


def _chart_html(patient: str) -> str:
    store = sandbox_state().store
    entry = store.get("Patient", patient)
    resource = entry.resource if entry else {}
    names = resource.get("name") or [{}]
    name = names[0].get("text") or " ".join(
        [*names[0].get("given", []), names[0].get("family", "")]).strip() or patient
    labs = store.search("Observation", [], compartment=patient)[-15:]
    rows = []
    for lab in reversed(labs):
        r = lab.resource
        code = r.get("code") or {}
        label = code.get("text") or next((c.get("display") for c in code.get("coding", [])
                                          if isinstance(c, dict)), "")
        value = r.get("valueQuantity", {}).get("value") if isinstance(
            r.get("valueQuantity"), dict) else (r.get("valueCodeableConcept") or {}).get("text")
        when = r.get("effectiveDateTime") or r.get("issued") or ""
        rows.append(f"<tr><td>{escape(str(when)[:10])}</td><td>{escape(str(label))}</td>"
                    f"<td>{escape('' if value is None else str(value))}</td>"
                    f"<td>{escape(str(r.get('status', '')))}</td></tr>")
    infusions = store.search("MedicationAdministration", [], compartment=patient)
    return (f'<h1 id="patient-name">{escape(name)}</h1>'
            f'<p>Born {escape(str(resource.get("birthDate", "?")))}, '
            f'{escape(str(resource.get("gender", "")))} · id {escape(patient)}</p>'
            f"<p>Medication administrations on record: {len(infusions)}</p>"
            '<h2>Recent laboratory results</h2><table class="chart"><tr><th>Date</th>'
            "<th>Test</th><th>Value</th><th>Status</th></tr>" + "".join(rows) + "</table>")


@blueprint.route("/chart/<patient>")
def chart(patient: str) -> tuple[Response, int] | Response:
    """The patient's chart; opening it fires patient-view, ``?order=select|sign`` the orders."""
    state = sandbox_state()
    if state.store.get("Patient", patient) is None:
        return jsonify({"error": f"unknown patient '{patient}'"}), 404
    try:
        knobs = Knobs.parse(request.args)
    except ValueError as exc:
        return jsonify({"error": str(exc)}), 400
    order = request.args.get("order")
    hook = {"select": "order-select", "sign": "order-sign"}.get(order or "", "patient-view")
    result = fire(hook, patient, knobs)
    here = f"{root_url()}chart/{patient}"
    keep = {name: getattr(knobs, name) for name in KNOBS}
    order_html = ('<h2>Orders</h2>'
                  f'<a id="order-natalizumab" href="{escape(here)}?'
                  f'{escape(urlencode({**keep, "order": "select"}))}">Order natalizumab</a>')
    if hook == "order-select":
        order_html += (f' <span>Draft: {escape(str(DRUGS[knobs.drug]["text"]))}</span> '
                       f'<a id="sign-order" href="{escape(here)}?'
                       f'{escape(urlencode({**keep, "order": "sign"}))}">Sign order</a>')
    elif hook == "order-sign":
        order_html += " <span>Order signed (sandbox: nothing is stored).</span>"
    selects = "".join(
        f'<label>{name} <select name="{name}">' + "".join(
            f'<option{" selected" if getattr(knobs, name) == v else ""}>{v}</option>'
            for v in values) + "</select></label>"
        for name, values in KNOBS.items())
    knob_form = (f'<form class="knobs" method="get" action="{escape(here)}">{selects}'
                 '<button>Reopen chart</button></form>')
    sent = request.args.get("feedback")
    note = f'<p class="feedback-status">Feedback sent: {escape(sent)}</p>' if sent else ""
    nonce = secrets.token_urlsafe(12)
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Chart · Sandbox EHR</title><style nonce=\"{nonce}\">{_STYLE}</style></head>"
        f'<body><p><a href="{root_url()}">Patient list</a></p>{knob_form}{note}'
        f'<div class="layout"><main>{_chart_html(patient)}{order_html}</main>'
        f'<aside id="cds-cards" aria-label="Decision support">{_result_html(result, patient)}'
        "</aside></div></body></html>"
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'")
    response.headers["Cache-Control"] = "no-store"
    return response
