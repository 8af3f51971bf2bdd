"""Human-facing pages: the patient list with launch buttons, and the SMART style document."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, jsonify, request

from . import picker
from .state import root_url, sandbox_state

blueprint = Blueprint("sandbox_views", __name__)

#: A small ``smart_style_url`` document (SMART "context-style"), so apps can test styling.
SMART_STYLE = {
    "color_background": "#edeae3",
    "color_error": "#9e2d2d",
    "color_highlight": "#69b5ce",
    "color_modal_backdrop": "",
    "color_success": "#498e49",
    "color_text": "#303030",
    "dim_border_radius": "6px",
    "dim_font_size": "13px",
    "dim_spacing_size": "20px",
    # One family for body and headings, as most EHRs style their apps (the SMART example style
    # pairs a serif body with sans headings; the app honours that too when an EHR asks for it).
    "font_family_body": "'HelveticaNeue-Light', Helvetica, Arial, 'Lucida Grande', sans-serif",
    "font_family_heading": "'HelveticaNeue-Light', Helvetica, Arial, 'Lucida Grande', sans-serif",
}

@blueprint.route("/")
def home() -> Response:
    """The patient list, each patient with a link that performs an EHR launch."""
    state = sandbox_state()
    html = picker.page(
        state.store.patients,
        query=request.args.get("q", "")[:100],
        launch_base=f"{root_url()}launch",
        chart_base=f"{root_url()}chart/",
        fhir_base=f"{root_url()}fhir",
        today=date.today(),
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; script-src 'self'; form-action 'self'"
    )
    return response


@blueprint.route("/picker.css")
def picker_css() -> Response:
    response = Response(picker.CSS, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@blueprint.route("/picker.js")
def picker_js() -> Response:
    response = Response(picker.JS, mimetype="text/javascript")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@blueprint.route("/smart-style.json")
def smart_style() -> Response:
    response = jsonify(SMART_STYLE)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
