"""Ending a launch at the EHR too: token revocation (RFC 7009) where the EHR offers it.

Logging out deletes the launch record, which is all the app itself holds; revoking the refresh
and access tokens also makes copies elsewhere (a log, a proxy) worthless. Revocation is best
effort: an EHR that advertises no ``revocation_endpoint``, or fails to answer, leaves the tokens
to expire on their own, and the logout still succeeds.
"""

from __future__ import annotations

import logging

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.oauth2.rfc6749.errors import OAuth2Error

from ..config import Tenant
from .client_auth import oauth_session
from .discovery import SmartConfiguration
from .keys import SigningKeys
from .tokens import TokenSet

log = logging.getLogger(__name__)


def revoke(tenant: Tenant, config: SmartConfiguration, tokens: TokenSet, *,
           keys: SigningKeys | None, redirect_uri: str, outbound: requests.Session,
           timeout: float) -> str:
    """Revoke the refresh token, then the access token: "revoked", "not-offered" or "failed"."""
    if not config.revocation_endpoint:
        return "not-offered"
    client = oauth_session(tenant, token_endpoint=config.token_endpoint, keys=keys,
                           redirect_uri=redirect_uri, outbound=outbound)
    status = "revoked"
    for token, hint in ((tokens.refresh_token, "refresh_token"),
                        (tokens.access_token, "access_token")):
        if not token:
            continue
        try:
            resp = client.revoke_token(config.revocation_endpoint, token=token,
                                       token_type_hint=hint, timeout=timeout,
                                       allow_redirects=False)
        except (OAuthError, OAuth2Error, requests.RequestException, ValueError) as exc:
            log.info("token revocation failed: %s", type(exc).__name__)
            status = "failed"
            continue
        if resp.status_code != 200:  # RFC 7009 §2.2: 200 whether or not the token was valid
            log.info("token revocation answered %s", resp.status_code)
            status = "failed"
    return status
