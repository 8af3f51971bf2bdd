"""``/sandbox/_control``: read or change the misbehaviour switches (``controls.Controls``)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .config import SandboxClient
from .controls import _validated
from .state import sandbox_state

blueprint = Blueprint("sandbox_control", __name__)


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), status


@blueprint.route("/_control", methods=["GET", "POST"])
def control() -> tuple[Response, int] | Response:
    """Read (GET) or change (POST, JSON object) the misbehaviour switches.

    ``put_resources`` (a list of resources) adds or updates chart data as an EHR user would,
    stamped with a new ``meta.versionId`` and ``lastUpdated``.

    Only enabled when ``SandboxConfig.allow_control`` is true; otherwise it does not exist (404).
    """
    state = sandbox_state()
    if not state.config.allow_control:
        return _error(404, "control endpoint disabled")
    if request.method == "POST":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "expected a JSON object")
        try:
            _validated(state.controls.get(), body)  # reject bad input before acting on any of it
        except ValueError as exc:
            return _error(400, str(exc))
        if body.get("reset"):
            state.reset(data=bool(body.get("reset_data")))
        elif body.get("reset_data"):
            state.store.reload()
        if body.get("clear_requests"):
            with state.controls.lock:
                state.controls.requests.clear()
        if "put_resources" in body:
            resources = body["put_resources"]
            if not isinstance(resources, list) or not all(
                isinstance(r, dict) and isinstance(r.get("resourceType"), str) for r in resources
            ):
                return _error(400, "put_resources: expected a list of FHIR resources")
            for resource in resources:
                state.store.amend(resource)
        if "register_client" in body:
            try:
                client = SandboxClient.from_json(body["register_client"])
            except (KeyError, TypeError, ValueError) as exc:
                return _error(400, f"register_client: {exc}")
            state.register_client(client)
        try:
            state.controls.update(body)
        except ValueError as exc:
            return _error(400, str(exc))
    return jsonify(
        {
            **state.controls.get().as_json(),
            "requests": state.controls.snapshot(),
            "clients": sorted(state.clients),
            "patients": state.store.patient_ids(),
        }
    )
