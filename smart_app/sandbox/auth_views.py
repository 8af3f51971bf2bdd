"""HTTP routes of the authorization side: EHR launch, authorize (auto-approve) and token."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, Response, jsonify, redirect, request
from werkzeug.wrappers import Response as WerkzeugResponse

from .controls import RESOURCE_TYPE
from .grants_store import LaunchContext
from .state import fhir_base, resolve_origin_relative, sandbox_state

blueprint = Blueprint("sandbox_auth", __name__)

_FALSE = {"0", "false", "no", "off"}


@blueprint.route("/launch")
def launch() -> WerkzeugResponse | tuple[Response, int]:
    """Simulate the EHR launching the app for a patient.

    Query: ``patient`` (required), ``practitioner``, ``encounter``, ``need_patient_banner``
    (default true), ``intent``, ``fhir_context`` (repeatable ``Type/id`` references),
    ``withhold`` (comma-separated resource types whose scopes are not granted, as an EHR that
    grants less than the app asks for). Creates a launch handle and redirects the browser to
    ``{launch_url}?iss={fhir base}&launch={handle}``.
    """
    state = sandbox_state()
    args = request.args
    patient = args.get("patient", "")
    if state.store.get("Patient", patient) is None:
        return jsonify({"error": f"unknown patient '{patient}'"}), 404
    withhold = tuple(t.strip() for t in args.get("withhold", "").split(",") if t.strip())
    if any(not RESOURCE_TYPE.match(t) for t in withhold):
        return jsonify({"error": "withhold: expected comma-separated resource type names"}), 400
    context = LaunchContext(
        patient=patient,
        encounter=args.get("encounter") or None,
        practitioner=args.get("practitioner") or state.config.default_practitioner,
        need_patient_banner=args.get("need_patient_banner", "true").lower() not in _FALSE,
        intent=args.get("intent") or None,
        fhir_context=tuple(
            {"reference": ref, "type": ref.split("/", 1)[0]}
            for ref in args.getlist("fhir_context")
            if "/" in ref
        ),
        withhold=withhold,
    )
    handle = state.grants.new_launch(context, state.config.launch_lifetime)
    target = resolve_origin_relative(state.config.launch_url)
    separator = "&" if "?" in target else "?"
    query = urlencode({"iss": fhir_base(), "launch": handle})
    return redirect(f"{target}{separator}{query}", code=302)


@blueprint.route("/auth/authorize", methods=["GET", "POST"])
def authorize() -> Any:
    """Validate and auto-approve, unless ``deny_authorization`` is switched on."""
    state = sandbox_state()
    server = state.server
    try:
        grant = server.get_consent_grant(end_user=None)
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    context: LaunchContext = grant.request.smart_context
    user = None if state.controls.get().deny_authorization else context
    return server.create_authorization_response(grant=grant, grant_user=user)


@blueprint.route("/auth/token", methods=["POST"])
def token() -> Any:
    return sandbox_state().server.create_token_response()
