"""One exception type for every failure a user can see, rendered as a page or as JSON.

Messages are written for a clinician and never contain tokens, codes or chart data; the
technical cause goes to the log (by type name only).
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

log = logging.getLogger(__name__)


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


def register(app: Flask) -> None:
    @app.errorhandler(AppError)
    def _app_error(error: AppError) -> tuple[Response | str, int]:
        log.info("request failed: %s %s (%s)", error.status, error.code, request.endpoint)
        return render_error(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response | str, int]:
        status = error.code or 500
        return render_error(AppError(status, error.name, error.description or "", "http"))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response | str, int]:
        # The type only: an exception's text may quote chart data (no PHI in logs).
        log.error("unexpected error: %s", type(error).__name__, exc_info=app.debug)
        return render_error(
            AppError(500, "Something went wrong", "The app hit an unexpected error.", "internal")
        )
