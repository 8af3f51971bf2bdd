"""The pages a clinician sees: the start page, the launch page, and its assessment as JSON.

Every launch page is scoped by the launch id in its URL *and* by the browser session that
completed the launch, so two tabs with two patients never mix and a copied URL opens nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, g, jsonify, render_template
from werkzeug.wrappers import Response

from ..launches import Launch
from .assessment import LaunchAssessment, assess_launch
from .errors import AppError
from .services import browser_sid, services

bp = Blueprint("views", __name__)

INTENTS = ("pml-summary", "pml-detail")  # C4: anything else shows the default view


def _launch(launch_id: str) -> Launch:
    svc = services()
    launch = svc.repo.get(launch_id)
    sid = browser_sid()
    if launch is None or sid is None or launch.sid != sid:
        raise AppError(
            404,
            "This launch is not open in this browser",
            "It may have expired or belong to another session. Launch the app again from "
            "the EHR.",
            "unknown-launch",
        )
    tenant = svc.settings.tenant_for(launch.iss)
    g.frame_ancestors = tenant.frame_ancestors if tenant else ()
    return launch


def patient_name(patient: Mapping[str, Any] | None) -> str | None:
    """A display name for the banner; the template escapes it."""
    if not patient:
        return None
    for name in patient.get("name", []) or []:
        if not isinstance(name, dict):
            continue
        if isinstance(name.get("text"), str) and name["text"]:
            return str(name["text"])
        given = " ".join(x for x in name.get("given", []) or [] if isinstance(x, str))
        family = name.get("family") if isinstance(name.get("family"), str) else ""
        text = f"{given} {family}".strip()
        if text:
            return text
    return None


def headline(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The risk headline from the RiskAssessment in the assessment JSON (R4 element names)."""
    ra = payload.get("riskAssessment")
    if not isinstance(ra, dict):
        return None
    predictions = ra.get("prediction") or [{}]
    first = predictions[0] if isinstance(predictions[0], dict) else {}
    qualitative = first.get("qualitativeRisk") or {}
    coding = (qualitative.get("coding") or [{}])[0]
    percent = first.get("probabilityDecimal")
    return {
        "code": coding.get("code"),
        "qualitative": coding.get("display") or coding.get("code") or qualitative.get("text"),
        "per_1000": round(float(percent) * 10, 2) if isinstance(percent, int | float) else None,
        "rationale": first.get("rationale"),
        "mitigation": ra.get("mitigation"),
    }


def warning_text(item: Any) -> str:
    if isinstance(item, dict):
        for key in ("message", "text", "detail"):
            if isinstance(item.get(key), str):
                return str(item[key])
    return str(item)


@bp.get("/")
def index() -> str:
    tenants = services().settings.tenants
    return render_template("index.html", tenants=tenants)


@bp.get("/launches/<launch_id>")
def launch_page(launch_id: str) -> str:
    launch = _launch(launch_id)
    svc = services()
    result: LaunchAssessment = assess_launch(svc, launch)
    payload = result.api_json()
    ctx = launch.context
    style = svc.styles.css_variables(
        svc.http, ctx.smart_style_url, launch.iss, svc.settings.fhir_timeout
    )
    return render_template(
        "launch.html",
        launch=launch,
        payload=payload,
        headline=headline(payload),
        warnings=[warning_text(w) for w in payload.get("warnings", []) or []],
        patient_name=patient_name(result.patient),
        show_banner=ctx.need_patient_banner,
        detail=ctx.intent == "pml-detail",
        smart_style=style,
    )


@bp.get("/launches/<launch_id>/assessment")
def assessment(launch_id: str) -> Response:
    launch = _launch(launch_id)
    return jsonify(assess_launch(services(), launch).api_json())
