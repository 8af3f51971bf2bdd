"""``GET /metrics``: the Prometheus scrape, for this host's (or the configured) scrapers only.

A request that reached the app through a reverse proxy the app does not trust (it carries
``X-Forwarded-*``/``Forwarded``, which untrusted peers' requests have stripped before Flask sees
them, hence the mark made in front of that) is treated as coming from outside: the proxy on the
same host must not turn every internet request into a loopback one. With trusted proxies the
scraper's own address (after ProxyFix) is checked against ``[metrics] allow``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, request

from ...config import Settings
from ...ops.metrics import CONTENT_TYPE, EXTENSION, Metrics, allowed
from ..services import services

bp = Blueprint("metrics", __name__)
_FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO",
              "HTTP_FORWARDED", "HTTP_X_REAL_IP")
_MARK = "pml_risk.forwarded"


class _MarkForwarded:
    """Outermost WSGI layer: note whether the request arrived with forwarding headers."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ[_MARK] = any(name in environ for name in _FORWARDED)
        return self._app(environ, start_response)  # type: ignore[no-any-return]


def install(app: Flask, settings: Settings, metrics: Metrics) -> None:
    """Serve /metrics (when enabled) and time CDS Hooks calls."""
    app.extensions[EXTENSION] = metrics
    if settings.metrics.enabled:
        app.wsgi_app = _MarkForwarded(app.wsgi_app)  # type: ignore[method-assign]
        app.register_blueprint(bp)

    @app.before_request
    def _started() -> None:
        g.metrics_started = time.perf_counter()

    @app.teardown_request
    def _finished(_: BaseException | None) -> None:
        service = (request.view_args or {}).get("service_id")
        started = g.get("metrics_started")
        is_call = (request.endpoint or "").endswith("call")  # not the feedback endpoints
        if service and started is not None and is_call:
            metrics.observe_cds(str(service), time.perf_counter() - started)


@bp.get("/metrics")
def scrape() -> Response:
    settings = services().settings
    from_proxy = request.environ.get(_MARK) and not settings.proxy.trusted_hops
    if from_proxy or not allowed(request.remote_addr, settings.metrics.allow):
        abort(404)
    metrics: Metrics = current_app.extensions[EXTENSION]
    return Response(metrics.render(), mimetype=None, content_type=CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})
