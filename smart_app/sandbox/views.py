"""Human-facing pages: the patient list with launch buttons, and the SMART style document."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify

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
    "font_family_body": "Georgia, Times, 'Times New Roman', serif",
    "font_family_heading": "'HelveticaNeue-Light', Helvetica, Arial, 'Lucida Grande', sans-serif",
}

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sandbox EHR</title></head>
<body>
<h1>Sandbox EHR</h1>
<p>FHIR base: <code>{fhir}</code></p>
<ul>
{rows}
</ul>
</body>
</html>
"""


@blueprint.route("/")
def home() -> Response:
    """List the fixture patients, each with a link that performs an EHR launch."""
    state = sandbox_state()
    rows = []
    for patient in state.store.patients:
        href = f"{root_url()}launch?{urlencode({'patient': patient.id})}"
        summary = f" &mdash; {escape(patient.summary)}" if patient.summary else ""
        rows.append(
            f"<li><strong>{escape(patient.name)}</strong>{summary} "
            f'<a class="launch" href="{escape(href)}">Launch</a> '
            f'<a class="chart" href="{escape(root_url())}chart/{escape(patient.id)}">'
            "Open chart</a></li>"
        )
    html = _PAGE.format(fhir=escape(f"{root_url()}fhir"), rows="\n".join(rows))
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'self'"
    return response


@blueprint.route("/smart-style.json")
def smart_style() -> Response:
    response = jsonify(SMART_STYLE)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
