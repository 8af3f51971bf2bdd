"""The Flask application factory (``create_app(settings)``), as in Flask's tutorial.

Everything stateful (session store, discovery and JWKS caches, HTTP pool, keys) is built here
and hung on ``app.extensions``; nothing lives in module globals, so several apps can share a
process. Cookie settings: over HTTPS the session cookie is
``Secure; HttpOnly; SameSite=None; Partitioned`` so the app works inside the EHR's iframe.
Response headers (CSP, HSTS...) and proxy trust live in ``web/security.py``, the health
probes in ``web/health.py``; logging is configured by the process (``pml-risk serve``), not here.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from flask import Flask

from . import cds
from .config import Settings, require_web
from .http.session import make_http
from .ops import tracing
from .ops.metrics import Metrics
from .smart.discovery import DiscoveryCache
from .smart.id_token import JwksCache
from .smart.keys import KeyRing, SigningKeys
from .smart.launches import LaunchRepository
from .smart.store import open_store
from .web import errors
from .web.launch import jwks
from .web.launch import views as launch
from .web.ops import health, security
from .web.ops import metrics as metrics_view
from .web.page import views
from .web.page.style import StyleCache
from .web.services import EXTENSION, Services

log = logging.getLogger(__name__)
#: The browser assets: ``static/`` beside the package in a checkout (and an editable install),
#: copied into the package by the wheel build (setup.py), where no checkout is beside it.
STATIC = next((d for d in (Path(__file__).resolve().parent / "static",
                           Path(__file__).resolve().parent.parent / "static") if d.is_dir()),
              Path(__file__).resolve().parent.parent / "static")


def _key_ring(settings: Settings, fixed: SigningKeys | None) -> KeyRing:
    """Required when a tenant uses private_key_jwt; otherwise served if present."""
    if fixed is not None:
        return KeyRing(fixed=fixed)
    needed = any(t.auth == "private_key_jwt" for t in settings.tenants)
    if needed or Path(settings.keys_file).exists():
        return KeyRing(path=settings.keys_file)
    return KeyRing()


def create_app(settings: Settings, *, keys: SigningKeys | None = None) -> Flask:
    """Build the app; bad configuration raises ``ConfigError`` naming the key."""
    require_web(settings)
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    secure = settings.base_url.startswith("https://")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="pml_risk",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_SAMESITE="None" if secure else "Lax",
        SESSION_COOKIE_PARTITIONED=secure,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.session_ttl),
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    metrics = Metrics()
    store = open_store(settings.session_store, settings.secret_key, metrics.timed_store)
    services = app.extensions[EXTENSION] = Services(
        settings=settings,
        # Each request thread reads up to six FHIR searches in parallel: a pool smaller than
        # that discards connections under load and pays a new TCP (TLS) handshake each time.
        http=make_http(pool=max(16, settings.server.threads * 6), proxy=settings.http_proxy,
                       no_proxy=settings.no_proxy, ca_bundle=settings.ca_bundle,
                       observe=metrics.observe_ehr),
        repo=LaunchRepository(store, settings.session_ttl, settings.session_idle_timeout),
        discovery=DiscoveryCache(settings.discovery_ttl),
        jwks=JwksCache(),
        key_ring=_key_ring(settings, keys),
        styles=StyleCache(),
    )
    security.install(app, settings)
    errors.register(app, services.repo.get)
    app.register_blueprint(launch.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(jwks.bp)
    app.register_blueprint(health.bp)
    cds.init_app(app)  # CDS Hooks: /cds-services, /t/<tenant>/cds-services, /basis
    metrics_view.install(app, settings, metrics)  # /metrics (ops/metrics.py)
    tracing.install(app, services.http)  # OpenTelemetry, with the [otel] extra only
    log.info("app ready: %d tenant(s), session store %s", len(settings.tenants),
             settings.session_store.split(":", 1)[0])
    return app
