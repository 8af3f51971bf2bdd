"""The pages a clinician sees: the start page, the launch page, its updates and its save.

Every launch route is scoped by the launch id in its URL *and* by the browser session that
completed the launch, so two tabs with two patients never mix and a copied URL opens nothing.

Routes under ``/launches/<id>``:

* ``GET  ``                    the page (what-if parameters in the query work without script);
* ``GET  /results``            the page's changing regions as HTML, for the what-if updates;
* ``GET  /assessment``         the assessment as JSON (same what-if parameters);
* ``POST /assessment``         save the RiskAssessment (``X-CSRF-Token`` required);
* ``GET  /riskassessment.json`` the RiskAssessment to download (when the EHR cannot take it);
* ``GET  /summary.txt``        the plain-text summary to paste into a note;
* ``GET  /style.css``          the EHR's ``smart_style_url`` colours as CSS (no inline styles).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from ...http import jsondepth
from ...ops import audit
from ...risk.records import Overrides
from ...smart.launches import Launch
from ...smart.revoke import revoke
from .. import csrf
from ..errors import AppError
from ..services import browser_sid, services
from . import capability, handout, overrides, render, writeback
from .assessment import LaunchAssessment, assess_launch

bp = Blueprint("views", __name__)

INTENTS = ("pml-summary", "pml-detail")  # SMART launch intent: anything else shows the default view
patient_name = render.patient_name  # kept importable from here


def _launch(launch_id: str) -> Launch:
    svc = services()
    launch = svc.repo.get(launch_id)
    sid = browser_sid()
    if (
        launch is None
        or sid is None
        or launch.sid != sid
        or launch_id not in session.get("launches", [])
    ):
        raise AppError(
            404,
            "This launch is not open in this browser",
            "It may have expired or belong to another session. Launch the app again from "
            "the EHR.",
            "unknown-launch",
        )
    svc.repo.touch(launch)  # the idle timeout restarts with every request of the launch
    tenant = svc.settings.tenant_for(launch.iss)
    g.frame_ancestors = tenant.frame_ancestors if tenant else ()
    # Every audit line of this request (write-back, errors) names who, where and for whom.
    audit.bind(tenant=launch.tenant, iss=launch.iss, user=launch.fhir_user,
               patient=launch.context.patient, launch=launch.id)
    return launch


def _assess(launch: Launch, values: Mapping[str, Any], *, fresh: bool = False
            ) -> LaunchAssessment:
    return assess_launch(services(), launch, overrides.parse(values), fresh=fresh)


def _page_context(launch: Launch, la: LaunchAssessment,
                  errors: Mapping[str, str] | None = None) -> dict[str, Any]:
    svc = services()
    ctx = launch.context
    style = svc.styles.css_variables(
        svc.http, ctx.smart_style_url, launch.iss, svc.settings.fhir_timeout
    )
    found = render.context(svc, la)
    if errors:
        # The result on screen lacks the clinician's latest input: never save it.
        found["save"] = capability.SaveState(
            False, "invalid-input",
            "Correct the what-if value marked below first: the result shown does not include it.")
    return {
        **found,
        "input_errors": dict(errors or {}),
        # What the clinician typed stays in the form, valid or not.
        "field_values": {k: request.args[k] for k in overrides.PARAMS if k in request.args},
        "print_time": render.clock(datetime.now(UTC).isoformat(), svc.settings.timezone),
        "app_version": render.app_version(),
        "launch": launch,
        "patient": render.banner(la.patient),
        "show_banner": ctx.need_patient_banner,
        "detail": ctx.intent == "pml-detail",
        "smart_style": bool(style),
        "csrf_token": csrf.token(svc.settings.secret_key, launch.id),
    }


@bp.get("/")
def index() -> str:
    tenants = services().settings.tenants
    return render_template("index.html", tenants=tenants)


def _checked_page(template: str, launch_id: str, *, fresh: bool = False) -> tuple[str, int]:
    """The page (or its regions) for the what-if values in the query. An invalid value is shown
    beside its field, with the result of the valid ones marked stale and Save off (400).

    Only the page itself (``fresh``: opening or reloading it) reads the chart; the regions of
    a what-if update are assessed again from the visit's snapshot, with no EHR request."""
    launch = _launch(launch_id)
    chosen, errors = overrides.check(request.args)
    la = assess_launch(services(), launch, chosen, fresh=fresh)
    return render_template(template, **_page_context(launch, la, errors)), 400 if errors else 200


@bp.get("/launches/<launch_id>")
def launch_page(launch_id: str) -> tuple[str, int]:
    return _checked_page("launch.html", launch_id, fresh=True)


@bp.get("/launches/<launch_id>/results")
def results(launch_id: str) -> tuple[str, int]:
    """The regions the what-if form changes, rendered by the same templates as the page."""
    return _checked_page("_regions.html", launch_id)


@bp.get("/launches/<launch_id>/handout")
def handout_page(launch_id: str) -> str:
    """The patient handout: the chart's result (the one that is, or would be, saved) in plain
    words. With what-if values in the query it is an example, marked so in its title and on
    every printed page: entered values never reach a patient as their own results."""
    launch = _launch(launch_id)
    la = _assess(launch, request.args)
    payload = la.api_json()
    tenant = services().settings.tenant_for(launch.iss)
    return render_template(
        "handout.html",
        **handout.context(payload, render.patient_name(la.patient),
                          render.banner(la.patient)["birthDate"], render.app_version(),
                          example=la.overrides.any(),
                          phone=tenant.clinic_phone if tenant else ""),
        launch=launch,
        page_url=url_for("views.launch_page", launch_id=launch.id)
        + overrides.query(la.overrides),
    )


@bp.get("/launches/<launch_id>/assessment")
def assessment(launch_id: str) -> Response:
    launch = _launch(launch_id)
    la = _assess(launch, request.args)
    return jsonify(la.api_json())


@bp.post("/launches/<launch_id>/assessment")
def save(launch_id: str) -> tuple[Response | str, int] | Response:
    """Save to chart. Body (JSON, optional): ``{"identifier": "...", "overrides": {...}}``.

    The page's form posts here too (``csrf_token``, ``identifier`` and the what-if fields as
    form fields), so saving works without script, as in embedded browsers with an old engine.
    """
    if request.mimetype == "application/x-www-form-urlencoded":
        return _save_form(launch_id)
    launch = _launch(launch_id)
    svc = services()
    if not csrf.valid(svc.settings.secret_key, launch.id, request.headers.get(csrf.HEADER)):
        return jsonify({
            "saved": False, "error": "csrf", "title": "Not allowed",
            "message": "The request did not carry this page's security token; reload the page "
                       "and save again.",
        }), 403
    body = _json_body()
    if body is _UNREADABLE:
        return jsonify({
            "saved": False, "error": "length-required", "title": "Not saved",
            "message": "The request body could not be read (no Content-Length, and the server "
                       "did not end the chunked body), so nothing was saved. Save again.",
        }), 411
    if not isinstance(body, dict):
        return _bad_request("The request body must be a JSON object.")
    values = body.get("overrides", {})
    identifier = body.get("identifier")
    if not isinstance(values, dict) or not (identifier is None or isinstance(identifier, str)):
        return _bad_request("overrides must be an object and identifier a string.")
    try:
        chosen: Overrides = overrides.parse(values)
    except AppError as exc:
        return _bad_request(exc.detail)
    try:
        result = writeback.save(svc, launch, identifier=identifier, overrides=chosen)
    except AppError as exc:  # e.g. the chart could not be read, the session ended
        return jsonify({"saved": False, "error": exc.code, "title": exc.title,
                        "message": exc.detail, "retryable": exc.status >= 500}), exc.status
    body = dict(result.body)
    if body.get("saved") is True:
        body["savedAtText"] = render.clock(body.get("savedAt"), svc.settings.timezone)
    return jsonify(body), result.status


@bp.post("/launches/<launch_id>/logout")
def logout(launch_id: str) -> tuple[Response | str, int]:
    """End the launch: revoke its tokens where the EHR offers it, forget it here.

    A form post from the page (``csrf_token`` field) or a script (``X-CSRF-Token``).
    """
    launch = _launch(launch_id)
    svc = services()
    presented = request.headers.get(csrf.HEADER) or request.form.get("csrf_token")
    if not csrf.valid(svc.settings.secret_key, launch.id, presented):
        raise AppError(403, "Not allowed", "The request did not carry this page's security "
                       "token; reload the page and sign out again.", "csrf")
    status = "not-offered"
    tenant = svc.settings.tenant_for(launch.iss)
    if tenant is not None:
        try:
            status = revoke(tenant, svc.smart_config(tenant), launch.tokens, keys=svc.keys,
                            redirect_uri=svc.redirect_uri, outbound=svc.http,
                            timeout=svc.settings.fhir_timeout)
        except AppError:  # discovery failed: the tokens expire on their own
            status = "failed"
    svc.repo.delete(launch.id)
    session["launches"] = [i for i in session.get("launches", []) if i != launch.id]
    audit.event("launch.ended", status="logout", error=None if status != "failed"
                else "revocation-failed")
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"loggedOut": True, "revocation": status}), 200
    return render_template("signed_out.html", revoked=status == "revoked"), 200


def _save_form(launch_id: str) -> tuple[str, int] | Response:
    """The no-script save: on success back to the page (which then shows the result as saved),
    else a page that says what happened, with the summary to paste where nothing was saved."""
    launch = _launch(launch_id)
    svc = services()
    if not csrf.valid(svc.settings.secret_key, launch.id, request.form.get("csrf_token")):
        raise AppError(403, "Not allowed", "The request did not carry this page's security "
                       "token; reload the page and save again.", "csrf")
    chosen = overrides.parse(request.form)  # the form itself: a repeated field is refused
    back = url_for("views.launch_page", launch_id=launch.id) + overrides.query(chosen)
    identifier = request.form.get("identifier") or None
    try:
        result = writeback.save(svc, launch, identifier=identifier, overrides=chosen)
    except AppError as exc:
        return render_template("save_result.html", title=exc.title, message=exc.detail,
                               summary=None, back=back), exc.status
    if result.body.get("saved") is True:
        return redirect(back, code=303)
    return render_template("save_result.html", title=result.body.get("title") or "Not saved",
                           message=result.body.get("message") or "",
                           summary=result.body.get("summary"), back=back), result.status


_UNREADABLE = object()


def _json_body() -> Any:
    """The Save body: ``{}`` when there is none, ``_UNREADABLE`` when one was sent but cannot be
    read, else the parsed JSON (None when it is not JSON).

    A body sent with ``Transfer-Encoding: chunked`` has no ``Content-Length``; it is read (up
    to ``MAX_CONTENT_LENGTH``: a larger one is a 413) when the WSGI server ends the stream
    itself (gunicorn always does; Werkzeug's server does for chunked bodies). Treating it as
    absent would save the chart's result without the what-if values or the identifier the
    clinician saw.
    """
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not request.content_length and not chunked:
        return {}
    if chunked and "wsgi.input_terminated" not in request.environ:
        return _UNREADABLE
    data = request.get_data(cache=True)
    if not data and chunked:
        return {}
    if not request.is_json:
        return None
    try:  # bounded nesting first: "[" x 3,000 is a 400, never a RecursionError's 500
        return jsondepth.loads(data)
    except ValueError:
        return None


def _bad_request(message: str) -> tuple[Response, int]:
    return jsonify({"saved": False, "error": "bad-request", "title": "Bad request",
                    "message": message}), 400


def _shown_or_assess(launch: Launch) -> dict[str, Any]:
    """The record of what the page showed (by ``identifier``), else the visit's snapshot
    assessed with the what-if values in the query (the page's links carry them), which must
    give the same ``identifier``: a snapshot read again since gives another result."""
    identifier = request.args.get("identifier")
    if identifier:
        shown = services().repo.get_shown(launch.id, identifier)
        if shown is not None:
            return shown
    la = _assess(launch, request.args)
    if la.chart.risk_assessment is None:
        raise AppError(404, "No RiskAssessment", "There is no estimate, so there is no "
                       "RiskAssessment; the summary names what is missing.", "no-estimate")
    if identifier and la.identifier != identifier:
        raise AppError(409, "The result changed", "The chart was read again since this result "
                       "was shown; reload the page and take the result from there.", "changed")
    return render.shown_record(la)


@bp.get("/launches/<launch_id>/riskassessment.json")
def riskassessment_json(launch_id: str) -> Response:
    launch = _launch(launch_id)
    record = _shown_or_assess(launch)
    resp = jsonify(record["resource"])
    resp.mimetype = "application/fhir+json"
    day = str(record["resource"].get("occurrenceDateTime", ""))[:10]
    name = re.sub(r"[^A-Za-z0-9.-]", "_", f"pml-risk-{launch.context.patient}-{day}")[:120]
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return resp


@bp.get("/launches/<launch_id>/summary.txt")
def summary_txt(launch_id: str) -> Response:
    launch = _launch(launch_id)
    text = _shown_or_assess(launch)["summary"] if request.args.get("identifier") else (
        _assess(launch, request.args).summary)
    return Response(str(text), mimetype="text/plain")


@bp.get("/launches/<launch_id>/style.css")
def smart_style(launch_id: str) -> Response:
    """The EHR's style as CSS custom properties; every value passed ``style._SAFE``."""
    launch = _launch(launch_id)
    svc = services()
    found = svc.styles.css_variables(
        svc.http, launch.context.smart_style_url, launch.iss, svc.settings.fhir_timeout
    )
    body = ":root {\n" + "".join(f"  {k}: {v};\n" for k, v in found.items()) + "}\n"
    resp = Response(body, mimetype="text/css")
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


# -- static assets: versioned URLs, cached by the browser ------------------------------------

_versions: dict[str, str] = {}


def asset_url(filename: str) -> str:
    """``/static/<file>?v=<content hash>``: a new file is a new URL, so the browser may keep
    the old one for a year (Chart.js is 200 KB; an EHR launches the app many times a day)."""
    version = _versions.get(filename)
    if version is None:
        try:
            folder = Path(current_app.static_folder or "")
            digest = hashlib.sha256((folder / filename).read_bytes()).hexdigest()[:12]
        except OSError:
            digest = "0"
        version = _versions.setdefault(filename, digest)
    return url_for("static", filename=filename, v=version)


@bp.app_context_processor
def _assets() -> dict[str, Any]:
    return {"asset_url": asset_url}


@bp.after_app_request
def _cache_versioned_assets(resp: Response) -> Response:
    if request.path.startswith("/static/") and request.args.get("v") and resp.status_code == 200:
        resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return resp
