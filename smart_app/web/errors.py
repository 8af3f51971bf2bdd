"""One exception type for every failure a user can see, rendered as a page or as JSON.

Messages are written for a clinician and never contain tokens, codes or chart data; the
technical cause goes to the log (by type name only). Every failure a user sees, and every
unexpected exception, is also an ``error`` audit event (error code, status, endpoint, and the
launch's tenant/user/patient when the URL names a launch of this browser).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, current_app, g, jsonify, render_template, request, session
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from ..ops import audit
from ..smart.launches import Launch
from ..smart.store import StoreUnavailable

log = logging.getLogger(__name__)

LAUNCH_LOOKUP = "pml_risk.find_launch"


class AppError(Exception):
    def __init__(self, status: int, title: str, detail: str, code: str = "error") -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.code = code


def _wants_json() -> bool:
    return request.path.endswith("/assessment") or request.accept_mimetypes.best == (
        "application/json"
    )


def render_error(error: AppError) -> tuple[Response | str, int]:
    if _wants_json():
        body = {"status": "error", "error": error.code, "title": error.title,
                "detail": error.detail}
        return jsonify(body), error.status
    return render_template("error.html", error=error), error.status


def _bind_launch() -> None:
    """Name the launch in the error event when the URL is one of this browser's launches."""
    launch_id = (request.view_args or {}).get("launch_id")
    if not isinstance(launch_id, str) or g.get("store_down"):
        return  # a store that just failed would only make the error page wait again
    try:
        launch = current_app.extensions[LAUNCH_LOOKUP](launch_id)
    except Exception:  # the store may be what failed
        return
    if launch is not None and launch.sid == session.get("sid"):
        audit.bind(tenant=launch.tenant, launch=launch.id, patient=launch.context.patient,
                   user=launch.fhir_user)


def audit_error(status: int, code: str) -> None:
    _bind_launch()
    audit.event("error", error=code, http_status=status, endpoint=request.endpoint)


def register(app: Flask, find_launch: Callable[[str], Launch | None]) -> None:
    """Install the handlers; ``find_launch`` names the launch in error events (see above)."""
    app.extensions[LAUNCH_LOOKUP] = find_launch

    @app.errorhandler(AppError)
    def _app_error(error: AppError) -> tuple[Response | str, int]:
        log.info("request failed: %s %s (%s)", error.status, error.code, request.endpoint)
        audit_error(error.status, error.code)
        return render_error(error)

    @app.errorhandler(StoreUnavailable)
    def _store_down(error: StoreUnavailable) -> tuple[Response | str, int]:
        log.warning("session store unavailable: %s", error)
        g.store_down = True
        return _app_error(AppError(
            503, "The app is temporarily unavailable",
            "It cannot reach its session storage. Wait a moment and launch the app again "
            "from the EHR.", "store-unavailable"))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response | str, int]:
        status = error.code or 500
        if status >= 500 or status in (401, 403):
            audit_error(status, "http")
        return render_error(AppError(status, error.name, error.description or "", "http"))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response | str, int]:
        # The type only: an exception's text may quote chart data (no PHI in logs).
        log.error("unexpected error: %s", type(error).__name__, exc_info=app.debug)
        audit_error(500, f"internal:{type(error).__name__}")
        return render_error(
            AppError(500, "Something went wrong", "The app hit an unexpected error.", "internal")
        )
