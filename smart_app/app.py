"""The Flask application factory (``create_app(settings)``), as in Flask's tutorial.

Everything stateful (session store, discovery and JWKS caches, HTTP pool, keys) is built here
and hung on ``app.extensions``; nothing lives in module globals, so several apps can share a
process. Cookie settings follow requirements §3.4 item 7: over HTTPS the session cookie is
``Secure; HttpOnly; SameSite=None; Partitioned`` so the app works inside the EHR's iframe.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from flask import Flask, g
from werkzeug.wrappers import Response

from .config import Settings, require_web
from .keys import SigningKeys
from .keys import load as load_keys
from .launches import LaunchRepository
from .session_store import open_store
from .smart.discovery import DiscoveryCache
from .smart.id_token import JwksCache
from .web import errors, jwks, launch, views
from .web.services import EXTENSION, Services, make_http
from .web.style import StyleCache

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent.parent / "static"  # assets live beside the package


def _keys(settings: Settings) -> SigningKeys | None:
    """Required when a tenant uses private_key_jwt; otherwise served if present."""
    needed = any(t.auth == "private_key_jwt" for t in settings.tenants)
    if needed or Path(settings.keys_file).exists():
        return load_keys(settings.keys_file)
    return None


def _content_security_policy(
    frame_ancestors: tuple[str, ...], form_action: str | None, script_nonce: str | None
) -> str:
    ancestors = " ".join(("'self'", *frame_ancestors))
    forms = " ".join(("'self'", *([form_action] if form_action else [])))
    nonce = f" 'nonce-{script_nonce}'" if script_nonce else ""
    script = f"; script-src 'self'{nonce}"
    return (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        f"form-action {forms}; base-uri 'none'; frame-ancestors {ancestors}{script}"
    )


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
    store = open_store(settings.session_store, settings.secret_key)
    app.extensions[EXTENSION] = Services(
        settings=settings,
        http=make_http(),
        repo=LaunchRepository(store, settings.session_ttl),
        discovery=DiscoveryCache(settings.discovery_ttl),
        jwks=JwksCache(),
        keys=keys if keys is not None else _keys(settings),
        styles=StyleCache(),
    )
    all_ancestors = tuple(dict.fromkeys(o for t in settings.tenants for o in t.frame_ancestors))

    @app.after_request
    def _security_headers(resp: Response) -> Response:
        ancestors = g.get("frame_ancestors", all_ancestors)
        csp = _content_security_policy(
            ancestors, g.get("form_action"), g.get("script_nonce")
        )
        resp.headers.setdefault("Content-Security-Policy", csp)
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    errors.register(app)
    app.register_blueprint(launch.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(jwks.bp)
    log.info("app ready: %d tenant(s), session store %s", len(settings.tenants),
             settings.session_store.split(":", 1)[0])
    return app
