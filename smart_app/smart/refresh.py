"""Refreshing a launch's access token: once, under a lock, across every instance.

Parallel requests of one launch (the page's searches, a what-if, a save) may all find the token
about to expire; the lock in the shared session store makes exactly one of them refresh, and the
others pick up the result. The refresh token is forgotten before it is sent, so a failed or lost
refresh never sends it again. When the EHR's answer carries no new refresh token (Epic and
Oracle Health do not rotate them), the one just used stays valid (RFC 6749 §6: only a *new*
refresh token replaces the old) and is kept for the next refresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from authlib.integrations.base_client.errors import OAuthError
from authlib.oauth2.rfc6749.errors import OAuth2Error
from requests import RequestException

from ..ops import audit
from .launches import Launch, LaunchRepository
from .tokens import TokenExpired, TokenSet, _without_refresh

log = logging.getLogger(__name__)

LOCK_TTL = 30

#: Performs one refresh-token grant and returns the raw token response.
RefreshCall = Callable[[str], Mapping[str, Any]]


def fresh_launch(
    launch: Launch,
    repo: LaunchRepository,
    do_refresh: RefreshCall,
    *,
    force: bool = False,
    clock: Callable[[], float] = time.time,
    wait: float = 10.0,
) -> Launch:
    """The launch with a usable access token, refreshing it first when it expires soon.

    ``force`` refreshes even if the clock says the token is still good (the server said 401).
    """
    if not force and not launch.tokens.expires_soon(clock()):
        return launch
    deadline = time.monotonic() + wait
    while not repo.store.try_lock(f"refresh:{launch.id}", LOCK_TTL):
        if time.monotonic() > deadline:
            raise TokenExpired("another request is refreshing this launch's token")
        time.sleep(0.05)
        current = repo.get(launch.id)
        if current is None:
            raise TokenExpired("the launch has ended")
        if current.tokens.access_token != launch.tokens.access_token:
            return current  # someone else refreshed while we waited
    try:
        current = repo.get(launch.id)
        if current is None:
            raise TokenExpired("the launch has ended")
        if current.tokens.access_token != launch.tokens.access_token:
            return current
        if not force and not current.tokens.expires_soon(clock()):
            return current
        refresh_token = current.tokens.refresh_token
        if refresh_token is None:
            raise TokenExpired("the access token expired and there is no refresh token")
        # Forget the refresh token before sending it, so nothing can ever send it twice.
        repo.put(current.with_tokens(_without_refresh(current.tokens)))
        try:
            response = do_refresh(refresh_token)
            tokens = TokenSet.from_response(response, current.tokens.scope, now=clock())
        except (OAuthError, OAuth2Error, RequestException, ValueError, TypeError,
                RecursionError) as exc:
            log.warning("token refresh failed: %s", type(exc).__name__)
            _audit_refresh(current, "failed", type(exc).__name__)
            raise TokenExpired("the EHR refused to refresh the access token") from exc
        rotated = tokens.refresh_token is not None
        if not rotated:
            tokens = replace(tokens, refresh_token=refresh_token)  # RFC 6749 §6: still valid
        updated = current.with_tokens(tokens)
        repo.put(updated)
        log.info("access token refreshed (rotated refresh token: %s)", rotated)
        _audit_refresh(updated, "ok", None, rotated=rotated)
        return updated
    finally:
        repo.store.unlock(f"refresh:{launch.id}")


def _audit_refresh(launch: Launch, status: str, error: str | None,
                   rotated: bool | None = None) -> None:
    audit.event("token.refresh", tenant=launch.tenant, launch=launch.id,
                patient=launch.context.patient, user=launch.fhir_user, status=status,
                error=error, scopes=launch.tokens.scope if status == "ok" else None,
                rotated=rotated)


