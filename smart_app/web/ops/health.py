"""``/healthz`` and ``/readyz`` for load balancers and orchestrators.

* ``/healthz`` (liveness): the process answers. It touches nothing else, so an outage of Redis
  does not get every instance restarted by the orchestrator.
* ``/readyz`` (readiness): the session store answers too. Without it no launch can start or
  finish, so the load balancer should send clinicians elsewhere until it is back.

Neither sets a cookie or needs a launch; bodies are small JSON without configuration details.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, jsonify
from werkzeug.wrappers import Response

from ...smart.store import StoreUnavailable
from ..services import services

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    started = time.perf_counter()
    try:
        services().repo.store.ping()
    except Exception as exc:  # any failure means "not ready"; the type says which
        cause = exc.__cause__ if isinstance(exc, StoreUnavailable) and exc.__cause__ else exc
        log.warning("readiness: session store unavailable (%s)", type(cause).__name__)
        body = {
            "status": "unavailable",
            "checks": {"session_store": {"ok": False, "error": type(cause).__name__}},
        }
        return jsonify(body), 503
    ms = round((time.perf_counter() - started) * 1000, 1)
    return jsonify({"status": "ok", "checks": {"session_store": {"ok": True, "ms": ms}}}), 200
