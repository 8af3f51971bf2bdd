"""Response headers every page gets, and which proxy headers the app believes.

* CSP: ``default-src 'none'``, scripts and styles from the app only,
  and ``frame-ancestors`` per tenant, so only the launching EHR may frame a launch page.
* HSTS when the app is served over HTTPS (``base_url`` is https, or a trusted proxy
  says the request came over TLS): browsers then never try plain HTTP again.
* ``X-Forwarded-*`` are believed only from the configured proxies (``[proxy]``): otherwise any
  client could claim to be on HTTPS or spoof its address in the logs.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable
from typing import Any

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from ...config import ProxySettings, Settings

HSTS = "max-age=31536000; includeSubDomains"
PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
#: A P3P compact policy: Internet Explorer (the engine of Oracle Health's MPages and older
#: PowerChart) drops the cookies of a framed page from another site unless the page sends one,
#: and then the launch's session never sticks (Microsoft KB 323752; Oracle Health's SMART
#: documentation asks embedded apps to send it). It declares no collection beyond the session.
P3P = 'CP="NOI DSP COR NID OUR NOR"'
FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
             "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX", "HTTP_FORWARDED")


def content_security_policy(
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


class TrustedProxies:
    """WSGI middleware: ProxyFix for requests from trusted peers; forwarded headers dropped
    from everyone else, so nothing downstream (gunicorn, Flask) can be fooled by them."""

    def __init__(self, app: Any, proxy: ProxySettings) -> None:
        hops = proxy.trusted_hops
        self._fixed = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
        self._app = app
        self._networks = [ipaddress.ip_network(a, strict=False)
                          for a in proxy.trusted_addresses]

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in self._networks)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if self._trusted(environ.get("REMOTE_ADDR", "")):
            return self._fixed(environ, start_response)
        for name in FORWARDED:
            environ.pop(name, None)
        return self._app(environ, start_response)  # type: ignore[no-any-return]


def install(app: Flask, settings: Settings) -> None:
    """Headers on every response (errors and static files included) and proxy handling."""
    # trusted_hops = 0 (the default): no peer is trusted, forwarded headers are dropped.
    proxy = settings.proxy if settings.proxy.trusted_hops else ProxySettings(0, ())
    app.wsgi_app = TrustedProxies(app.wsgi_app, proxy)  # type: ignore[method-assign]
    all_ancestors = tuple(dict.fromkeys(o for t in settings.tenants for o in t.frame_ancestors))
    https_base = settings.base_url.startswith("https://")

    @app.before_request
    def _request_id() -> None:
        g.request_id = secrets.token_hex(8)

    @app.after_request
    def _headers(resp: Response) -> Response:
        ancestors = g.get("frame_ancestors", all_ancestors)
        csp = content_security_policy(ancestors, g.get("form_action"), g.get("script_nonce"))
        resp.headers.setdefault("Content-Security-Policy", csp)
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        # Oracle Health's embedded browsers (MPages, older PowerChart) default to an old IE
        # document mode; this asks for the newest engine the host has (fhir.cerner.com smart.md).
        resp.headers.setdefault("X-UA-Compatible", "IE=edge")
        resp.headers.setdefault("P3P", P3P)
        resp.headers.setdefault("Permissions-Policy", PERMISSIONS)
        resp.headers.setdefault("Cache-Control", "no-store")
        if https_base or request.is_secure:
            resp.headers.setdefault("Strict-Transport-Security", HSTS)
        if "request_id" in g:
            resp.headers.setdefault("X-Request-ID", g.request_id)
        return resp
