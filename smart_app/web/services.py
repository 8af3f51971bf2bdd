"""The per-app objects the blueprints share, hung on ``app.extensions`` (no module globals).

Two apps in one process (two tests, or the demo next to a test) therefore never share a cache,
a session store or an HTTP connection pool.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import current_app, session

from ..config import Settings, Tenant
from ..fhir.capability import CapabilityCache, ServerCapabilities, metadata_headers
from ..smart.client_auth import oauth_session
from ..smart.discovery import DiscoveryCache, DiscoveryError, SmartConfiguration
from ..smart.id_token import JwksCache
from ..smart.keys import KeyRing, SigningKeys
from ..smart.launches import LaunchRepository
from .errors import AppError
from .page.style import StyleCache

EXTENSION = "pml_risk"


@dataclass(frozen=True)
class Services:
    settings: Settings
    http: requests.Session
    repo: LaunchRepository
    discovery: DiscoveryCache
    jwks: JwksCache
    key_ring: KeyRing
    styles: StyleCache
    capabilities: CapabilityCache = field(default_factory=CapabilityCache)

    @property
    def keys(self) -> SigningKeys | None:
        """The current signing keys (re-read after a ``pml-risk keys rotate``)."""
        return self.key_ring.get()

    @property
    def redirect_uri(self) -> str:
        return f"{self.settings.base_url}/callback"

    def smart_config(self, tenant: Tenant) -> SmartConfiguration:
        try:
            return self.discovery.get(self.http, tenant.iss, self.settings.fhir_timeout,
                                      metadata_headers(tenant))
        except DiscoveryError as exc:
            raise AppError(
                502,
                "The EHR's SMART configuration could not be read",
                "The app could not discover where to sign in. Try again; if it persists, "
                "tell your EHR support team.",
            ) from exc

    def statement(self, tenant: Tenant) -> ServerCapabilities:
        """The tenant's CapabilityStatement (cached per issuer; UNKNOWN when unreadable)."""
        return self.capabilities.get(self.http, tenant.iss, self.settings.fhir_timeout,
                                     metadata_headers(tenant))

    def refresh_call(self, tenant: Tenant) -> Callable[[str], dict[str, Any]]:
        """A ``RefreshCall`` for this tenant that returns the *raw* token response.

        authlib copies the old refresh token into its result when the server sends none,
        which would make the app use it twice, so the raw response is captured instead.
        Discovery is looked up only when a refresh actually happens.
        """

        def call(refresh_token: str) -> dict[str, Any]:
            config = self.smart_config(tenant)
            raw: dict[str, Any] = {}

            def capture(resp: requests.Response) -> requests.Response:
                raw.update(resp.json())
                return resp

            client = oauth_session(
                tenant,
                token_endpoint=config.token_endpoint,
                keys=self.keys,
                redirect_uri=self.redirect_uri,
                outbound=self.http,
            )
            client.register_compliance_hook("refresh_token_response", capture)
            client.refresh_token(
                config.token_endpoint,
                refresh_token=refresh_token,
                timeout=self.settings.fhir_timeout,
                allow_redirects=False,  # a redirect would replay the refresh token elsewhere
            )
            return raw

        return call


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found


def browser_sid(create: bool = False) -> str | None:
    """The opaque id in the signed cookie; nothing else is ever put in the cookie."""
    sid = session.get("sid")
    if isinstance(sid, str) and sid:
        return sid
    if not create:
        return None
    sid = secrets.token_urlsafe(32)
    session.clear()
    session["sid"] = sid
    session.permanent = False  # gone with the browser: a shared workstation keeps nothing
    return sid
